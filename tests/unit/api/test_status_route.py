"""``GET /admin/status``: the API answers the very report ``respaldo status --json`` and
the page's health show, file sets and the items of no one database included (``GET
/admin/databases`` has neither)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import BackupKind, Role
from respaldo.operations.context import Context
from respaldo.operations.repositories import init_repositories
from respaldo.operations.status import compute_status
from tests.unit.api.conftest import FAST_KDF, completed_backup, token_headers

pytestmark = pytest.mark.unit


@pytest.fixture
def context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "correct horse (test)")
    (tmp_path / "docs").mkdir()
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        repositories=[{"name": "local", "url": f"file://{tmp_path / 'repo'}"}],
        databases=[{"name": "erp", "dsn": "postgresql://u@127.0.0.1:1/erp"}],
        file_sets=[{"name": "docs", "paths": [tmp_path / "docs"]}],
        cache_dir=tmp_path / "cache",
    )
    init_repositories(settings, kdf=FAST_KDF)
    with Context.open(settings, create=True) as opened:
        yield opened


_DURATION = re.compile(r"\b\d+(?:\.\d+)? (?:s|min|h|d)\b")


def _without_times(report: dict[str, Any]) -> dict[str, Any]:
    # Computed a moment apart: the instants differ, the verdicts do not. The reasons'
    # durations too: "never verified in the 0 s since the status first looked" of the
    # API's report reads "1 s" a second later on a loaded machine.
    def item(found: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in found.items() if k != "ageSeconds"}
        kept["reason"] = _DURATION.sub("<duration>", kept["reason"])
        return kept

    return {
        "level": report["level"],
        "general": [item(i) for i in report["general"]],
        "databases": [
            {**db, "items": [item(i) for i in db["items"]]} for db in report["databases"]
        ],
    }


def test_the_api_answers_the_status_report_of_the_cli_and_the_page(context: Context) -> None:
    completed_backup(context, "erp", BackupKind.FULL, datetime.now(UTC) - timedelta(hours=2))
    # docs never backed up: red, which only the whole report shows.
    headers = token_headers(context, "viewer", Role.VIEWER)
    with TestClient(create_app(context.settings, context)) as client:
        answer = client.get("/admin/status", params={"servers": "false"}, headers=headers)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    cli = compute_status(context, datetime.now(UTC), servers=False).to_json()
    assert _without_times(got) == _without_times(cli)
    assert got["level"] == "red"
    assert [db["database"] for db in got["databases"]] == ["erp", "docs"]
