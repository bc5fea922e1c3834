"""WAL archiving that may be stuck, seen by a role that cannot list the archive queue (no
pg_monitor), on a quiet database: red, and alerted, only once the same stuck state was
seen for archive_lag_minutes, by looks that may be a restart apart. The server's answers
are given (read_server replaced); the catalog and the alert target are real."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.domain import BackupKind
from respaldo.operations import status, watchdog
from respaldo.operations.context import Context
from respaldo.operations.status_server import ServerReading
from respaldo.operations.status_stuck import stuck_since
from respaldo.postgres.archiver import ArchiverState
from tests.servers.notify import Webhook, webhook  # noqa: F401
from tests.unit.operations.status_support import NOW, backup, drill, status_settings

pytestmark = pytest.mark.unit

MIN = timedelta(minutes=1)
QUIET = ArchiverState(  # the last segment went 40 minutes ago: a quiet database
    now=NOW,
    archived=40,
    last_wal="000000010000000000000028",
    last_time=NOW - 40 * MIN,
    failed=0,
    failed_wal=None,
    failed_time=None,
    waiting=None,
    oldest_waiting=None,
    unknown_why="respaldo may not call pg_ls_archive_statusdir()",
    unarchived=0,
)
UPLOADING = replace(QUIET, unarchived=1)  # the segment that just finished goes up
RETRIED = replace(  # its first attempt failed 5 s ago: the server retries it
    QUIET,
    failed=1,
    failed_wal="000000010000000000000029",
    failed_time=NOW - timedelta(seconds=5),
)


@pytest.fixture
def ctx(tmp_path: Path, webhook: Webhook) -> Iterator[Context]:  # noqa: F811
    target = {"name": "hook", "url": webhook.url, "levels": ["critical", "resolved"]}
    with Context.open(
        status_settings(tmp_path, notifications={"targets": [target]}), create=True
    ) as context:
        full = backup(context, NOW - 60 * MIN)
        physical = backup(context, NOW - 60 * MIN, kind=BackupKind.INCREMENTAL, parent=full)
        # Both kinds restore-tested: each is judged (operations/tested_kinds.py).
        drill(context, full, NOW - 50 * MIN, passed=True)
        drill(context, physical, NOW - 50 * MIN, passed=True)
        yield context


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> list[ArchiverState]:
    """What the server of erp answers: the last state put in the list."""
    said: list[ArchiverState] = []

    def read(db: object, *, archiver: bool, slots: bool = False) -> ServerReading:
        return ServerReading(version="16.4", archive_mode="on", archiver=said[-1])

    monkeypatch.setattr(status, "read_server", read)
    return said


def archive(
    ctx: Context, server: list[ArchiverState], state: ArchiverState, at: timedelta
) -> tuple[str, str]:
    """The archive item and its alert, looked at NOW + ``at`` (the server's clock too)."""
    server.append(replace(state, now=NOW + at))
    result = watchdog.check(ctx, NOW + at, wal_archived=("erp",))
    (item,) = [i for i in result.report.items if i.key == "archive:erp"]
    actions = {c.key: c.action for c in result.conditions}
    return item.level, actions["archive:erp"]


def test_a_segment_uploaded_or_retried_on_a_quiet_database_is_not_alerted(
    ctx: Context,
    server: list[ArchiverState],
    webhook: Webhook,  # noqa: F811
) -> None:
    for suspect in (UPLOADING, RETRIED):
        assert archive(ctx, server, suspect, 0 * MIN) == ("amber", "quiet")
        # Archived a few seconds later: it was not stuck (amber: the queue is not seen).
        done = replace(
            QUIET, last_wal="000000010000000000000029", last_time=NOW + MIN / 2, archived=41
        )
        assert archive(ctx, server, done, MIN) == ("amber", "quiet")
    assert webhook.inbox.items == []


def test_archiving_seen_stuck_for_archive_lag_is_red_across_a_restart(
    tmp_path: Path,
    ctx: Context,
    server: list[ArchiverState],
    webhook: Webhook,  # noqa: F811
) -> None:
    assert archive(ctx, server, UPLOADING, 0 * MIN) == ("amber", "quiet")
    assert archive(ctx, server, UPLOADING, 10 * MIN) == ("amber", "quiet")
    # The service restarts: what it saw before counts.
    with Context.open(ctx.settings) as restarted:
        assert archive(restarted, server, UPLOADING, 16 * MIN) == ("red", "raised")
    (alert,) = webhook.inbox.items
    assert alert["json"]["title"] == (
        "[respaldo] CRITICAL: WAL archiving of erp fails: nothing archived for 56 min "
        "(limit 15 min)"
    )
    # A new segment archived, another one behind it: a new state, seen from now on.
    later = replace(UPLOADING, last_wal="000000010000000000000029", last_time=NOW + 17 * MIN)
    assert archive(ctx, server, later, 18 * MIN) == ("amber", "resolved")
    assert archive(ctx, server, later, 33 * MIN) == ("amber", "quiet")
    assert archive(ctx, server, later, 34 * MIN) == ("red", "raised")


def test_a_stuck_state_is_noted_once_forgotten_when_it_ends_and_kept_while_unseen(
    ctx: Context,
) -> None:
    first = stuck_since(ctx, {"erp": "a", "crm": None}, NOW)
    assert first == {"erp": NOW}
    assert stuck_since(ctx, {"erp": "a"}, NOW + 5 * MIN) == {"erp": NOW}
    assert stuck_since(ctx, {}, NOW + 6 * MIN) == {}  # the server not read: kept
    assert stuck_since(ctx, {"erp": "a"}, NOW + 7 * MIN) == {"erp": NOW}
    assert stuck_since(ctx, {"erp": "b"}, NOW + 8 * MIN) == {"erp": NOW + 8 * MIN}
    assert stuck_since(ctx, {"erp": None}, NOW + 9 * MIN) == {}
    assert stuck_since(ctx, {"erp": "b"}, NOW + 10 * MIN) == {"erp": NOW + 10 * MIN}
    # Noted in the future (the clock was ahead, and was set back): seen from now on.
    assert stuck_since(ctx, {"erp": "b"}, NOW + 2 * MIN) == {"erp": NOW + 2 * MIN}
    assert stuck_since(ctx, {"erp": "b"}, NOW + 3 * MIN) == {"erp": NOW + 2 * MIN}
