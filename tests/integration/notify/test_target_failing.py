"""A notification target that refuses respaldo's messages while another takes them: the
status's ``notify:<target>`` item is red, and the watchdog tells the other targets (not
the broken one). Before, every alert "went out" (another target took it), and nothing but
the metrics and the page's list of messages sent said that one target, maybe the pager,
got nothing. Real webhooks on loopback; the broken one is a port that refuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from respaldo.operations import alerts, watchdog
from respaldo.operations.context import Context
from respaldo.operations.status import compute_status
from tests.ports import closed_port
from tests.servers.notify import Webhook, webhook  # noqa: F401
from tests.unit.operations.status_support import NOW, status_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(tmp_path: Path, webhook: Webhook) -> Iterator[Context]:  # noqa: F811
    broken = f"json://127.0.0.1:{closed_port()}/hook"
    settings = status_settings(
        tmp_path,
        notifications={
            "targets": [
                {"name": "chat", "url": webhook.url, "levels": ["critical", "resolved"]},
                {"name": "pager", "url": broken, "levels": ["critical", "resolved"]},
            ]
        },
    )
    with Context.open(settings, create=True) as context:
        yield context


def test_a_target_that_refuses_the_messages_is_red_and_told_to_the_others(
    ctx: Context,
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
) -> None:
    sent = alerts.notify_failure(ctx, "backup", "pg_dump exited with status 1", database="erp")
    assert {(d.target, d.ok) for d in sent} == {("chat", True), ("pager", False)}
    found = {i.key: i for i in compute_status(ctx, NOW, wal_archived=(), servers=False).general}
    assert found["notify:chat"].level == "green"
    pager = found["notify:pager"]
    assert pager.level == "red"
    assert "the last message to notification target pager failed" in pager.reason
    assert "'respaldo notify test' tries it" in pager.reason

    result = watchdog.check(ctx, NOW, wal_archived=(), servers=False)
    assert {c.key: c.action for c in result.conditions}["notify:pager"] == "raised"
    told = [m["json"]["title"] for m in webhook.inbox.wait(2)]
    assert told[1].startswith(
        "[respaldo] CRITICAL: messages to notification target pager fail: notification "
        "target pager: "
    ), told
    # Not told to the pager itself: the newest message to it is still the failed alert.
    (raised,) = [c for c in result.conditions if c.key == "notify:pager"]
    assert [d.target for d in raised.deliveries] == ["chat"]

    # Its URL put right, 'respaldo notify test' gets through: green, and resolved.
    fixed = ctx.settings.model_copy(
        update={
            "notifications": ctx.settings.notifications.model_copy(
                update={
                    "targets": [
                        t.model_copy(update={"url": webhook.url}) if t.name == "pager" else t
                        for t in ctx.settings.notifications.targets
                    ]
                }
            )
        }
    )
    assert alerts.send_test(fixed).ok
    with Context.open(fixed) as again:
        result = watchdog.check(again, NOW, wal_archived=(), servers=False)
    assert {c.key: c.action for c in result.conditions}["notify:pager"] == "resolved"
