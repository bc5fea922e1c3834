"""``respaldo check``: against a server set up for archiving, one that is not, and one
whose archiving fails in a way PostgreSQL does not count."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.cli.main import invoke
from respaldo.config import load_settings
from respaldo.operations.repositories import init_repositories
from tests.integration.physical.conftest import (
    FAST_KDF,
    SHOP,
    Archiving,
    chown_tree,
    write_config,
)

pytestmark = pytest.mark.integration


def _findings(out: str) -> dict[str, dict[str, str]]:
    return {f["check"]: f for f in json.loads(out)}


def test_a_server_set_up_for_archiving_passes(archiving: Archiving) -> None:
    run = archiving.run("check", "erp", "--json")
    assert run.code == 0, str(run)
    findings = _findings(run.out)
    assert {f["status"] for f in findings.values()} == {"ok"}, findings
    for name in (
        "wal_level",
        "max_wal_senders",
        "replication role",
        "replication connection",
        "archive_mode",
        "archive_command",
        "archiver",
        "cluster record",
        "archive program",
        "server user access",
    ):
        assert name in findings


def test_a_repository_directory_the_server_cannot_write_is_found(archiving: Archiving) -> None:
    """A directory left owned by root (what a root backup made before respaldo wrote as
    the repository's owner) fails every push; check names it."""
    if os.geteuid() != 0:
        pytest.skip("only root makes a directory the server's user cannot write")
    blocked = archiving.repo_dir / "wal" / "9999999999"
    blocked.mkdir(mode=0o700)
    try:
        run = archiving.run("check", "erp", "--json")
        assert run.code == 3, str(run)
        access = _findings(run.out)["server user access"]
        assert access["status"] == "missing", access
        assert f"cannot write into {blocked} (drwx------ root:root)" in access["value"]
        assert "chown -R postgres" in access["fix"]
        assert _findings(run.out)["archive program"]["status"] == "ok"
    finally:
        blocked.rmdir()


def test_what_a_plain_server_lacks_and_how_to_fix_it(
    pg: TempCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'no_replication')"
        " THEN CREATE ROLE no_replication LOGIN PASSWORD 'plain-pass-1'; END IF; END $$"
    )
    config = write_config(tmp_path, pg)
    (tmp_path / "db.pass").write_text("plain-pass-1\n")
    text = config.read_text().replace(f"{pg.superuser}@", "no_replication@")
    config.write_text(text.replace("/shop", "/postgres"))
    capsys.readouterr()
    code = invoke(["--config", str(config), "check", "erp", "--json"])
    out, err = capsys.readouterr()
    assert code == 3, err
    findings = _findings(out)
    assert findings["connection"]["status"] == "ok", findings
    assert findings["wal_level"]["status"] == "ok"
    assert findings["archive_mode"]["status"] == "missing"
    assert "ALTER SYSTEM SET archive_mode = on" in findings["archive_mode"]["fix"]
    assert findings["archive_command"]["status"] == "missing"
    assert "wal-push %p" in findings["archive_command"]["fix"]
    assert findings["replication role"]["status"] == "missing"
    assert 'ALTER ROLE "no_replication" WITH REPLICATION' in findings["replication role"]["fix"]
    assert findings["replication connection"]["status"] == "missing"
    # The table for people names every check and its fix.
    capsys.readouterr()
    assert invoke(["--config", str(config), "check", "erp"]) == 3
    _, err = capsys.readouterr()
    assert "archive_mode" in err and "ALTER SYSTEM" in err


@dataclass(frozen=True)
class FailingArchiver:
    pg: TempCluster
    config: Path
    segment: str
    """The segment whose archiving failed."""


def _wait_for_log(pg: TempCluster, text: str, timeout: float = 300) -> None:
    # Generous: the line comes within a second on a quiet machine; only a hang waits long.
    deadline = time.monotonic() + timeout
    while text not in pg.logfile.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} not in the server log"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def failing_archiver() -> Iterator[FailingArchiver]:
    """A cluster whose ``archive_command`` names a respaldo its user cannot execute.

    The shell then exits with 126, which PostgreSQL treats as fatal for the archiver
    (above 125): the archiver exits and restarts, and ``pg_stat_archiver`` counts no
    failure. One segment is switched and its failure awaited in the server log.
    """
    base = Path(tempfile.mkdtemp(prefix="respaldo-noexec-"))
    cluster: TempCluster | None = None
    try:
        program = base / "respaldo"
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(0o644)  # readable, not executable
        config = base / "respaldo.toml"
        cluster = TempCluster.create(
            settings={
                "archive_mode": "on",
                "archive_command": f"{program} --config {config} wal-push %p",
            }
        )
        write_config(base, cluster)
        init_repositories(load_settings(config), kdf=FAST_KDF)
        chown_tree(base)
        cluster.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SHOP)))
        segment = str(cluster.scalar("SELECT pg_walfile_name(pg_switch_wal())"))
        _wait_for_log(cluster, "archive command failed with exit code 126")
        yield FailingArchiver(cluster, config, segment)
    finally:
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


