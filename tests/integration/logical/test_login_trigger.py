"""A database with a login event trigger (PostgreSQL 17 and later) that records each
session in a table, as an ERP's audit of who logged in does: its backups restore and pass
their restore tests.

Once pg_restore has created the trigger, every session respaldo opened on the restored
database (the row counts, the large objects, a restore --jobs worker's checks) fired it
and added a row the backup's snapshot did not count: no backup of such a database could
be restored ('restored row counts differ from the backup's ... the backup may be
damaged') nor pass a restore test. respaldo's own sessions there run with
event_triggers = off; the trigger is restored, and fires for everyone else.
"""

from __future__ import annotations

import pytest
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.majors import ON_PG18

pytestmark = pytest.mark.integration

LOGIN_AUDIT = """
CREATE TABLE public.accesos (id bigserial PRIMARY KEY, usuario text NOT NULL,
                             en timestamptz NOT NULL DEFAULT now());
CREATE FUNCTION public.registrar_acceso() RETURNS event_trigger LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO public.accesos (usuario) VALUES (session_user); END $$;
CREATE EVENT TRIGGER registrar_acceso ON login EXECUTE FUNCTION public.registrar_acceso();
ALTER EVENT TRIGGER registrar_acceso ENABLE ALWAYS;
"""


@ON_PG18
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_database_that_records_its_logins_restores_and_passes_its_restore_test(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, jobs: str
) -> None:
    pg.execute(LOGIN_AUDIT, dbname=respaldo.dbname)
    backup_id = respaldo.backup()["id"]

    drill = respaldo.run("drill", backup_id)
    assert drill.code == 0, str(drill)
    assert "ok   row counts" in drill.err, str(drill)

    run = respaldo.run("restore", backup_id, "-t", new_dbname, "--jobs", jobs)
    assert run.code == 0, str(run)
    # The trigger came back, and records the application's sessions as before.
    assert pg.query(
        "SELECT evtname, evtenabled FROM pg_catalog.pg_event_trigger", dbname=new_dbname
    ) == [("registrar_acceso", "A")]
    before = pg.scalar("SELECT count(*) FROM public.accesos", dbname=new_dbname)
    assert pg.scalar("SELECT count(*) FROM public.accesos", dbname=new_dbname) == before + 1
