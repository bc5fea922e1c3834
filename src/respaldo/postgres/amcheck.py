"""pg_amcheck: structural checks of tables and B-tree indexes of a database."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from respaldo.errors import PostgresError
from respaldo.postgres.commands import tool_path
from respaldo.postgres.connection import ConnInfo, child_connection, scrub


@dataclass(frozen=True)
class AmcheckResult:
    ok: bool
    report: str


def pg_amcheck(
    conninfo: ConnInfo, *, timeout: float = 3600, bindir: Path | str | None = None
) -> AmcheckResult:
    """Run ``pg_amcheck --install-missing --heapallindexed`` on ``conninfo.dbname``.

    ``--install-missing`` creates the amcheck extension, so use it on scratch databases
    (a restore test's), not on production ones. Exit status 2 means corruption found:
    that is a result (ok False, with pg_amcheck's report), not an error. Raises
    PostgresError when pg_amcheck itself fails (cannot connect, status 1).
    """
    path = tool_path("pg_amcheck", bindir)
    with child_connection(conninfo) as child:
        # pg_amcheck takes the database as its last argument, not --dbname; a connection
        # string is accepted there, and it holds no password (that is in the passfile).
        argv = [str(path), "--install-missing", "--heapallindexed", "--no-password", child.args[-1]]
        try:
            done = subprocess.run(
                argv, env=child.env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise PostgresError("pg_amcheck", -9, f"timed out after {timeout} s") from None
    output = scrub((done.stdout + done.stderr).strip(), conninfo.secrets())
    if done.returncode == 0:
        return AmcheckResult(True, output)
    if done.returncode == 2:
        return AmcheckResult(False, output)
    raise PostgresError("pg_amcheck", done.returncode, output)
