"""An alert a target refused is not lost: the mail server (a real aiosmtpd on loopback)
is down when a watched condition turns red, resolves, a throttled failure (a WAL push)
happens or a scheduled backup fails, and the message is kept pending in the catalog and
goes out once it is back (the service's resend: ``alerts.retry_deliveries``), exactly
once and in order, even when another target (a webhook) took it at once; or it is
given up after ``[notifications] retry_hours``. And a catalog that cannot be read, where
the alert states live, is still alerted on, once, and resolved once. The clock is the
test's (``now``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from respaldo.config import Settings
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.errors import RespaldoError
from respaldo.operations import alerts, jobs, watchdog
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest
from respaldo.operations.scheduled import run_queued
from respaldo.operations.status_notify import notify_items
from respaldo.scheduling.service import Service
from tests.ports import closed_port, reserved_port
from tests.servers.notify import Smtp, Webhook, webhook  # noqa: F401
from tests.unit.operations.status_support import NOW, backup, drill, status_settings

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
MIN = timedelta(minutes=1)


def _settings(tmp_path: Path, port: int, *others: dict[str, Any], **options: Any) -> Settings:
    target = {
        "name": "ops-mail",
        "url": f"mailto://127.0.0.1:{port}?from=respaldo@example.com&to=ops@example.com",
        "levels": ["critical", "resolved"],
    }
    notifications = {"targets": [target, *others], "timeout_seconds": 5, **options}
    return status_settings(tmp_path, notifications=notifications)


@pytest.fixture
def port() -> int:
    return reserved_port()


@pytest.fixture
def ctx(tmp_path: Path, port: int) -> Iterator[Context]:
    with Context.open(_settings(tmp_path, port), create=True) as context:
        yield context


def watch(ctx: Context, at: timedelta) -> alerts.ConditionResult:
    result = watchdog.check(ctx, NOW + at, wal_archived=(), servers=False)
    (found,) = [c for c in result.conditions if c.key == "rpo:erp:full"]
    return found


def subjects(smtp: Smtp) -> list[str]:
    return [str(m["Subject"]) for m in smtp.inbox.items]


def retry(ctx: Context, at: timedelta) -> list[bool]:
    """The service's resend at ``NOW + at``: what it sent again, and how each went."""
    return [d.ok for d in alerts.retry_deliveries(ctx, NOW + at)]


def test_a_condition_told_while_the_mail_server_is_down_is_told_when_it_is_back(
    ctx: Context, port: int
) -> None:
    last = backup(ctx, NOW - 27 * H)
    drill(ctx, last, NOW - H, passed=True)
    # Red, and nobody listens on the mail server's port.
    first = watch(ctx, 0 * H)
    assert first.action == "raised"
    assert [d.ok for d in first.deliveries] == [False]

    assert watch(ctx, MIN).action == "throttled"  # kept to send: not raised again

    smtp = Smtp(port)
    try:
        # The resend, once the backoff (a minute) is due.
        assert retry(ctx, MIN / 2) == []
        assert retry(ctx, 2 * MIN) == [True]
        assert subjects(smtp) == [
            "[respaldo] CRITICAL: no logical backup of erp for 27 h (RPO 26 h)"
        ]
        assert retry(ctx, 10 * MIN) == []  # delivered once: never again
        assert watch(ctx, 10 * MIN).action == "throttled"  # told: no repeat
    finally:
        smtp.close()

    # A backup resolves it while the mail server is down again: the "resolved" message
    # is not lost either.
    backup(ctx, NOW + 12 * MIN)
    gone = watch(ctx, 15 * MIN)
    assert gone.action == "resolved" and [d.ok for d in gone.deliveries] == [False]
    smtp = Smtp(port)
    try:
        assert watch(ctx, 20 * MIN).action == "quiet"
        assert retry(ctx, 20 * MIN) == [True]
        assert subjects(smtp) == [
            "[respaldo] RESOLVED: resolved: no logical backup of erp for 27 h 10 min (RPO 26 h)"
        ]
        assert watch(ctx, 25 * MIN).action == "quiet"
        assert retry(ctx, 25 * MIN) == []
        assert len(smtp.inbox.items) == 1
    finally:
        smtp.close()


