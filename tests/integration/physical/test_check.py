"""``respaldo check``: against a server set up for archiving, and one that is not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sample.cluster import TempCluster

from respaldo.cli.main import invoke
from tests.integration.physical.conftest import Archiving, write_config

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
        "cluster record",
    ):
        assert name in findings


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
