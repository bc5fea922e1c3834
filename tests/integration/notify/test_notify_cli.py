"""``respaldo notify test``: every target tried, each result reported, exit 1 on any
failure; the reasons never show a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from respaldo.cli.main import invoke
from tests.ports import closed_port
from tests.servers.notify import Smtp, Webhook, smtp, webhook  # noqa: F401

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, targets: str) -> Path:
    config = tmp_path / "respaldo.toml"
    config.write_text(f"""
[catalog]
url = "sqlite:///{tmp_path / "catalog.db"}"

[notifications]
language = "es"
timeout_seconds = 5
{targets}
""")
    return config


def test_every_target_is_tried_and_reported(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    smtp: Smtp,  # noqa: F811
    webhook: Webhook,  # noqa: F811
) -> None:
    monkeypatch.setenv("GONE_TOKEN", "tok-XYZ-123456")
    config = _config(
        tmp_path,
        f"""
[[notifications.targets]]
name = "mail"
url = "{smtp.url()}"
levels = ["critical"]

[[notifications.targets]]
name = "hook"
url = "{webhook.url}"
levels = ["success"]

[[notifications.targets]]
name = "gone"
url = "json://user:{{secret}}@127.0.0.1:{closed_port()}/x"
secret_env = "GONE_TOKEN"

[[notifications.targets]]
name = "nofile"
url = "json://127.0.0.1/{{secret}}"
secret_file = "{tmp_path / "missing"}"
""",
    )
    capsys.readouterr()
    code = invoke(["--config", str(config), "notify", "test", "--json"])
    out = capsys.readouterr().out
    assert code == 1
    results = {r["target"]: r for r in json.loads(out)["results"]}
    assert (results["mail"]["ok"], results["hook"]["ok"]) == (True, True)
    assert results["gone"]["ok"] is False
    assert "Connection error" in results["gone"]["error"]
    assert results["nofile"]["ok"] is False
    assert "cannot read secret_file of notification target nofile" in results["nofile"]["error"]
    assert "tok-XYZ-123456" not in out
    (mail,) = smtp.inbox.wait(1)
    assert mail["Subject"].startswith("[respaldo] CORRECTO: mensaje de prueba de respaldo en ")
    (hook,) = webhook.inbox.wait(1)
    assert hook["json"]["title"] == mail["Subject"]


def test_all_targets_reached_exits_0(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    webhook: Webhook,  # noqa: F811
) -> None:
    config = _config(tmp_path, f'[[notifications.targets]]\nname = "hook"\nurl = "{webhook.url}"\n')
    assert invoke(["--config", str(config), "notify", "test"]) == 0
    assert "sent" in capsys.readouterr().out
    assert len(webhook.inbox.wait(1)) == 1


def test_no_target_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke(["--config", str(_config(tmp_path, "")), "notify", "test"]) == 1
    # The table to configure, shown as written (Rich would read it as a style tag).
    assert "no notification target is configured ([[notifications.targets]])" in (
        capsys.readouterr().err
    )
