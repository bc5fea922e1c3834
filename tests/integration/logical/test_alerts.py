"""Alerts around real backups and restore tests: a restore test that fails a check is an
alert (its job completes: the result says why); a target that cannot be reached changes
nothing about a backup that succeeds."""

from __future__ import annotations

import json

import pytest

from respaldo.catalog import Notifications
from respaldo.config import load_settings
from respaldo.operations.context import Context
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.test_drill import _add_checked
from tests.ports import closed_port
from tests.servers.notify import Webhook, webhook  # noqa: F401

pytestmark = pytest.mark.integration


def _notify(respaldo: Respaldo, targets: str) -> None:
    respaldo.config.write_text(respaldo.config.read_text() + "\n[notifications]\n" + targets)


def test_a_restore_test_that_fails_a_check_alerts(
    respaldo: Respaldo,
    webhook: Webhook,  # noqa: F811
) -> None:
    _add_checked(respaldo, "no invoice without a project", "SELECT 7", "0")
    _notify(respaldo, f'[[notifications.targets]]\nname = "hook"\nurl = "{webhook.url}"\n')
    backup_id = respaldo.backup("erp_checked")["id"]
    run = respaldo.run("drill", backup_id, "--json")
    assert run.code == 3 and json.loads(run.out)["passed"] is False
    (got,) = webhook.inbox.wait(1)
    assert got["json"]["title"] == "[respaldo] CRITICAL: restore test of erp_checked failed"
    message = got["json"]["message"]
    assert f"restore test of backup {backup_id} failed" in message
    assert "validation: no invoice without a project: got '7', expected '0'" in message
    assert f"What to do: 'respaldo drill {backup_id}' runs it again" in message


def test_an_unreachable_target_never_fails_a_backup(respaldo: Respaldo) -> None:
    _notify(
        respaldo,
        "timeout_seconds = 5\n[[notifications.targets]]\n"
        f'name = "down"\nurl = "json://127.0.0.1:{closed_port()}/x"\n'
        'levels = ["critical", "success"]\n',
    )
    record = respaldo.backup("erp")  # asserts exit 0 and status completed
    with Context.open(load_settings(respaldo.config)) as ctx, ctx.catalog.read() as session:
        (sent,) = Notifications(session).list()
    assert (sent.target, sent.ok, sent.level, sent.kind) == ("down", False, "success", "backup")
    assert record["status"] == "completed"