def test_archiving_that_fails_uncounted_is_reported(
    failing_archiver: FailingArchiver, capsys: pytest.CaptureFixture[str]
) -> None:
    pg = failing_archiver.pg
    # What fooled the check before: the statistics show no failure at all.
    (row,) = pg.query("SELECT failed_count, last_archived_wal FROM pg_stat_archiver")
    assert row == (0, None)
    # The segment has waited an hour (its .ready file says when it began to wait).
    ready = pg.datadir / "pg_wal" / "archive_status" / f"{failing_archiver.segment}.ready"
    assert ready.exists()
    an_hour_ago = time.time() - 3600
    os.utime(ready, (an_hour_ago, an_hour_ago))

    capsys.readouterr()
    code = invoke(["--config", str(failing_archiver.config), "check", "erp", "--json"])
    out, err = capsys.readouterr()
    assert code == 3, err
    archiver = _findings(out)["archiver"]
    assert archiver["status"] == "missing", archiver
    assert "archiving is failing: 1 segment waiting, the oldest for 1 h" in archiver["value"]
    assert "never archived" in archiver["value"]
    assert "executable" in archiver["fix"] and "server log" in archiver["fix"]
    # Asked as the server's user, the cause itself is found.
    program = _findings(out)["archive program"]
    assert program["status"] == "missing", program
    assert "postgres cannot run it" in program["value"]
    assert "Permission denied" in program["value"]
    assert "make install" in program["fix"]
    # People see it too, in the table.
    assert invoke(["--config", str(failing_archiver.config), "check", "erp"]) == 3
    assert "archiving is failing" in capsys.readouterr().err


