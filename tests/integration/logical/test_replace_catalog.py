"""``restore --replace`` refuses the database that holds respaldo's own catalog.

With a PostgreSQL catalog on the server being restored to, replacing that database
terminated respaldo's own catalog sessions and swapped an application's backup in where
the catalog was: every later command then met a database without its tables."""

from __future__ import annotations

import uuid

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.catalog import open_catalog
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases

pytestmark = pytest.mark.integration


def test_the_catalogs_database_is_refused_as_a_target(
    respaldo: Respaldo, pg: TempCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = f"cat_{uuid.uuid4().hex[:10]}"
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(catalog)))
    try:
        secret = pg.password.get_secret_value()
        url = f"postgresql://{pg.superuser}:{secret}@{pg.host}:{pg.port}/{catalog}"
        monkeypatch.setenv("RESPALDO_CATALOG__URL", url)
        open_catalog(url, create=True).close()
        backup_id = respaldo.backup()["id"]
        before = databases(pg)
        run = respaldo.run("restore", backup_id, "-t", catalog, "--replace")
        assert run.code == 1, str(run)
        assert "catalog" in run.err and catalog in run.err, run.err
        assert databases(pg) == before
        # The catalog is whole: the backup is still listed.
        listed = respaldo.run("list", "--json")
        assert listed.code == 0, str(listed)
        assert [b["id"] for b in listed.json()] == [backup_id]
    finally:
        for name in databases(pg):
            if name == catalog or name.startswith(f"{catalog}_old_"):
                pg.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
