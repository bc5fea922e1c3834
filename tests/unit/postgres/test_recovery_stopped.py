"""What ``restore --start`` says when PostgreSQL ends a recovery with a FATAL message.

A target time while the backup ran is not refused before the restore (where the backup
became consistent is an LSN, not a time): PostgreSQL refuses it if a transaction
committed between the target and that point, and the report must say so, not only that
the server stopped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.postgres.datadir import _why_recovery_stopped

pytestmark = pytest.mark.unit


def test_a_target_before_the_consistent_point_is_reported_as_such(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(
        "LOG:  starting point-in-time recovery to 2026-12-05 07:00:01+00\n"
        "LOG:  recovery stopping before commit of transaction 741, time 2026-12-05 07:00:02\n"
        "FATAL:  requested recovery stop point is before consistent recovery point\n"
    )
    reason, hint = _why_recovery_stopped(log)
    assert "before the backup's end" in reason
    assert "respaldo list" in hint


def test_an_unknown_stop_gets_the_general_hint(tmp_path: Path) -> None:
    reason, hint = _why_recovery_stopped(tmp_path / "absent.log")
    assert reason == ""
    assert "archived WAL" in hint
