"""The verdict on a server's WAL archiving, from what the server said (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from respaldo.config import Settings
from respaldo.operations.status_server import ServerReading, human_age, judge_archive
from respaldo.postgres.archiver import ArchiverState

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
RPO = Settings(databases=[{"name": "erp", "dsn": "postgresql://r@h/erp"}]).rpo_for("erp")
STATE = ArchiverState(
    now=NOW,
    archived=40,
    last_wal="000000010000000000000028",
    last_time=NOW - timedelta(minutes=3),
    failed=0,
    failed_wal=None,
    failed_time=None,
    waiting=0,
    oldest_waiting=None,
)


def reading(**changes: Any) -> ServerReading:
    return ServerReading(version="16.4", archive_mode="on", archiver=replace(STATE, **changes))


def test_archiving_that_keeps_up_is_green() -> None:
    verdict = judge_archive(reading(), RPO)
    assert (verdict.level, verdict.age) == ("green", timedelta(minutes=3))
    assert verdict.reason == "last archived 3 min ago (000000010000000000000028); 0 waiting"


def test_archive_mode_off_is_red() -> None:
    verdict = judge_archive(ServerReading(version="16.4", archive_mode="off"), RPO)
    assert verdict.level == "red"
    assert verdict.reason.startswith("archive_mode is off on the server: no WAL is archived")


def test_a_backlog_above_the_threshold_is_amber_and_one_too_old_is_red() -> None:
    busy = reading(waiting=65, oldest_waiting=NOW - timedelta(minutes=2))
    verdict = judge_archive(busy, RPO)
    assert verdict.level == "amber"
    assert verdict.reason.startswith(
        "65 files waiting to be archived (more than 64): archiving is behind"
    )
    assert judge_archive(reading(waiting=64, oldest_waiting=NOW), RPO).level == "green"
    stuck = reading(waiting=3, oldest_waiting=NOW - timedelta(minutes=16))
    verdict = judge_archive(stuck, RPO)
    assert (verdict.level, verdict.age) == ("red", timedelta(minutes=16))
    assert verdict.reason.startswith(
        "3 files waiting to be archived, the oldest for 16 min (limit 15 min)"
    )


def test_a_failure_after_the_last_success_is_amber_an_older_one_is_not() -> None:
    failing = reading(
        failed=2, failed_wal="000000010000000000000029", failed_time=NOW - timedelta(seconds=30)
    )
    verdict = judge_archive(failing, RPO)
    assert verdict.level == "amber"
    assert "the last attempt failed (000000010000000000000029, 30 s ago" in verdict.reason
    recovered = reading(
        failed=2, failed_wal="000000010000000000000027", failed_time=NOW - timedelta(hours=1)
    )
    assert judge_archive(recovered, RPO).level == "green"


def test_waiting_files_this_role_cannot_list_are_amber() -> None:
    blind = reading(waiting=None, unknown_why="respaldo may not call pg_ls_archive_statusdir()")
    verdict = judge_archive(blind, RPO)
    assert verdict.level == "amber"
    assert "GRANT pg_monitor" in verdict.reason


def test_ages_in_words() -> None:
    assert [
        human_age(timedelta(seconds=s))
        for s in (-5, 59, 119, 120, 7199, 7200, 26 * 3600 + 1800, 72 * 3600, 80 * 3600)
    ] == ["0 s", "59 s", "119 s", "2 min", "119 min", "2 h", "26 h 30 min", "3 d", "3 d 8 h"]
