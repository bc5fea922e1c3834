"""Scratch databases: one that its process holds is never dropped, one nobody holds is."""

from __future__ import annotations

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.postgres.scratchdb import drop_abandoned, held_database

pytestmark = pytest.mark.integration


def _exists(pg: TempCluster, name: str) -> bool:
    return bool(pg.scalar("SELECT count(*) FROM pg_catalog.pg_database WHERE datname = %s", [name]))


def test_only_unheld_scratch_databases_are_dropped(pg: TempCluster) -> None:
    admin = pg.conninfo("postgres").with_dbname("postgres")
    held, abandoned, other = "respaldo_staging_00be11d0", "respaldo_drill_00abad0bed00", "staging_x"
    try:
        pg.execute(f"CREATE DATABASE {abandoned}")
        pg.execute(f"CREATE DATABASE {other}")
        with held_database(admin, held):
            pg.execute(f"CREATE DATABASE {held}")
            said = drop_abandoned(admin)
            assert said == [
                f"dropped drill database {abandoned}, left by an interrupted restore or drill"
            ]
            assert _exists(pg, held)
            assert not _exists(pg, abandoned)
        # The hold ended with the block: now it is abandoned too.
        assert drop_abandoned(admin) == [
            f"dropped staging database {held}, left by an interrupted restore or drill"
        ]
        assert _exists(pg, other)  # not a name of ours
    finally:
        for name in (held, abandoned, other):
            pg.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_a_database_only_named_like_a_scratch_one_is_never_dropped(pg: TempCluster) -> None:
    # Names a user (or another program) may have chosen: only the names respaldo makes,
    # a prefix and a fixed number of hex digits, are swept.
    admin = pg.conninfo("postgres").with_dbname("postgres")
    names = ["respaldo_staging_ventas", "respaldo_drill_2024", "respaldo_staging_0123abcd_x"]
    try:
        for name in names:
            pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        assert drop_abandoned(admin) == []
        assert all(_exists(pg, name) for name in names)
    finally:
        for name in names:
            pg.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_only_scratch_names_can_be_held(pg: TempCluster) -> None:
    with pytest.raises(ValueError), held_database(pg.conninfo("postgres"), "erp"):
        pass
