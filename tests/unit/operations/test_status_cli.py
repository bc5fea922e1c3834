"""``respaldo status [--json]``: a table per database, exit 3 when something is red."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.cli.main import invoke
from respaldo.config import load_settings
from respaldo.operations.context import Context
from tests.configs import local_config
from tests.unit.operations.status_support import backup, drill


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = local_config(
        tmp_path,
        """
[[databases]]
name = "erp"
dsn = "postgresql://respaldo@127.0.0.1:1/erp"
""",
    )
    Context.open(load_settings(path), create=True).close()
    return path


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = invoke(["--config", str(config), "status", *args])
    return code, capsys.readouterr().out


def test_a_database_never_backed_up_exits_3_and_says_so_first(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(config, capsys, "--no-servers")
    assert code == 3
    first = out.splitlines()[0]
    assert first.startswith("respaldo RED: 2 red, 1 amber - rpo:erp:full: no logical backup")
    assert "restore_test:erp: no restore test ever passed" in first
    assert "erp: red" in out


def test_all_within_their_limits_exits_0_and_json_is_the_model(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    with Context.open(load_settings(config)) as ctx:
        newest = backup(ctx, now - timedelta(hours=3))
        drill(ctx, newest, now - timedelta(hours=2), passed=True)
    code, out = run(config, capsys, "--no-servers", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["level"] == "amber"  # the repository was never created: amber, not red
    (erp,) = data["databases"]
    assert [(i["key"], i["level"]) for i in erp["items"]] == [
        ("rpo:erp:full", "green"),
        ("restore_test:erp", "green"),
    ]
    assert erp["items"][0]["backupId"] == newest


def test_an_unreachable_server_is_red_in_the_table(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    with Context.open(load_settings(config)) as ctx:
        newest = backup(ctx, now - timedelta(hours=3))
        drill(ctx, newest, now - timedelta(hours=2), passed=True)
    code, out = run(config, capsys)
    assert code == 3
    assert "server:erp: the server cannot be reached" in out.splitlines()[0]
