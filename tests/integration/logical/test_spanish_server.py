"""A server that answers in Spanish (``lc_messages = 'es_ES.UTF-8'``, as servers made with
``initdb --locale=es_ES.UTF-8`` on Debian, whose PostgreSQL ships Spanish catalogs, do):
its errors, a failed connection's included, are in Spanish, so respaldo does not read
what went wrong from their text."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import staging_databases, table_checksums

pytestmark = pytest.mark.integration


@pytest.fixture
def spanish(pg: TempCluster) -> Iterator[TempCluster]:
    """The session's cluster answering in Spanish for this test (its configuration's
    last word, postgresql.auto.conf, reset at the end)."""
    pg.execute("ALTER SYSTEM SET lc_messages = 'es_ES.UTF-8'")
    pg.execute("SELECT pg_catalog.pg_reload_conf()")
    try:
        # Proof that it answers in Spanish: otherwise the test proves nothing.
        kwargs = {**pg.conninfo_kwargs("postgres"), "dbname": "no_such_database"}
        with pytest.raises(psycopg.OperationalError, match="no existe la base de datos"):
            psycopg.connect(**kwargs).close()
        yield pg
    finally:
        pg.execute("ALTER SYSTEM RESET lc_messages")
        pg.execute("SELECT pg_catalog.pg_reload_conf()")


def test_restore_after_the_database_is_lost(
    respaldo: Respaldo, spanish: TempCluster, new_dbname: str
) -> None:
    # The configured database is gone: restore manages the target from "postgres"
    # instead, which it used to decide from the English "does not exist".
    source = respaldo.dbname
    tables = table_checksums(spanish, source)
    backup_id = respaldo.backup()["id"]
    spanish.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(source)))
    respaldo.restore(backup_id, new_dbname)
    assert table_checksums(spanish, new_dbname) == tables
    assert staging_databases(spanish) == set()
