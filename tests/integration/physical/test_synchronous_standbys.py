"""A physical backup of a primary that waits for a synchronous standby.

pg_basebackup copies ``postgresql.auto.conf`` (and ``postgresql.conf`` where it is in the
data directory) with its ``synchronous_standby_names``; the standbys themselves follow the
original server, and none follows the restored one, promoted onto a timeline of its own.
The restored server said 'runs on … promoted', and every commit of the application then
waited for ever (``statement_timeout`` does not end that wait: a CREATE TABLE under
``synchronous_commit = on`` hung until the test's 300 s timeout). The restore now sets
it empty and says so, with how to make the standbys again; a restore test's throwaway
copy waits for none either and says nothing of it. The backup's physical replication
slot is not restored (pg_basebackup leaves ``pg_replslot`` empty): no WAL is held for a
standby that will never come.
"""

from __future__ import annotations

import psycopg
import pytest
from sample.cluster import TempCluster

from tests.integration.physical.conftest import Archiving

pytestmark = pytest.mark.integration


def test_a_restored_primary_does_not_wait_for_the_originals_synchronous_standby(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    pg = archiving.pg
    pg.execute("SELECT pg_catalog.pg_create_physical_replication_slot('obra_standby', true)")
    pg.execute("ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (obra_standby)'")
    try:
        backup_id = str(archiving.backup()["id"])
    finally:
        pg.execute("ALTER SYSTEM RESET synchronous_standby_names")
        pg.execute("SELECT pg_catalog.pg_drop_replication_slot('obra_standby')")

    restored, _, run = archiving.restore_started(backup_id, restored_servers)

    said = " ".join(run.err.split())
    assert (
        "warning: the backed-up server waited for synchronous standbys "
        "(synchronous_standby_names = 'FIRST 1 (obra_standby)'): the restored server waits "
        "for none"
    ) in said, str(run)
    assert "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (obra_standby)'" in said, str(run)
    assert restored.scalar("SHOW synchronous_standby_names") == ""
    assert restored.query("SELECT slot_name FROM pg_catalog.pg_replication_slots") == []
    # A commit as the application makes it (the test clusters turn synchronous_commit off).
    with psycopg.connect(
        **restored.conninfo_kwargs("postgres"), options="-c synchronous_commit=on"
    ) as conn:
        conn.execute("CREATE TABLE public.parte_diario (id int)")
    assert restored.scalar("SELECT count(*) FROM public.parte_diario") == 0


def test_a_restore_test_with_amcheck_of_it_does_not_wait_either(archiving: Archiving) -> None:
    # pg_amcheck --install-missing creates its extension: a commit, which on the scratch
    # server of a backup that waits for a synchronous standby (synchronous_commit on, as
    # in production) waited for ever, and the restore test with it.
    pg = archiving.pg
    pg.execute("ALTER SYSTEM SET synchronous_standby_names = 'obra_standby'")
    pg.execute("ALTER SYSTEM SET synchronous_commit = on")
    try:
        backup_id = str(archiving.backup()["id"])
    finally:
        pg.execute("ALTER SYSTEM RESET synchronous_standby_names")
        pg.execute("ALTER SYSTEM RESET synchronous_commit")

    drill = archiving.run("drill", backup_id, "--amcheck")

    assert drill.code == 0, str(drill)
    assert "ok   pg_amcheck" in drill.err, str(drill)
    assert "synchronous" not in drill.err, str(drill)


def test_a_backup_without_synchronous_standbys_says_nothing_of_them(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    backup_id = str(archiving.backup()["id"])

    restored, _, run = archiving.restore_started(backup_id, restored_servers)

    assert "synchronous" not in run.err, str(run)
    assert restored.scalar("SHOW synchronous_standby_names") == ""