def test_a_repeat_told_while_the_mail_server_is_down_is_told_when_it_is_back(
    ctx: Context, port: int
) -> None:
    last = backup(ctx, NOW - 27 * H)
    drill(ctx, last, NOW - H, passed=True)
    smtp = Smtp(port)
    try:
        assert watch(ctx, 0 * H).action == "raised"
    finally:
        smtp.close()
    failed = watch(ctx, 6 * H)
    assert failed.action == "repeated" and [d.ok for d in failed.deliveries] == [False]
    smtp = Smtp(port)
    try:
        assert watch(ctx, 6 * H + 5 * MIN).action == "throttled"
        assert retry(ctx, 6 * H + 5 * MIN) == [True]
        assert subjects(smtp) == [
            "[respaldo] CRITICAL: still: no logical backup of erp for 33 h (RPO 26 h)"
        ]
    finally:
        smtp.close()


def test_a_throttled_failure_alert_that_no_target_took_is_sent_once_when_it_is_back(
    ctx: Context, port: int
) -> None:
    # The server retries a failed archive_command every minute: one alert per repeat
    # interval, kept until it reaches somebody (not one queued per failure).
    def wal_push_fails(at: timedelta) -> list[alerts.DeliveryResult]:
        return alerts.notify_failure(
            ctx,
            "wal-push",
            "could not store 000000010000000000000003",
            database="erp",
            throttle_key="wal-push:erp",
            now=NOW + at,
        )

    assert [d.ok for d in wal_push_fails(0 * MIN)] == [False]
    assert wal_push_fails(1 * MIN) == []  # kept: throttled from now on
    smtp = Smtp(port)
    try:
        assert retry(ctx, 1 * MIN) == [True]
        assert wal_push_fails(2 * MIN) == []
        assert retry(ctx, 5 * MIN) == []
        assert subjects(smtp) == ["[respaldo] CRITICAL: WAL push of erp failed"]
    finally:
        smtp.close()


def _break_catalog(ctx: Context, path: Path, aside: Path) -> None:
    """Move the SQLite catalog (and its WAL) to ``aside`` and leave bytes that are no
    database in its place."""
    ctx.catalog.engine.dispose()
    aside.mkdir()
    for part in path.parent.glob(path.name + "*"):
        part.rename(aside / part.name)
    path.write_bytes(b"this is not a database".ljust(4096, b"\0"))


def _mend_catalog(ctx: Context, path: Path, aside: Path) -> None:
    ctx.catalog.engine.dispose()
    path.unlink()
    for part in aside.iterdir():
        part.rename(path.parent / part.name)


def test_a_catalog_that_cannot_be_read_is_alerted_once_and_resolved_once(
    tmp_path: Path, ctx: Context, port: int
) -> None:
    last = backup(ctx, NOW - H)
    drill(ctx, last, NOW - H, passed=True)
    assert watch(ctx, 0 * H).action == "quiet"
    smtp = Smtp(port)
    try:
        _break_catalog(ctx, tmp_path / "catalog.db", tmp_path / "aside")
        checks = [
            watchdog.check(ctx, NOW + n * 5 * MIN, wal_archived=(), servers=False)
            for n in range(1, 4)
        ]
        told = [{c.key: c.action for c in r.conditions}.get("catalog") for r in checks]
        assert told == ["raised", "throttled", "throttled"]
        (mail,) = smtp.inbox.wait(1)
        assert str(mail["Subject"]).startswith("[respaldo] CRITICAL: the catalog cannot be read: ")
        # A failure alert with a throttle key goes out too, unthrottled, since the
        # throttle lives in the catalog.
        sent = alerts.notify_failure(
            ctx, "wal-push", "archive full", database="erp", throttle_key="wal-push:erp"
        )
        assert [d.ok for d in sent] == [True]

        _mend_catalog(ctx, tmp_path / "catalog.db", tmp_path / "aside")
        back = watchdog.check(ctx, NOW + 20 * MIN, wal_archived=(), servers=False)
        assert {c.key: c.action for c in back.conditions}["catalog"] == "resolved"
        assert subjects(smtp)[2].startswith(
            "[respaldo] RESOLVED: resolved: the catalog cannot be read: "
        )
        after = watchdog.check(ctx, NOW + 25 * MIN, wal_archived=(), servers=False)
        assert "catalog" not in {c.key for c in after.conditions}
        assert len(smtp.inbox.items) == 3
    finally:
        smtp.close()


