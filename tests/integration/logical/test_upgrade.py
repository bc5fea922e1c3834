"""An upgrade through a restore (docs/upgrade.md): a logical backup of the system's
PostgreSQL (Debian 12: 15) restores into a PostgreSQL 18 server, with its roles, and
every table holds the same rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.postgres.toolsets import BUNDLED_MAJOR
from tests.integration.cli import secret_file
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import large_objects, sequence_values, table_checksums
from tests.integration.majors import server_bindir

pytestmark = pytest.mark.integration

_ROLES = """
SELECT r.rolname, r.rolcanlogin, r.rolconnlimit, r.rolpassword IS NOT NULL,
       coalesce((SELECT string_agg(g.rolname, ',' ORDER BY g.rolname)
                   FROM pg_catalog.pg_auth_members m
                   JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
                  WHERE m.member = r.oid), '')
  FROM pg_catalog.pg_authid r
 WHERE r.rolname LIKE 'erp\\_%'
 ORDER BY 1
"""


@pytest.fixture
def new_server() -> Iterator[TempCluster]:
    """The new server of the upgrade: PostgreSQL 18, empty."""
    with TempCluster.create(bindir=server_bindir(BUNDLED_MAJOR)) as cluster:
        yield cluster


def major(pg: TempCluster) -> int:
    return int(pg.scalar("SHOW server_version_num")) // 10000


def test_a_backup_of_the_old_server_restores_into_18_with_every_table_and_role(
    respaldo: Respaldo, pg: TempCluster, new_server: TempCluster
) -> None:
    assert major(pg) < major(new_server) == BUNDLED_MAJOR
    source = respaldo.dbname
    # A login role with a password: what --globals must carry over.
    role = f"erp_upgrade_{uuid.uuid4().hex[:8]}"
    pg.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'old server' IN ROLE erp_lectura").format(
            sql.Identifier(role)
        )
    )
    try:
        backup_id = respaldo.backup()["id"]
    finally:
        pg.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    password = secret_file(respaldo.tmp / "new.pass", new_server.password.get_secret_value())
    with respaldo.config.open("a") as fh:
        fh.write(
            '\n[[databases]]\nname = "erp_new"\n'
            f'dsn = "postgresql://{new_server.superuser}@{new_server.host}:{new_server.port}'
            f'/postgres"\npassword_file = "{password}"\n'
        )

    run = respaldo.run("restore", backup_id, "-t", "erp", "--database", "erp_new", "--globals")
    assert run.code == 0, str(run)
    assert "tables' row counts checked" in run.err

    tables = table_checksums(pg, source)
    assert len(tables) > 20
    assert table_checksums(new_server, "erp") == tables
    assert sequence_values(new_server, "erp") == sequence_values(pg, source)
    assert large_objects(new_server, "erp") == large_objects(pg, source)
    old_roles = [r for r in pg.query(_ROLES) if r[0] != role]
    new_roles = new_server.query(_ROLES)
    assert (role, True, -1, True, "erp_lectura") in new_roles
    assert [r for r in new_roles if r[0] != role] == old_roles
    owner = "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s"
    assert new_server.scalar(owner, ["erp"]) == pg.scalar(owner, [source])
