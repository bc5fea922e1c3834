"""The asynchronous pusher stores a timeline's history file before pushing what follows it.

wal-push archives a segment that starts with its parent timeline's pages (a promoted
server's first segment) only once the timeline's history file is in the archive. The
server queues the history file first, but a pusher with several workers would push the
segment at the same time: refused, a critical alert, and archiving held up until the
retry. The push itself is replaced here by one that records what ran at the same time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from respaldo.operations import wal_async
from respaldo.operations.wal import PushResult
from respaldo.repository.wal import PutOutcome
from tests.unit.operations.test_wal_push_timeline import config  # noqa: F401  (fixture)

pytestmark = pytest.mark.unit

HISTORY = "00000002.history"
FIRST = "000000020000000000000003"


def test_files_after_a_history_file_wait_until_it_is_pushed(
    config: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pg_wal = tmp_path / "pg_wal"
    (pg_wal / "archive_status").mkdir(parents=True)
    for name in (HISTORY, FIRST):
        (pg_wal / name).touch()  # the verdict names the file pushed (its identity)
        (pg_wal / "archive_status" / f"{name}.ready").touch()
    segment_started = threading.Event()
    overlapped: list[bool] = []

    def push(settings: Any, path: Path, **_: Any) -> PushResult:
        if path.name == HISTORY:
            # Long enough for a worker given the segment at the same time to start it;
            # waiting it out changes nothing when the segment is held back.
            overlapped.append(segment_started.wait(timeout=1.0))
        else:
            segment_started.set()
        return PushResult(path.name, path.name, PutOutcome.STORED, "1", 0, 0.0)

    monkeypatch.setattr(wal_async, "push_wal", push)
    options = wal_async.PusherOptions(config, pg_wal, tmp_path / "spool", workers=4, idle_exit=0.0)
    assert wal_async.run_pusher(options) == 0
    assert overlapped == [False]
    assert segment_started.is_set()
    for name in (HISTORY, FIRST):
        assert (tmp_path / "spool" / f"{name}.ok").exists()
