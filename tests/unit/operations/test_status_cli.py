"""``respaldo status [--json]``: a table per database, exit 3 when something is red."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.cli.main import invoke
from respaldo.config import load_settings
from respaldo.operations.context import Context
from tests.configs import erp_config
from tests.unit.operations.status_support import backup, drill


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return erp_config(tmp_path)


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


def test_the_table_and_the_list_name_the_kinds_as_the_reasons_do(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The status table's check column said "full backup" beside a reason saying "the
    newest logical backup", and 'respaldo list' a type "full", while the page said "Full
    (logical)": one kind, three names. The CLI and the page now say logical and physical
    (respaldo.operations.views.KIND_WORDS); --type and the JSON keep the values."""
    now = datetime.now(UTC)
    with Context.open(load_settings(config)) as ctx:
        newest = backup(ctx, now - timedelta(hours=3))
    _, out = run(config, capsys, "--no-servers")
    assert "logical backup" in out and "full backup" not in out, out
    capsys.readouterr()
    assert invoke(["--config", str(config), "list"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if newest in line]
    assert " logical " in row and " full " not in row, row
    assert invoke(["--config", str(config), "list", "--type", "full", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["backupType"] == "full"
