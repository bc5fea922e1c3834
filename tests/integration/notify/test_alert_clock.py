"""A clock that was ahead and was set right must not silence alerts: a backup dated in
the future (taken while the clock was a month ahead) does not pass for a fresh one, and
an alert "sent" in the future does not throttle its repeats for a month. The mail server
is a real aiosmtpd on loopback; the clock is the test's (``now``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.operations import alerts, watchdog
from respaldo.operations.context import Context
from respaldo.operations.status import compute_status
from tests.servers.notify import Smtp, smtp  # noqa: F401
from tests.unit.operations.status_support import NOW, backup, drill, status_settings

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
def ctx(tmp_path: Path, smtp: Smtp) -> Iterator[Context]:  # noqa: F811
    target = {"name": "ops-mail", "url": smtp.url(), "levels": ["critical", "resolved"]}
    settings = status_settings(tmp_path, notifications={"targets": [target]})
    with Context.open(settings, create=True) as context:
        yield context


def test_a_backup_dated_in_the_future_does_not_hide_that_backups_stopped(
    ctx: Context,
    smtp: Smtp,  # noqa: F811
) -> None:
    last = backup(ctx, NOW - 30 * H)  # the last one taken with a right clock
    drill(ctx, last, NOW - H, passed=True)
    ahead = backup(ctx, NOW + 30 * DAY)  # taken while the clock was a month ahead
    (item,) = [
        i
        for i in compute_status(ctx, NOW, wal_archived=(), servers=False).items
        if i.key == "rpo:erp:full"
    ]
    assert item.level == "red", item.reason
    assert item.backup_id == last
    assert ahead in item.reason and "in the future" in item.reason
    result = watchdog.check(ctx, NOW, wal_archived=(), servers=False)
    assert {c.key: c.action for c in result.conditions}["rpo:erp:full"] == "raised"
    (mail,) = smtp.inbox.wait(1)
    assert mail["Subject"] == "[respaldo] CRITICAL: no logical backup of erp for 30 h (RPO 26 h)"


def test_an_alert_sent_while_the_clock_was_ahead_does_not_throttle_its_repeats(
    ctx: Context,
    smtp: Smtp,  # noqa: F811
) -> None:
    last = backup(ctx, NOW - 30 * H)
    drill(ctx, last, NOW - H, passed=True)
    ahead = NOW + 365 * DAY

    def watch(at: timedelta) -> str:
        result = watchdog.check(ctx, NOW + at, wal_archived=(), servers=False)
        return {c.key: c.action for c in result.conditions}["rpo:erp:full"]

    def wal_push(at: timedelta) -> int:
        sent = alerts.notify_failure(
            ctx, "wal-push", "disk full", database="erp", throttle_key="wal-push:erp", now=NOW + at
        )
        return len(sent)

    # Told while the clock was a year ahead...
    assert watch(ahead - NOW) == "raised"
    assert wal_push(ahead - NOW) == 1
    # ... then the clock is set right: still red, told again (once), then throttled.
    assert watch(H) == "repeated"
    assert watch(2 * H) == "throttled"
    assert wal_push(H) == 1
    assert wal_push(2 * H) == 0
    told = [str(m["Subject"]) for m in smtp.inbox.items]
    assert [t for t in told if "logical backup" in t or "WAL" in t] == [
        "[respaldo] CRITICAL: no logical backup of erp for 366 d 6 h (RPO 26 h)",
        "[respaldo] CRITICAL: WAL push of erp failed",
        "[respaldo] CRITICAL: still: no logical backup of erp for 31 h (RPO 26 h)",
        "[respaldo] CRITICAL: WAL push of erp failed",
    ]


def test_a_restore_test_dated_in_the_future_does_not_hide_that_none_passed_since(
    ctx: Context,
    smtp: Smtp,  # noqa: F811
) -> None:
    last = backup(ctx, NOW - H)
    drill(ctx, last, NOW - 40 * DAY, passed=True)  # the last one with a right clock
    drill(ctx, last, NOW + 300 * DAY, passed=True)  # the clock was ten months ahead
    (item,) = [
        i
        for i in compute_status(ctx, NOW, wal_archived=(), servers=False).items
        if i.key == "restore_test:erp"
    ]
    assert item.level == "red", item.reason
    assert "in the future" in item.reason
    watchdog.check(ctx, NOW, wal_archived=(), servers=False)
    subjects = [str(m["Subject"]) for m in smtp.inbox.wait(1)]
    assert "[respaldo] CRITICAL: no passed restore test of erp for 40 d (limit 38 d)" in subjects


def _scrape(ctx: Context) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The catalog's metrics at NOW: (name, sorted labels) -> value."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from respaldo.operations.metrics import CatalogCollector

    collector = CatalogCollector(ctx, None, clock=lambda: NOW.timestamp())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_metrics_do_not_take_a_backup_dated_in_the_future_for_the_newest(
    ctx: Context,
) -> None:
    # Prometheus' RespaldoBackupTooOld compares time() with this figure: a backup dated
    # a month ahead kept it quiet for a month, whatever happened meanwhile.
    backup(ctx, NOW - 30 * H)
    backup(ctx, NOW + 30 * DAY)
    found = _scrape(ctx)
    key = (
        "respaldo_backup_last_success_timestamp_seconds",
        (("database", "erp"), ("kind", "full")),
    )
    assert found[key] == (NOW - 30 * H).timestamp()


def test_the_metrics_do_not_take_a_restore_test_dated_in_the_future_for_the_newest(
    ctx: Context,
) -> None:
    # RespaldoRestoreTestTooOld compares time() with the newest passed test: one that ran
    # while the clock was ten months ahead kept it quiet for ten months, while the status
    # said red (no passed restore test for 40 d) and the watchdog alerted.
    last = backup(ctx, NOW - H)
    drill(ctx, last, NOW - 40 * DAY, passed=True)
    drill(ctx, last, NOW - 2 * DAY, passed=False)
    drill(ctx, last, NOW + 300 * DAY, passed=True)
    found = _scrape(ctx)
    erp = (("database", "erp"),)
    assert (
        found[("respaldo_restore_test_last_success_timestamp_seconds", erp)]
        == (NOW - 40 * DAY).timestamp()
    )
    # The newest test with a believable date failed: RespaldoRestoreTestFailed fires.
    assert found[("respaldo_restore_test_last_passed", erp)] == 0.0
    assert (
        found[("respaldo_restore_test_last_timestamp_seconds", erp)] == (NOW - 2 * DAY).timestamp()
    )
    # So do the series of each kind of backup the shipped rules use.
    full = (("database", "erp"), ("kind", "full"))
    kind_pass = found[("respaldo_restore_test_kind_last_success_timestamp_seconds", full)]
    assert kind_pass == (NOW - 40 * DAY).timestamp()
    assert found[("respaldo_restore_test_kind_last_passed", full)] == 0.0
