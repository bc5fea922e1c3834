"""A backup role that cannot read every row: the backup fails, and says why.

The role is not a superuser: it reads through ``pg_read_all_data``, which row-level
security still applies to. The rows are counted (row security off, as pg_dump does) in
the snapshot pg_dump imports: a count that fails ends that snapshot's transaction, and
pg_dump then only says that it could not import the snapshot. The message must name the
cause instead, and the hint say what the role needs.
"""

from __future__ import annotations

import os

import pytest
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo

pytestmark = pytest.mark.integration

ROLE_PASSWORD = "Secr3t-backup-ro"


def configure_backup_role(
    respaldo: Respaldo,
    pg: TempCluster,
    role: str,
    *,
    source: str = "ro",
    password: str = ROLE_PASSWORD,
    attributes: str = "",
) -> None:
    """Create ``role`` (LOGIN, ``attributes``, member of pg_read_all_data) and configure
    database ``source``: the test database, backed up as that role through a 0600
    password file."""
    pg.execute(
        f"CREATE ROLE {role} LOGIN {attributes} PASSWORD '{password}';"
        f"GRANT pg_read_all_data TO {role};"
        # Large objects need a privilege of their own: not what this is about.
        "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata",
        dbname=respaldo.dbname,
    )
    secret = respaldo.tmp / f"{role}.pass"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (password + "\n").encode())
    os.close(fd)
    with respaldo.config.open("a") as config:
        config.write(
            f'\n[[databases]]\nname = "{source}"\n'
            f'dsn = "postgresql://{role}@{pg.host}:{pg.port}/{respaldo.dbname}"\n'
            f'password_file = "{secret}"\n'
        )


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_table_row_security_hides_fails_the_backup_naming_it(
    respaldo: Respaldo, pg: TempCluster, jobs: str
) -> None:
    role = f"ro_{respaldo.dbname[-8:]}"
    configure_backup_role(respaldo, pg, role)
    pg.execute(
        "CREATE TABLE public.secreto (id int, dueno text);"
        "INSERT INTO public.secreto SELECT g, 'x' FROM generate_series(1, 9) g;"
        "ALTER TABLE public.secreto ENABLE ROW LEVEL SECURITY;"
        "CREATE POLICY solo_suyo ON public.secreto USING (dueno = current_user)",
        dbname=respaldo.dbname,
    )
    try:
        run = respaldo.run("backup", "ro", "--jobs", jobs)
    finally:
        pg.execute(f"DROP OWNED BY {role}; DROP ROLE {role}", dbname=respaldo.dbname)

    assert run.code == 1, str(run)
    assert len(run.err_lines) == 2, str(run)
    error, hint = run.err_lines
    assert "row-level security" in error and "secreto" in error, error
    assert "import the requested snapshot" not in error, error
    assert "BYPASSRLS" in hint
    assert [r.status for r in respaldo.records() if r.status == "completed"] == []
