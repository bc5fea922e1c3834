"""The RPO watchdog with a controllable clock: one alert when a threshold is crossed,
repeats throttled, one "resolved" when it is met again. The target is real: a JSON
webhook on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from respaldo.catalog import AlertStates
from respaldo.domain import BackupKind
from respaldo.operations import (
    alerts,
    restore_swap,
    status,
    status_queue,
    status_verify,
    watchdog,
)
from respaldo.operations.context import Context
from tests.servers.notify import Webhook, webhook  # noqa: F401
from tests.unit.operations.status_support import NOW, backup, drill, status_settings

pytestmark = pytest.mark.unit

H = timedelta(hours=1)


def _ctx(tmp_path: Path, hook: Webhook, **notifications: Any) -> Context:
    target = {"name": "hook", "url": hook.url, "levels": ["critical", "warning", "resolved"]}
    settings = status_settings(tmp_path, notifications={"targets": [target], **notifications})
    return Context.open(settings, create=True)


@pytest.fixture
def ctx(tmp_path: Path, webhook: Webhook) -> Iterator[Context]:  # noqa: F811
    context = _ctx(tmp_path, webhook)  # repeat_interval_minutes: the default, 6 h
    try:
        yield context
    finally:
        context.close()


def titles(hook: Webhook) -> list[str]:
    return [m["json"]["title"] for m in hook.inbox.items]


def watch(ctx: Context, at: timedelta) -> dict[str, str]:
    """One check at NOW + ``at``, catalog only; returns key -> action of the alerts."""
    result = watchdog.check(ctx, NOW + at, wal_archived=(), servers=False)
    return {c.key: c.action for c in result.conditions}


def test_no_backup_for_27_h_alerts_once_repeats_are_throttled_a_backup_resolves_once(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    last = backup(ctx, NOW - 20 * H)
    drill(ctx, last, NOW - 19 * H, passed=True)
    assert watch(ctx, 0 * H) == {
        "rpo:erp:full": "quiet",
        "restore_test:erp": "quiet",
        "verify:local": "quiet",  # watched since now: within [rpo] verify_hours
        "notify:hook": "quiet",  # nothing sent to it yet
    }
    assert webhook.inbox.items == []

    # 27 h after the last backup: the RPO of 26 h is crossed, one alert.
    assert watch(ctx, 7 * H)["rpo:erp:full"] == "raised"
    assert titles(webhook) == ["[respaldo] CRITICAL: no logical backup of erp for 27 h (RPO 26 h)"]
    (sent,) = webhook.inbox.items
    assert "'respaldo backup erp --type full' takes one now" in sent["json"]["message"]

    # Checked every 20 minutes for the next 6 hours: nothing until the repeat interval.
    for minutes in range(5, 6 * 60, 20):
        assert watch(ctx, 7 * H + timedelta(minutes=minutes))["rpo:erp:full"] == "throttled"
    assert len(webhook.inbox.items) == 1
    assert watch(ctx, 13 * H)["rpo:erp:full"] == "repeated"
    assert (
        titles(webhook)[1]
        == "[respaldo] CRITICAL: still: no logical backup of erp for 33 h (RPO 26 h)"
    )

    # A new backup: one "resolved", then quiet.
    backup(ctx, NOW + 13 * H + timedelta(minutes=10))
    assert watch(ctx, 13 * H + timedelta(minutes=15))["rpo:erp:full"] == "resolved"
    assert watch(ctx, 13 * H + timedelta(minutes=20))["rpo:erp:full"] == "quiet"
    assert titles(webhook)[2:] == [
        "[respaldo] RESOLVED: resolved: no logical backup of erp for 33 h (RPO 26 h)"
    ]
    assert [m["json"]["type"] for m in webhook.inbox.items] == ["failure", "failure", "success"]


def test_amber_is_not_an_alert_and_each_item_alerts_under_its_own_key(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    first = backup(ctx, NOW - 3 * H)
    backup(ctx, NOW - H, failed="pg_dump: error: connection refused")  # amber
    result = watchdog.check(ctx, NOW, wal_archived=(), servers=False)
    assert {c.key: c.action for c in result.conditions} == {
        "rpo:erp:full": "quiet",
        "restore_test:erp": "raised",  # never passed: red
        "verify:local": "quiet",
        "notify:hook": "quiet",
    }
    assert titles(webhook) == ["[respaldo] CRITICAL: no restore test of erp ever passed"]
    drill(ctx, first, NOW + H, passed=True)
    assert watch(ctx, 2 * H)["restore_test:erp"] == "resolved"
    assert result.report.level == "red"


def test_alerts_in_spanish(tmp_path: Path, webhook: Webhook) -> None:  # noqa: F811
    with _ctx(tmp_path, webhook, language="es") as ctx:
        last = backup(ctx, NOW - 27 * H)
        drill(ctx, last, NOW - 26 * H, passed=True)
        watchdog.check(ctx, NOW, wal_archived=(), servers=False)
    assert titles(webhook) == [
        "[respaldo] CRÍTICO: sin backup lógico de erp desde hace 27 h (RPO 26 h)"
    ]


def test_an_unreachable_server_alerts_with_its_reason(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    last = backup(ctx, NOW - H)
    drill(ctx, last, NOW - H, passed=True)
    result = watchdog.check(ctx, NOW, wal_archived=())
    assert {c.key: c.action for c in result.conditions}["server:erp"] == "raised"
    (title,) = titles(webhook)
    assert title.startswith(
        "[respaldo] CRITICAL: the server of erp cannot be reached: cannot connect to PostgreSQL"
    )


def _acted(result: watchdog.WatchdogResult) -> list[tuple[str, str]]:
    """(key, action) of each condition in ``result`` that did something, in order."""
    return [(c.key, c.action) for c in result.conditions if c.action != "quiet"]


def test_a_watchdog_condition_that_resolves_is_in_the_result(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    last = backup(ctx, NOW - H)
    drill(ctx, last, NOW - H, passed=True)
    computed = status.compute_status

    def broken(*args: object, **kwargs: object) -> object:
        raise KeyError("archived_count")

    monkeypatch.setattr(watchdog, "compute_status", broken)
    with pytest.raises(KeyError):
        watchdog.check(ctx, NOW, wal_archived=(), servers=False)
    monkeypatch.setattr(watchdog, "compute_status", computed)
    # What the result lists is what the service logs and the API shows: the "resolved"
    # that went out must be in it.
    assert _acted(watchdog.check(ctx, NOW + H, wal_archived=(), servers=False)) == [
        ("watchdog", "resolved")
    ]
    assert len(webhook.inbox.items) == 2


def test_a_catalog_condition_that_resolves_is_in_the_result_once(
    tmp_path: Path,
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    last = backup(ctx, NOW - H)
    drill(ctx, last, NOW - H, passed=True)
    path, aside = tmp_path / "catalog.db", tmp_path / "aside"
    # The catalog becomes unreadable (bytes that are no database where it was)...
    ctx.catalog.engine.dispose()
    aside.mkdir()
    for part in path.parent.glob(path.name + "*"):
        part.rename(aside / part.name)
    path.write_bytes(b"this is not a database".ljust(4096, b"\0"))
    assert _acted(watchdog.check(ctx, NOW, wal_archived=(), servers=False)) == [
        ("catalog", "raised")
    ]
    # ... and comes back.
    ctx.catalog.engine.dispose()
    path.unlink()
    for part in aside.iterdir():
        part.rename(path.parent / part.name)
    assert _acted(watchdog.check(ctx, NOW + H, wal_archived=(), servers=False)) == [
        ("catalog", "resolved")
    ]
    assert len(webhook.inbox.items) == 2


def test_a_file_sets_items_have_their_own_alert_texts(tmp_path: Path) -> None:
    settings = status_settings(tmp_path, file_sets=[{"name": "uploads", "paths": ["/srv/u"]}])
    with Context.open(settings, create=True) as ctx:
        never = status.compute_status(ctx, NOW, wal_archived=(), servers=False)
        backup(ctx, NOW - 40 * H, kind=BackupKind.FILES, database="uploads", size=9000)
        backup(ctx, NOW - 30 * H, kind=BackupKind.FILES, database="uploads", size=10)
        old = status.compute_status(ctx, NOW, wal_archived=(), servers=False)

    def text(report: status.StatusReport, key: str) -> str:
        (item,) = [i for i in report.items if i.key == key]
        message, args = watchdog.describe(item)
        return message.format(**args)

    assert text(never, "rpo:uploads:files") == "no files backup of uploads was ever completed"
    assert text(old, "rpo:uploads:files") == "no files backup of uploads for 30 h (RPO 26 h)"
    assert text(old, "size:uploads:files").startswith(
        "the newest files backup of uploads is much smaller than the one before: "
    )


def test_a_swap_whose_item_leaves_the_report_is_resolved_once(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    """The swap item disappears once the database's name exists again (its note is
    cleared): nothing then says the condition is met but the watchdog."""
    last = backup(ctx, NOW - H)
    drill(ctx, last, NOW - H, passed=True)
    restore_swap.note_swap(ctx, "erp", "erp", "erp_old_1", NOW - H)
    assert watch(ctx, 0 * H)["swap:erp:erp"] == "raised"
    restore_swap.clear_swap(ctx, "erp", "erp")
    assert watch(ctx, H)["swap:erp:erp"] == "resolved"
    assert "swap:erp:erp" not in watch(ctx, 2 * H)
    assert titles(webhook)[1].startswith(
        "[respaldo] RESOLVED: resolved: a restore of erp stopped half-way through its swap"
    )
    assert len(webhook.inbox.items) == 2


def test_a_queue_whose_item_leaves_the_report_is_resolved_and_not_when_unread(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A queue that is not configured has an item only while jobs wait in it: once they
    are gone (cancelled, or taken), so is the item. A queue that could not be read says
    nothing either way: its alert stays."""
    last = backup(ctx, NOW - H)
    drill(ctx, last, NOW - H, passed=True)
    items: list[status.StatusItem] | None = [
        status.StatusItem(key="queue:nightly", check="queue", level="red", reason="x", count=3)
    ]

    def queue_items(_ctx: Context, _now: object) -> list[status.StatusItem]:
        if items is None:
            raise OperationalError("SELECT", {}, Exception("server closed the connection"))
        return list(items)

    monkeypatch.setattr(status_queue, "queue_items", queue_items)
    assert watch(ctx, 0 * H)["queue:nightly"] == "raised"
    items = None  # the queue's read fails
    assert "queue:nightly" not in watch(ctx, H)
    items = []
    assert watch(ctx, 2 * H)["queue:nightly"] == "resolved"
    assert "queue:nightly" not in watch(ctx, 3 * H)
    assert len(webhook.inbox.items) == 2


