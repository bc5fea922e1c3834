"""Alerts that cannot be delivered are visible outside the alerting itself: the Prometheus
metrics count each target's messages sent and failed and say when each last went
through, so a mail server that is down (a real aiosmtpd on loopback, stopped) shows, and
Alertmanager can page about it."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from respaldo.operations import alerts
from respaldo.operations.context import Context
from respaldo.operations.metrics import render_metrics
from tests.ports import reserved_port
from tests.servers.notify import Smtp
from tests.unit.operations.status_support import NOW, status_settings

pytestmark = pytest.mark.integration


def samples(ctx: Context) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = render_metrics(ctx).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("respaldo_notification"):
                found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_notifications_sent_and_failed_per_target_are_in_the_metrics(tmp_path: Path) -> None:
    port = reserved_port()
    target = {
        "name": "ops-mail",
        "url": f"mailto://127.0.0.1:{port}?from=respaldo@example.com&to=ops@example.com",
    }
    quiet = {"name": "chat", "url": "json://127.0.0.1:1/hook", "levels": ["success"]}
    settings = status_settings(
        tmp_path, notifications={"targets": [target, quiet], "timeout_seconds": 5}
    )
    mail = (("target", "ops-mail"),)
    chat = (("target", "chat"),)
    with Context.open(settings, create=True) as ctx:
        # Every configured target appears before its first message: 0 is "never".
        before = samples(ctx)
        assert before[("respaldo_notifications_total", (("result", "failed"), *mail))] == 0
        assert before[("respaldo_notification_last_success_timestamp_seconds", chat)] == 0

        # The mail server is down when a backup fails.
        sent = alerts.notify_failure(ctx, "backup", "disk full", database="erp", now=NOW)
        assert [d.ok for d in sent] == [False]
        down = samples(ctx)
        assert down[("respaldo_notifications_total", (("result", "failed"), *mail))] == 1
        assert down[("respaldo_notifications_total", (("result", "sent"), *mail))] == 0
        assert down[("respaldo_notification_last_failure_timestamp_seconds", mail)] == (
            NOW.timestamp()
        )
        assert down[("respaldo_notification_last_success_timestamp_seconds", mail)] == 0

        smtp = Smtp(port)
        try:
            later = NOW.replace(minute=5)
            alerts.notify_failure(ctx, "backup", "disk full", database="erp", now=later)
            # This one, and the one that reached nobody, with it.
            assert len(smtp.inbox.wait(2)) == 2
        finally:
            smtp.close()
        back = samples(ctx)
        assert back[("respaldo_notifications_total", (("result", "sent"), *mail))] == 2
        assert back[("respaldo_notifications_total", (("result", "failed"), *mail))] == 1
        assert back[("respaldo_notification_last_success_timestamp_seconds", mail)] == (
            later.timestamp()
        )


def test_a_test_message_that_goes_through_is_counted_and_clears_the_failure(
    tmp_path: Path,
) -> None:
    # A transient failure, then nothing to tell for days: 'respaldo notify test' is how
    # the operator proves the target works again, and the metrics must see it.
    port = reserved_port()
    target = {
        "name": "ops-mail",
        "url": f"mailto://127.0.0.1:{port}?from=respaldo@example.com&to=ops@example.com",
    }
    settings = status_settings(tmp_path, notifications={"targets": [target], "timeout_seconds": 5})
    mail = (("target", "ops-mail"),)
    with Context.open(settings, create=True) as ctx:
        alerts.notify_failure(ctx, "backup", "disk full", database="erp", now=NOW)
        smtp = Smtp(port)
        try:
            later = NOW.replace(hour=13)
            result = alerts.send_test(settings, now=later)
            assert result.ok and len(smtp.inbox.wait(1)) == 1
        finally:
            smtp.close()
        found = samples(ctx)
    assert found[("respaldo_notification_last_success_timestamp_seconds", mail)] == (
        later.timestamp()
    )
    assert found[("respaldo_notifications_total", (("result", "sent"), *mail))] == 1
