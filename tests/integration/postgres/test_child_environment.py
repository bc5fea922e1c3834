"""PostgreSQL programs get what they need from respaldo's environment, not its secrets.

respaldo's environment holds the repository passphrase, passwords given as
``RESPALDO_DATABASES`` JSON and storage credentials; ``pg_dump`` and ``pg_dumpall`` only
need a way to reach the server. Each test reads what a real child actually received:
``/proc/PID/environ`` of a running ``pg_dump``, ``env`` in place of ``pg_dumpall``, and
``env`` run by psql's ``\\!``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sample.cluster import TempCluster

from respaldo.errors import PostgresError
from respaldo.postgres import ConnInfo, pg_dump, pg_dumpall_globals, psql
from respaldo.postgres.commands import tool_version
from respaldo.postgres.datadir import combine_backups
from respaldo.postgres.toolsets import program_version
from tests.unit.postgres.support import base_backup

pytestmark = pytest.mark.integration

PASSPHRASE = "repository-passphrase-3c1f"
JSON_PASSWORD = "json-password-77aa"
AWS_SECRET = "aws-secret-0b5e"
STRAY_PASSWORD = "stray-pgpassword-91d0"


@pytest.fixture
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv(
        "RESPALDO_DATABASES", f'[{{"name": "x", "dsn": "host=h", "password": "{JSON_PASSWORD}"}}]'
    )
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("PGPASSWORD", STRAY_PASSWORD)
    monkeypatch.setenv("LC_TIME", "C")
    monkeypatch.setenv("PGAPPNAME", "respaldo-env-test")


def _proc_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def _assert_no_secrets(environ: dict[str, str]) -> None:
    text = "\n".join(f"{k}={v}" for k, v in environ.items())
    for secret in (PASSPHRASE, JSON_PASSWORD, AWS_SECRET, STRAY_PASSWORD):
        assert secret not in text
    assert not [name for name in environ if name.startswith("RESPALDO_")]


def test_pg_dump_gets_no_passphrase_and_no_other_password(
    pg: TempCluster, erp_db: str, secret_environment: None
) -> None:
    with pg_dump(pg.conninfo(erp_db)) as dump:
        # The dump is bigger than a pipe buffer: pg_dump waits for us, alive, meanwhile.
        assert dump.stdout.read(5) == b"PGDMP"
        environ = _proc_environ(dump.pid)
        while dump.stdout.read(1 << 16):
            pass
    _assert_no_secrets(environ)
    assert "PGPASSFILE" in environ  # its own password, the configured one
    assert environ["PATH"]
    assert environ["LC_TIME"] == "C"  # locale and libpq settings still reach it
    assert environ["PGAPPNAME"] == "respaldo-env-test"


def test_pg_dumpall_gets_no_passphrase_and_no_other_password(
    pg: TempCluster, secret_environment: None, tmp_path: Path
) -> None:
    # pg_dumpall's output fits in a pipe, so it is gone before /proc could be read: a
    # stand-in in a bindir of its own records the environment respaldo starts it with.
    for program in ("pg_dump", "pg_dumpall"):
        script = tmp_path / program
        script.write_text(f'#!/bin/sh\nenv > "{tmp_path}/$(basename "$0").env"\n')
        script.chmod(0o755)
    with pg_dumpall_globals(pg.conninfo("postgres"), bindir=tmp_path) as dump:
        dump.stdout.read()
    text = (tmp_path / "pg_dumpall.env").read_text()
    environ = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    _assert_no_secrets(environ)
    assert "PGPASSFILE" in environ


def _env_seen_by_psql(conninfo: ConnInfo) -> dict[str, str]:
    done = psql(conninfo, sql="\\! env\n")
    return dict(line.split("=", 1) for line in done.text.splitlines() if "=" in line)


def test_psql_gets_the_callers_pgpassword_only_without_a_configured_password(
    pg: TempCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("PGPASSWORD", pg.password.get_secret_value())
    # No password of its own: the caller's PGPASSWORD is how it was given, and it works.
    no_password = ConnInfo(host=pg.host, port=pg.port, user=pg.superuser, dbname="postgres")
    seen = _env_seen_by_psql(no_password)
    assert seen["PGPASSWORD"] == pg.password.get_secret_value()
    assert "RESPALDO_PASSPHRASE" not in seen
    # With its own password, the caller's is not passed on.
    monkeypatch.setenv("PGPASSWORD", STRAY_PASSWORD)
    seen = _env_seen_by_psql(pg.conninfo("postgres"))
    assert "PGPASSWORD" not in seen
    assert STRAY_PASSWORD not in str(seen)


def _stand_in(bindir: Path, program: str, then: str) -> Path:
    """A stand-in for ``program`` in ``bindir`` that records the environment it was
    started with in ``bindir/PROGRAM.env``, then runs ``then``."""
    bindir.mkdir(exist_ok=True)
    script = bindir / program
    script.write_text(f'#!/bin/sh\nenv > "{bindir}/{program}.env"\n{then}\n')
    script.chmod(0o755)
    return script


def _recorded(bindir: Path, program: str) -> dict[str, str]:
    text = (bindir / f"{program}.env").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_pg_combinebackup_gets_no_passphrase_and_no_password(
    secret_environment: None, tmp_path: Path
) -> None:
    # It runs as the server's OS user (who can read its /proc/PID/environ) for as long
    # as combining a cluster takes. The stand-in refuses after recording, as
    # pg_combinebackup refuses a chain it cannot combine.
    bindir = tmp_path / "bin"
    _stand_in(bindir, "pg_combinebackup", 'echo "pg_combinebackup: error: refused" >&2; exit 1')
    target = tmp_path / "restored"
    target.mkdir()
    with pytest.raises(PostgresError, match="refused"):
        combine_backups([[base_backup()]], target, bindir=bindir, owner=None)
    environ = _recorded(bindir, "pg_combinebackup")
    _assert_no_secrets(environ)
    assert "PGPASSFILE" not in environ
    assert environ["PATH"]
    assert environ["LC_TIME"] == "C"


def test_asking_a_program_its_version_hands_it_no_secret(
    secret_environment: None, tmp_path: Path
) -> None:
    # Both ways respaldo asks a PostgreSQL program its version: the one that picks the
    # tools for a server's major version, and the one of `respaldo check`.
    bindir = tmp_path / "bin"
    _stand_in(bindir, "pg_dump", 'echo "pg_dump (PostgreSQL) 15.4"')
    assert program_version(bindir / "pg_dump").major == 15
    first = _recorded(bindir, "pg_dump")
    (bindir / "pg_dump.env").unlink()
    assert tool_version("pg_dump", bindir=bindir).minor == 4
    for environ in (first, _recorded(bindir, "pg_dump")):
        _assert_no_secrets(environ)
        assert environ["PATH"]