def test_the_alerts_of_a_source_or_repository_removed_from_the_configuration_are_closed_quietly(
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A database taken out of the configuration (or a secondary repository) has no
    item any more: its open alert can neither be met nor repeated. It is closed without
    a "resolved" (nothing was mended); what is still configured keeps firing."""
    target = {"name": "hook", "url": webhook.url, "levels": ["critical", "warning", "resolved"]}
    databases = [
        {"name": name, "dsn": f"postgresql://respaldo@127.0.0.1:1/{name}"}
        for name in ("erp", "nomina")
    ]
    both = status_settings(
        tmp_path, secondary=True, databases=databases, notifications={"targets": [target]}
    )
    with Context.open(both, create=True) as ctx:
        for name in ("erp", "nomina"):
            backup(ctx, NOW - 40 * H, database=name)
        fired = watch(ctx, 0 * H)
    assert {k for k, action in fired.items() if action == "raised"} >= {
        "rpo:erp:full",
        "rpo:nomina:full",
        "copy:erp:offsite",
        "copy:nomina:offsite",
    }
    told = len(webhook.inbox.items)

    one = status_settings(tmp_path, databases=databases[:1], notifications={"targets": [target]})
    with Context.open(one) as ctx:
        after = watch(ctx, H)
        with ctx.catalog.read() as session:
            firing = {state.key for state in AlertStates(session).firing()}
    assert after["rpo:erp:full"] == "throttled"  # still configured, still firing
    assert "rpo:erp:full" in firing
    assert not {"rpo:nomina:full", "copy:erp:offsite", "copy:nomina:offsite"} & firing
    assert not any(k.startswith(("rpo:nomina", "copy:")) for k in after)
    assert len(webhook.inbox.items) == told  # no "resolved" for what nobody mended
    assert "closed the alerts of what is no longer configured" in caplog.text


def test_the_size_alert_writes_its_sizes_and_share_as_its_language_does(tmp_path: Path) -> None:
    """The size check's facts stay quantities in the alert (the watchdog took them as
    text, and a Spanish alert read "1.1 MB, 9% of 12.0 MB (limit 50%)"); in English
    they read as the CLI writes them, as before."""
    settings = status_settings(tmp_path)
    with Context.open(settings, create=True) as ctx:
        backup(ctx, NOW - 30 * H, size=12_000_000)
        backup(ctx, NOW - 2 * H, size=1_100_000)
        report = status.compute_status(ctx, NOW, wal_archived=(), servers=False)
    (item,) = [i for i in report.items if i.key == "size:erp:full"]
    assert item.level == "red"
    message, args = watchdog.describe(item)
    english = alerts.translate(settings, message, args)
    assert english == (
        "the newest logical backup of erp is much smaller than the one before: "
        "1.1 MB, 9% of 12.0 MB (limit 50%)"
    )
    assert english == message.format(**args)
    spanish = settings.model_copy(
        update={"notifications": settings.notifications.model_copy(update={"language": "es"})}
    )
    assert alerts.translate(spanish, message, args) == (
        "el backup lógico más reciente de erp es mucho menor que el anterior: "
        "1,1 MB, el 9\u00a0% de 12 MB (límite 50\u00a0%)"
    )


def test_a_repository_no_verify_checks_turns_red_after_verify_hours_and_a_check_resolves_it(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    # The first look notes the repository as watched; never checked, it turns red once
    # [rpo] verify_hours (50 h) have passed since, not at once.
    assert watch(ctx, 0 * H)["verify:local"] == "quiet"
    assert watch(ctx, 50 * H)["verify:local"] == "quiet"
    assert watch(ctx, 51 * H)["verify:local"] == "raised"
    said = [t for t in titles(webhook) if "repository local" in t]
    assert said == ["[respaldo] CRITICAL: repository local was never verified in 51 h (limit 50 h)"]
    (sent,) = [m for m in webhook.inbox.items if m["json"]["title"] == said[0]]
    assert "'respaldo verify --all --repository local' checks it now" in sent["json"]["message"]

    # A verify checks it: resolved; then its own age counts.
    status_verify.note_verified(ctx, "local", "subset 1/7", NOW + 52 * H)
    assert watch(ctx, 52 * H)["verify:local"] == "resolved"
    item = {i.key: i for i in status.compute_status(ctx, NOW + 60 * H, servers=False).general}[
        "verify:local"
    ]
    assert (item.level, item.age_seconds) == ("green", 8 * 3600)
    assert item.reason == "repository local was last verified 8 h ago (limit 50 h)"
    assert watch(ctx, 103 * H)["verify:local"] == "raised"
    assert [t for t in titles(webhook) if "repository local" in t][-1] == (
        "[respaldo] CRITICAL: repository local was not verified for 51 h (limit 50 h)"
    )


def test_no_verify_item_while_the_daily_verify_is_off(tmp_path: Path) -> None:
    settings = status_settings(tmp_path, schedules={"verify": "off"})
    with Context.open(settings, create=True) as ctx:
        report = status.compute_status(ctx, NOW + 1000 * H, wal_archived=(), servers=False)
    assert not [i for i in report.general if i.check == "verify"]