def test_a_failed_jobs_alert_that_no_target_took_is_sent_by_the_resend(
    ctx: Context, port: int
) -> None:
    # A scheduled backup fails (its database is down) while the mail server is down too.
    request = JobRequest(JobKind.BACKUP, "erp", TriggeredBy.SCHEDULE, "full", {"type": "full"})
    job = jobs.submit(ctx, request)
    with pytest.raises(RespaldoError):
        run_queued(ctx, job.id)
    assert jobs.get(ctx, job.id).status is JobStatus.FAILED
    last = backup(ctx, NOW - H)
    drill(ctx, last, NOW - H, passed=True)
    # Within its RPO (amber: no condition fires), so only the failure's own alert tells.
    assert watch(ctx, 0 * H).action == "quiet"

    smtp = Smtp(port)
    try:
        # The job's alert was made at the real time (NOW is behind it).
        resend = datetime.now(UTC) + 2 * MIN
        assert [d.ok for d in alerts.retry_deliveries(ctx, resend)] == [True]
        (mail,) = smtp.inbox.wait(1)
        assert mail["Subject"] == "[respaldo] CRITICAL: backup of erp failed"
        text = mail.get_body(preferencelist=("plain",)).get_content()
        assert f"Job: {job.id}" in text
        assert alerts.retry_deliveries(ctx, resend + 10 * MIN) == []  # told: not again
        assert len(smtp.inbox.items) == 1
    finally:
        smtp.close()


def test_a_throttled_failure_without_a_catalog_is_still_throttled(
    tmp_path: Path, port: int
) -> None:
    # The catalog's PostgreSQL is down too (a network outage): PostgreSQL retries a
    # failing archive_command three times a minute, each one a wal-push that alerts.
    down = f"postgresql+psycopg://respaldo@127.0.0.1:{closed_port()}/catalog"
    settings = _settings(tmp_path, port).model_copy(
        update={"catalog": _settings(tmp_path, port).catalog.model_copy(update={"url": down})}
    )
    smtp = Smtp(port)
    try:
        for minute in range(3):
            alerts.notify_failure_settings(
                settings,
                "wal-push",
                "S3 endpoint unreachable",
                database="erp",
                throttle_key="wal-push:erp",
                now=NOW + minute * MIN,
            )
        assert subjects(smtp) == ["[respaldo] CRITICAL: WAL push of erp failed"]
        # After the repeat interval, told again.
        alerts.notify_failure_settings(
            settings,
            "wal-push",
            "S3 endpoint unreachable",
            database="erp",
            throttle_key="wal-push:erp",
            now=NOW + 7 * H,
        )
        assert len(smtp.inbox.items) == 2
    finally:
        smtp.close()


def test_a_catalog_resolved_while_the_mail_server_is_down_is_resolved_when_it_is_back(
    tmp_path: Path, ctx: Context, port: int
) -> None:
    last = backup(ctx, NOW - H)
    drill(ctx, last, NOW - H, passed=True)
    smtp = Smtp(port)
    try:
        _break_catalog(ctx, tmp_path / "catalog.db", tmp_path / "aside")
        watchdog.check(ctx, NOW, wal_archived=(), servers=False)
        assert len(smtp.inbox.wait(1)) == 1  # the catalog cannot be read
    finally:
        smtp.close()
    _mend_catalog(ctx, tmp_path / "catalog.db", tmp_path / "aside")

    def catalog_action(at: timedelta) -> str | None:
        result = watchdog.check(ctx, NOW + at, wal_archived=(), servers=False)
        return {c.key: c.action for c in result.conditions}.get("catalog")

    assert catalog_action(5 * MIN) == "resolved"  # nobody took it: kept to send
    smtp = Smtp(port)
    try:
        assert catalog_action(10 * MIN) is None
        assert retry(ctx, 10 * MIN) == [True]
        assert [str(m["Subject"]) for m in smtp.inbox.items] == [
            "[respaldo] RESOLVED: resolved: the catalog cannot be read: file is not a database"
        ]
        assert catalog_action(15 * MIN) is None
    finally:
        smtp.close()


