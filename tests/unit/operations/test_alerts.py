"""Alerts through the application seam: conditions with a controllable clock, failure
alerts with their details, throttling, and targets that cannot be reached. The targets
are real: a JSON webhook on loopback, and a loopback port where nothing listens."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from respaldo.catalog import Deliveries, Notifications
from respaldo.config import Settings
from respaldo.errors import ConnectionFailed
from respaldo.operations import alerts
from respaldo.operations.context import Context
from tests.ports import closed_port
from tests.servers.notify import Webhook, webhook  # noqa: F401

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _context(tmp_path: Path, targets: list[dict[str, Any]], **notifications: Any) -> Context:
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        cache_dir=tmp_path / "cache",
        notifications={"targets": targets, "repeat_interval_minutes": 60, **notifications},
    )
    return Context.open(settings, create=True)


@pytest.fixture
def ctx(tmp_path: Path, webhook: Webhook) -> Iterator[Context]:  # noqa: F811
    context = _context(
        tmp_path,
        [{"name": "hook", "url": webhook.url, "levels": ["critical", "warning", "resolved"]}],
    )
    try:
        yield context
    finally:
        context.close()


def test_a_condition_alerts_once_repeats_after_the_interval_and_resolves_once(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    def state(firing: bool, minutes: float) -> str:
        return alerts.set_condition(
            ctx,
            "rpo:erp:full",
            firing,
            message="no full backup of {database} for {hours} h",
            args={"database": "erp", "hours": 27},
            database="erp",
            now=T0 + timedelta(minutes=minutes),
        ).action

    assert state(False, 0) == "quiet"
    assert state(True, 1) == "raised"
    assert state(True, 2) == "throttled"
    assert state(True, 60) == "throttled"  # 59 minutes after the alert: within the hour
    assert state(True, 61) == "repeated"
    assert state(True, 62) == "throttled"
    assert state(False, 63) == "resolved"
    assert state(False, 64) == "quiet"
    assert state(True, 65) == "raised"  # a new episode alerts at once
    got = webhook.inbox.wait(4)
    titles = [m["json"]["title"] for m in got]
    assert titles == [
        "[respaldo] CRITICAL: no full backup of erp for 27 h",
        "[respaldo] CRITICAL: still: no full backup of erp for 27 h",
        "[respaldo] RESOLVED: resolved: no full backup of erp for 27 h",
        "[respaldo] CRITICAL: no full backup of erp for 27 h",
    ]
    assert [m["json"]["type"] for m in got] == ["failure", "failure", "success", "failure"]


def test_a_failure_alert_says_what_where_why_and_what_to_do(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    error = ConnectionFailed(
        "cannot connect to erp: connection refused", hint="start PostgreSQL, then run it again"
    )
    results = alerts.notify_failure(
        ctx, "backup", error, database="erp", repository="local", job_id=7
    )
    assert [(r.target, r.ok) for r in results] == [("hook", True)]
    (got,) = webhook.inbox.wait(1)
    assert got["json"]["title"] == "[respaldo] CRITICAL: backup of erp failed"
    body = got["json"]["message"]
    for line in (
        "Database: erp",
        "Repository: local",
        "Error: cannot connect to erp: connection refused",
        "What to do: start PostgreSQL, then run it again",
        "Job: 7",
        "Host: ",
    ):
        assert line in body
    with ctx.catalog.read() as session:
        (row,) = Notifications(session).list()
        assert (row.target, row.ok, row.kind, row.level) == ("hook", True, "backup", "critical")


def test_a_throttled_failure_is_sent_once_per_repeat_interval(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    def push(minutes: float) -> int:
        sent = alerts.notify_failure(
            ctx,
            "wal-push",
            "the repository is unreachable",
            database="erp",
            throttle_key="wal-push:erp",
            now=T0 + timedelta(minutes=minutes),
        )
        return len(sent)

    assert [push(m) for m in (0, 1, 30, 59, 60, 61)] == [1, 0, 0, 0, 1, 0]
    assert len(webhook.inbox.wait(2)) == 2


def test_an_unreachable_target_is_recorded_and_logged_without_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-T0ken-value"
    monkeypatch.setenv("HOOK_TOKEN", secret)
    url = f"json://respaldo:{{secret}}@127.0.0.1:{closed_port()}/hook"
    caplog.set_level(logging.DEBUG)
    with _context(tmp_path, [{"name": "down", "url": url, "secret_env": "HOOK_TOKEN"}]) as ctx:
        results = alerts.notify_failure(ctx, "backup", "pg_dump failed", database="erp")
        assert [(r.target, r.ok) for r in results] == [("down", False)]
        assert results[0].error and "down" in results[0].error
        with ctx.catalog.read() as session:
            (row,) = Notifications(session).list()
            assert (row.ok, row.target) == (False, "down")
            recorded = row.error or ""
    for text in (results[0].error or "", recorded, caplog.text):
        assert secret not in text
        assert secret[:1] + "..." + secret[-1:] not in text  # apprise's "privacy" form
    assert "notification to down failed" in caplog.text


def test_an_alert_a_target_refused_is_retried_with_backoff_then_given_up(
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The webhook took it; the other target refuses it for longer than retry_hours: it
    # is tried again with backoff (never again to the webhook), then given up, loudly.
    down = f"json://127.0.0.1:{closed_port()}/hook"
    targets = [{"name": "hook", "url": webhook.url}, {"name": "down", "url": down}]
    minute = timedelta(minutes=1)

    def retried(at: timedelta) -> list[tuple[str, bool]]:
        return [(r.target, r.ok) for r in alerts.retry_deliveries(context, T0 + at)]

    with _context(tmp_path, targets, retry_hours=2) as context:
        sent = alerts.notify_failure(context, "backup", "pg_dump failed", database="erp", now=T0)
        assert [(r.target, r.ok) for r in sent] == [("hook", True), ("down", False)]
        assert retried(minute / 2) == []  # not due yet
        assert retried(minute) == [("down", False)]
        assert retried(2 * minute) == []  # the wait doubled: next at 3 minutes
        assert retried(3 * minute) == [("down", False)]
        with caplog.at_level(logging.ERROR):
            assert retried(2 * 60 * minute) == []
        assert retried(3 * 60 * minute) == []  # given up: never tried again
        with context.catalog.read() as session:
            (row,) = Deliveries(session).unsettled(since=T0)
            assert (row.target, row.state, row.attempts) == ("down", "given_up", 3)
            assert (row.error or "").startswith("not delivered in 2 h (3 attempts): ")
            tries = [(n.target, n.ok) for n in Notifications(session).list()]
        assert tries == [("down", False)] * 3 + [("hook", True)]
    assert "to notification target down given up: not delivered in 2 h" in caplog.text
    assert len(webhook.inbox.items) == 1


def test_an_alert_sent_whose_outcome_the_catalog_did_not_note_is_sent_again(
    tmp_path: Path,
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    # At least once: the message went, but the catalog failed the write that notes it
    # sent (a full disk; as for a process killed between the two). Still pending, it
    # goes again at its next try: told twice rather than lost.
    dead = {"name": "hook", "url": f"json://127.0.0.1:{closed_port()}/", "levels": ["critical"]}
    with _context(tmp_path, [dead]) as down:
        alerts.notify_failure(down, "backup", "pg_dump: connection refused", now=T0)
    with ctx.catalog.begin() as session:
        session.execute(
            sa.text(
                "CREATE TRIGGER no_write BEFORE UPDATE ON alert_deliveries"
                " WHEN new.state = 'sent'"
                " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        )
    hour = timedelta(hours=1)
    assert [d.ok for d in alerts.retry_deliveries(ctx, T0 + hour)] == [True]
    assert len(webhook.inbox.wait(1)) == 1
    with ctx.catalog.begin() as session:
        session.execute(sa.text("DROP TRIGGER no_write"))
    assert alerts.retry_deliveries(ctx, T0 + hour) == []  # its next try is not due yet
    assert [d.ok for d in alerts.retry_deliveries(ctx, T0 + 2 * hour)] == [True]
    assert alerts.retry_deliveries(ctx, T0 + 3 * hour) == []  # noted: no more
    assert len(webhook.inbox.wait(2)) == 2


def test_no_alert_when_no_target_takes_the_level(
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
) -> None:
    targets = [{"name": "hook", "url": webhook.url, "levels": ["success"]}]
    with _context(tmp_path, targets) as ctx:
        assert alerts.notify_failure(ctx, "backup", "failed", database="erp") == []
        result = alerts.set_condition(ctx, "k", True, message="bad", now=T0)
        assert (result.action, result.deliveries) == ("raised", [])


def test_spanish_messages(
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
) -> None:
    targets = [{"name": "hook", "url": webhook.url}]
    with _context(tmp_path, targets, language="es") as ctx:
        alerts.notify_failure(ctx, "drill", "a check failed", database="erp", hint="look")
    (got,) = webhook.inbox.wait(1)
    assert got["json"]["title"] == "[respaldo] CRÍTICO: falló prueba de restauración de erp"
    assert "Base de datos: erp" in got["json"]["message"]
    assert "Qué hacer: look" in got["json"]["message"]


def test_an_exception_marked_alerted_is_known_through_its_wrappers() -> None:
    inner = alerts.mark_alerted(ValueError("x"))
    try:
        raise RuntimeError("outer") from inner
    except RuntimeError as outer:
        assert alerts.was_alerted(outer)
    assert not alerts.was_alerted(ValueError("y"))


def test_a_condition_another_service_recorded_at_the_same_moment_is_told_by_it_alone(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two services on one catalog check at the same moment: the other one inserted the
    # new condition's row between this one's read and its insert.
    def fire() -> str:
        return alerts.set_condition(
            ctx, "server:erp", True, message="the server of erp is down", now=T0
        ).action

    assert fire() == "raised"  # the other service's row, and its message
    from respaldo.catalog import AlertStates

    real = AlertStates.get
    calls: list[str] = []

    def raced(self: AlertStates, key: str) -> Any:
        calls.append(key)
        return None if len(calls) == 1 else real(self, key)

    monkeypatch.setattr(AlertStates, "get", raced)
    assert fire() == "quiet"
    assert len(webhook.inbox.wait(1)) == 1  # not told twice