def test_a_broken_archive_command_just_set_is_not_proven(
    failing_archiver: FailingArchiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before its segment has waited 5 minutes, the failure is neither counted nor
    stuck: check must not say ok while nothing was ever archived."""
    pg = failing_archiver.pg
    ready = pg.datadir / "pg_wal" / "archive_status" / f"{failing_archiver.segment}.ready"
    os.utime(ready)  # it began to wait just now
    capsys.readouterr()
    invoke(["--config", str(failing_archiver.config), "check", "erp", "--json"])
    out, _ = capsys.readouterr()
    archiver = _findings(out)["archiver"]
    assert archiver["status"] == "warning", archiver
    assert archiver["value"] == "not proven yet: 1 segment waiting, none archived yet"
    assert "pg_switch_wal()" in archiver["fix"]


def test_a_role_that_may_not_list_the_waiting_segments_is_told_so(
    archiving: Archiving, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg = archiving.pg
    pg.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'no_monitor')"
        " THEN CREATE ROLE no_monitor LOGIN REPLICATION PASSWORD 'plain-pass-2'; END IF; END $$"
    )
    config = write_config(tmp_path, pg)
    (tmp_path / "db.pass").write_text("plain-pass-2\n")
    config.write_text(config.read_text().replace(f"{pg.superuser}@", "no_monitor@"))
    capsys.readouterr()
    invoke(["--config", str(config), "check", "erp", "--json"])
    out, _ = capsys.readouterr()
    archiver = _findings(out)["archiver"]
    assert archiver["status"] == "warning", archiver
    assert "could not check the segments waiting to be archived" in archiver["value"]
    assert "pg_monitor" in archiver["fix"]


def _check_as(
    pg: TempCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str], role: str
) -> dict[str, dict[str, str]]:
    """``check --json``'s findings for a config whose DSN logs in as ``role`` (made with
    the password 'plain-pass-1' if missing)."""
    exists = pg.scalar("SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname = %s", [role])
    if not exists:
        pg.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'plain-pass-1'").format(sql.Identifier(role))
        )
    config = tmp_path / "respaldo.toml"
    if not config.exists():
        write_config(tmp_path, pg)
        (tmp_path / "db.pass").write_text("plain-pass-1\n")
    text = config.read_text()
    start = text.index("postgresql://") + len("postgresql://")
    text = text[:start] + quote(role, safe="") + text[text.index("@", start) :]
    config.write_text(text.replace("/shop", "/postgres"))
    capsys.readouterr()
    code = invoke(["--config", str(config), "check", "erp", "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 3), err
    return _findings(out)


def test_the_replication_grant_check_suggests_runs_for_a_role_with_quotes(
    pg: TempCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It was 'ALTER ROLE "Jefe "de" Obra" WITH REPLICATION': a syntax error in psql.
    role = 'Jefe "de" Obra'
    try:
        findings = _check_as(pg, tmp_path, capsys, role)
        fix = findings["replication role"]["fix"]
        assert fix == 'ALTER ROLE "Jefe ""de"" Obra" WITH REPLICATION', findings
        assert findings["replication connection"]["fix"] == fix
        pg.execute(fix)
        findings = _check_as(pg, tmp_path, capsys, role)
        assert findings["replication role"]["status"] == "ok", findings
        assert findings["replication connection"]["status"] == "ok", findings
    finally:
        pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_the_pg_hba_line_check_suggests_admits_a_role_with_a_space(
    pg: TempCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It was "host replication Jefe de Obra ...": pg_hba.conf read the role as "Jefe"
    # and the database list as "replication", "de", ...
    role = "Jefe de Obra"
    hba = pg.datadir / "pg_hba.conf"
    original = hba.read_text()
    try:
        pg.execute(
            sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD 'plain-pass-1'").format(
                sql.Identifier(role)
            )
        )
        kept = [line for line in original.splitlines() if " replication " not in line]
        hba.write_text("\n".join(kept) + "\n")
        pg.execute("SELECT pg_catalog.pg_reload_conf()")
        findings = _check_as(pg, tmp_path, capsys, role)
        refused = findings["replication connection"]
        assert refused["status"] == "missing", findings
        line = refused["fix"].removeprefix("add to pg_hba.conf: ").split(";")[0]
        assert line == 'host replication "Jefe de Obra" <respaldo\'s address>/32 scram-sha-256'
        with hba.open("a") as fh:
            fh.write(line.replace("<respaldo's address>", pg.host) + "\n")
        pg.execute("SELECT pg_catalog.pg_reload_conf()")
        findings = _check_as(pg, tmp_path, capsys, role)
        assert findings["replication connection"]["status"] == "ok", findings
    finally:
        hba.write_text(original)
        pg.execute("SELECT pg_catalog.pg_reload_conf()")
        pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_the_archive_command_check_suggests_runs_for_a_config_path_with_a_space(
    pg: TempCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # shlex quoted the path in single quotes inside the SQL literal: "ALTER SYSTEM SET
    # archive_command = '... --config '/srv/Copias de seguridad/...' ...'", a syntax
    # error; and a "%" in it would have been taken for one of archive_command's escapes.
    base = tmp_path / "Copias de seguridad al 100%"
    base.mkdir()
    config = write_config(base, pg)
    config.write_text(config.read_text().replace("/shop", "/postgres"))
    capsys.readouterr()
    code = invoke(["--config", str(config), "check", "erp", "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 3), err
    finding = _findings(out)["archive_command"]
    assert finding["status"] == "missing", finding
    statement, reload = finding["fix"].split("; ")
    assert reload == "then SELECT pg_reload_conf()"
    try:
        pg.execute(statement)
        pg.execute("SELECT pg_catalog.pg_reload_conf()")
        # SHOW says "(disabled)" while archive_mode is off: the value as the file holds it.
        command = str(
            pg.scalar(
                "SELECT setting FROM pg_catalog.pg_file_settings"
                " WHERE name = 'archive_command' AND sourcefile LIKE '%postgresql.auto.conf'"
            )
        )
        # What the shell gets: PostgreSQL's %-escapes replaced first.
        expanded = command.replace("%%", "\0").replace("%p", "pg_wal/0001").replace("\0", "%")
        argv = shlex.split(expanded)
        assert argv[argv.index("--config") + 1] == str(config), command
        assert argv[-2:] == ["wal-push", "pg_wal/0001"], command
    finally:
        pg.execute("ALTER SYSTEM RESET archive_command")
        pg.execute("SELECT pg_catalog.pg_reload_conf()")