def test_without_a_service_an_alert_that_reached_nobody_goes_with_the_next_one(
    ctx: Context, port: int
) -> None:
    # Cron runs the backups, no 'respaldo serve' (no watchdog): the alert of the night
    # the mail server was down goes out with the next alert that gets through.
    first = alerts.notify_failure(ctx, "backup", "disk full", database="erp", now=NOW)
    assert [d.ok for d in first] == [False]
    smtp = Smtp(port)
    try:
        alerts.notify_failure(ctx, "backup", "disk full", database="crm", now=NOW + 12 * H)
        assert sorted(subjects(smtp)) == [
            "[respaldo] CRITICAL: backup of crm failed",
            "[respaldo] CRITICAL: backup of erp failed",
        ]
        alerts.notify_failure(ctx, "backup", "disk full", database="crm", now=NOW + 48 * H)
        assert len(smtp.inbox.items) == 3  # the one of the first night went once
    finally:
        smtp.close()


def test_mail_refused_while_a_webhook_took_it_goes_once_in_order_when_the_server_is_back(
    tmp_path: Path,
    port: int,
    webhook: Webhook,  # noqa: F811
) -> None:
    # The soak's outage: the webhook up, the mail server down for six minutes. Each
    # alert of then reaches the mail once it is back, in the order they were made, and
    # the webhook is not sent any of them again.
    hook = {"name": "hook", "url": webhook.url, "levels": ["critical"]}
    with Context.open(_settings(tmp_path, port, hook), create=True) as ctx:
        for n, database in enumerate(("erp", "crm", "hr")):
            sent = alerts.notify_failure(
                ctx, "backup", "disk full", database=database, now=NOW + n * MIN
            )
            assert [(d.target, d.ok) for d in sent] == [("ops-mail", False), ("hook", True)]
        assert len(webhook.inbox.wait(3)) == 3
        smtp = Smtp(port)
        try:
            # The service's resend (a periodic run apart from its sweep) sends them.
            Service(ctx, [], clock=lambda: NOW + 6 * MIN).resend()
            assert subjects(smtp) == [
                f"[respaldo] CRITICAL: backup of {db} failed" for db in ("erp", "crm", "hr")
            ]
            assert retry(ctx, 7 * MIN) == []
            assert retry(ctx, 2 * H) == []
            # A new alert goes to both at once.
            sent = alerts.notify_failure(ctx, "backup", "disk full", database="erp", now=NOW + H)
            assert [d.ok for d in sent] == [True, True]
            assert len(smtp.inbox.items) == 4
        finally:
            smtp.close()
        assert len(webhook.inbox.items) == 4
        assert alerts.sent_notifications(ctx)[0].ok


def test_mail_refused_for_longer_than_retry_hours_is_given_up(tmp_path: Path, port: int) -> None:
    with Context.open(_settings(tmp_path, port, retry_hours=1), create=True) as ctx:
        assert [d.ok for d in alerts.notify_failure(ctx, "backup", "disk full", now=NOW)] == [False]
        assert retry(ctx, 3 * MIN) == [False]
        assert retry(ctx, H) == []  # given up, not tried
        smtp = Smtp(port)
        try:
            assert retry(ctx, 2 * H) == []
            assert smtp.inbox.items == []
        finally:
            smtp.close()
        (waiting,) = alerts.undelivered(ctx, NOW + 2 * H)
        assert (waiting.target, waiting.state, waiting.attempts) == ("ops-mail", "given_up", 2)
        assert waiting.error and waiting.error.startswith("not delivered in 1 h (2 attempts): ")
        # The status says so, amber, even once the target takes messages again.
        smtp = Smtp(port)
        try:
            assert alerts.send_test(ctx.settings, now=NOW + 2 * H).ok
        finally:
            smtp.close()
        (item,) = notify_items(ctx, ctx.settings, NOW + 3 * H)
        assert item.level == "amber"
        assert str(item.reason).startswith(
            "1 alert to notification target ops-mail was given up in the last 7 days, 2 h ago: "
            "not delivered in 1 h (2 attempts): "
        )
        assert alerts.undelivered(ctx, NOW + 8 * 24 * H) == []  # a week later
