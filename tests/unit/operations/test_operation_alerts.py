"""Failures that are not a failed job still alert: a WAL push (once per database per
repeat interval, the server retrying every minute), an offsite copy, a prune that could
not finish in a repository. The alerts reach a real JSON webhook on loopback."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.cli.wal_fast import push_command
from respaldo.errors import WalRefused
from respaldo.operations.copy import replicate, replicate_wal
from respaldo.operations.prune import (
    PruneResult,
    RepositoryOutcome,
    _alert,
    _lock_failure,
    prune,
)
from respaldo.operations.wal import push_wal
from tests.servers.notify import Webhook, webhook  # noqa: F401
from tests.unit.operations.support import NOW, Installation

pytestmark = pytest.mark.unit


@pytest.fixture
def setup(tmp_path: Path, webhook: Webhook) -> Iterator[Installation]:  # noqa: F811
    extra = f"""
[notifications]
repeat_interval_minutes = 60

[[notifications.targets]]
name = "hook"
url = "{webhook.url}"
levels = ["critical", "warning", "resolved"]
"""
    installation = Installation.create(tmp_path, extra=extra)
    try:
        yield installation
    finally:
        installation.close()


def test_a_failed_wal_push_alerts_once_per_repeat_interval(
    setup: Installation,
    webhook: Webhook,  # noqa: F811
    tmp_path: Path,
) -> None:
    missing = tmp_path / "pg_wal" / "000000010000000000000007"
    with pytest.raises(WalRefused):
        push_wal(setup.settings(), missing, database="erp")
    # The server retries a minute later, through archive_command: refused, not told again.
    assert push_command(setup.config, missing, database="erp") == 1
    (got,) = webhook.inbox.wait(1)
    assert got["json"]["title"] == "[respaldo] CRITICAL: WAL push of erp failed"
    assert "000000010000000000000007 does not exist" in got["json"]["message"]
    assert len(webhook.inbox.items) == 1


def test_an_offsite_copy_that_fails_alerts_naming_the_repository(
    setup: Installation,
    webhook: Webhook,  # noqa: F811
) -> None:
    setup.backup(timedelta(hours=1))
    shutil.rmtree(setup.root / "second")  # the offsite repository is gone
    outcomes = replicate(setup.ctx)
    assert outcomes and not any(o.ok for o in outcomes)
    (got,) = webhook.inbox.wait(1)
    assert got["json"]["title"] == "[respaldo] CRITICAL: offsite copy failed"
    assert "Repository: second" in got["json"]["message"]


def test_a_wal_copy_that_fails_alerts_once_per_repeat_interval(
    setup: Installation,
    webhook: Webhook,  # noqa: F811
) -> None:
    shutil.rmtree(setup.root / "second")  # the offsite repository is gone
    for _ in range(2):  # two backups' copies while it stays unreachable
        (outcome,) = replicate_wal(setup.ctx)
        assert not outcome.ok
    (got,) = webhook.inbox.wait(1)
    assert got["json"]["title"] == "[respaldo] CRITICAL: offsite copy failed"
    assert "archived WAL not copied to second" in got["json"]["message"]
    assert "Repository: second" in got["json"]["message"]
    assert len(webhook.inbox.items) == 1


def test_a_prune_that_cannot_reach_a_mirror_alerts_once_per_repeat_interval(
    setup: Installation,
    webhook: Webhook,  # noqa: F811
) -> None:
    setup.backup(timedelta(days=30))
    shutil.rmtree(setup.root / "second")
    result = prune(setup.ctx, now=NOW)
    assert result.ok and result.repositories[1].deferred is not None  # not a failure
    (got,) = webhook.inbox.wait(1)
    # A warning, titled as what happened: the prune completed ("CRITICAL: prune failed").
    assert got["json"]["title"] == "[respaldo] WARNING: prune of repository second deferred"
    assert got["json"]["type"] == "warning"
    assert "Repository: second" in got["json"]["message"]
    assert "repository second could not be reached (cannot open" in got["json"]["message"]
    # A mirror down for a week is not an alert every night (a failed copy's throttle);
    # and a dry run changes nothing, so it tells nothing either.
    prune(setup.ctx, now=NOW)
    prune(setup.ctx, now=NOW, dry_run=True)
    assert len(webhook.inbox.items) == 1


def test_object_locks_that_could_not_be_renewed_are_an_alert_of_their_own(
    setup: Installation,
    webhook: Webhook,  # noqa: F811
) -> None:
    result = PruneResult(dry_run=False, now=NOW, decisions=[])
    locked = RepositoryOutcome("second")
    _lock_failure(
        locked, "could not renew 3 object locks (first: packs/ab); the next prune tries again"
    )
    result.repositories = [RepositoryOutcome("local"), locked]
    _alert(setup.ctx, result, None)
    (got,) = webhook.inbox.wait(1)
    assert got["json"]["title"] == "[respaldo] CRITICAL: lock renewal failed"
    assert "Repository: second" in got["json"]["message"]
    assert "could not renew 3 object locks" in got["json"]["message"]
    assert "s3:PutObjectRetention" in got["json"]["message"]
    assert len(webhook.inbox.items) == 1  # not a second alert as a failed prune
