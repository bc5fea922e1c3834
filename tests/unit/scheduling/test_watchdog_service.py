"""The RPO watchdog in the service: checked once at start-up, at once, so that a service
that was down for two days says so then; and every ``[rpo] watchdog_minutes`` after."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.operations import status, watchdog
from respaldo.operations.context import Context
from respaldo.scheduling.service import WATCHDOG, Service
from tests.servers.notify import Webhook, webhook  # noqa: F401
from tests.unit.operations.status_support import backup, drill, status_settings

pytestmark = pytest.mark.unit

DOWN_SINCE = datetime(2026, 12, 2, 3, 10, tzinfo=UTC)
STARTED = DOWN_SINCE + timedelta(days=2)


@pytest.fixture
def ctx(tmp_path: Path, webhook: Webhook) -> Iterator[Context]:  # noqa: F811
    target = {"name": "hook", "url": webhook.url, "levels": ["critical", "resolved"]}
    settings = status_settings(
        tmp_path,
        notifications={"targets": [target]},
        rpo={"watchdog_minutes": 3},
        schedules={"time_zone": "UTC"},
    )
    with Context.open(settings, create=True) as context:
        yield context


def test_a_service_started_after_two_days_down_alerts_at_once(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    # The last backup and restore test ran just before the service went down.
    last = backup(ctx, DOWN_SINCE)
    drill(ctx, last, DOWN_SINCE, passed=True)
    checked: list[datetime] = []

    def check(context: Context, now: datetime) -> watchdog.WatchdogResult:
        checked.append(now)
        return watchdog.check(context, now, wal_archived=(), servers=False)

    service = Service(
        ctx,
        [],
        watchdog=check,
        watchdog_minutes=ctx.settings.rpo.watchdog_minutes,
        clock=lambda: STARTED,
    )
    service.start()
    try:
        (got,) = webhook.inbox.wait(1)
    finally:
        service.stop("test over")
    title = got["json"]["title"]
    assert title == "[respaldo] CRITICAL: no logical backup of erp for 48 h (RPO 26 h)"
    assert checked[0] == STARTED
    assert len(webhook.inbox.items) == 1


def test_the_watchdog_runs_every_configured_minutes_and_a_failing_check_is_survived(
    ctx: Context,
) -> None:
    calls: list[datetime] = []

    def broken(context: Context, now: datetime) -> None:
        calls.append(now)
        raise RuntimeError("the check itself failed")

    service = Service(ctx, [], watchdog=broken, watchdog_minutes=3, clock=lambda: STARTED)
    service.watch()  # logged, not raised
    assert calls == [STARTED]
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    service.start(now=tomorrow)  # first due then
    try:
        assert service.next_run_times()[WATCHDOG] == tomorrow
        job = service._scheduler.get_job(WATCHDOG)
        assert job.trigger.interval == timedelta(minutes=3)
    finally:
        service.stop("test over")


def test_a_watchdog_that_cannot_check_alerts_once_and_resolves_once(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Whatever breaks the check itself (a bug, a driver error nobody wrapped) would
    # otherwise silence every condition at once, with only a line in the log.
    last = backup(ctx, STARTED)
    drill(ctx, last, STARTED, passed=True)
    now = [STARTED]

    def check(context: Context, when: datetime) -> watchdog.WatchdogResult:
        return watchdog.check(context, when, wal_archived=(), servers=False)

    service = Service(ctx, [], watchdog=check, clock=lambda: now[0])
    real = status.compute_status

    def broken(*args: object, **kwargs: object) -> object:
        raise KeyError("archived_count")

    monkeypatch.setattr(watchdog, "compute_status", broken)
    for minutes in (0, 5, 10):
        now[0] = STARTED + timedelta(minutes=minutes)
        service.watch()  # never raises
    (got,) = webhook.inbox.wait(1)
    assert got["json"]["title"] == (
        "[respaldo] CRITICAL: the watchdog cannot check the status: KeyError: 'archived_count'"
    )
    monkeypatch.setattr(watchdog, "compute_status", real)
    now[0] = STARTED + timedelta(minutes=15)
    service.watch()
    assert [m["json"]["title"] for m in webhook.inbox.wait(2)][1] == (
        "[respaldo] RESOLVED: resolved: the watchdog cannot check the status: "
        "KeyError: 'archived_count'"
    )
