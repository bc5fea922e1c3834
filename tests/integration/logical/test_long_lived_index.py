"""A long-lived context (``respaldo serve``, a worker) reads backups that another process
wrote after it loaded the repository's index: a backup from the CLI, or from a worker on
another machine."""

from __future__ import annotations

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.config import load_settings
from respaldo.operations.context import Context
from respaldo.operations.drill import run_drill
from respaldo.operations.restore import restore_backup
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import table_checksums

pytestmark = pytest.mark.integration


def test_a_backup_written_by_another_process_restores_and_passes_its_drill(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # The service opened the repository (and loaded its index) before the CLI took the
    # backup: its restore test of that backup failed with "chunk is not in the index",
    # and so did a restore started from the page, until the service restarted.
    first = respaldo.backup()["id"]
    with Context.open(load_settings(respaldo.config)) as ctx:
        restore_backup(ctx, first, new_dbname)  # the index loaded, as in a service
        pg.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(new_dbname)))
        # Data the first backup did not have: chunks only the new index file names.
        pg.execute(
            "CREATE TABLE public.nuevos AS"
            " SELECT g AS id, pg_catalog.md5(g::text) AS texto"
            " FROM pg_catalog.generate_series(1, 20000) g",
            dbname=respaldo.dbname,
        )
        second = respaldo.backup()["id"]  # another process: the CLI

        drilled = run_drill(ctx, second)
        assert drilled.passed, [(c.name, c.ok, c.detail) for c in drilled.checks]
        restore_backup(ctx, second, new_dbname)
        assert table_checksums(pg, new_dbname) == table_checksums(pg, respaldo.dbname)
