"""The verdict on a server's WAL archiving, from what the server said (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from respaldo.config import Settings
from respaldo.operations.status_server import (
    ServerReading,
    human_age,
    judge_archive,
    stuck_state,
)
from respaldo.postgres.archiver import ArchiverState

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
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


# A quiet database (no archive_timeout): its last segment went 40 minutes ago, and this
# role may not list the archive queue (no pg_monitor).
QUIET = dict(
    last_time=NOW - timedelta(minutes=40),
    waiting=None,
    unknown_why="respaldo may not call pg_ls_archive_statusdir()",
)
UPLOADING = reading(**QUIET, unarchived=1)  # the segment that just finished goes up now
RETRIED = reading(  # its first attempt failed 5 s ago; the server retries it
    **QUIET, failed=1, failed_wal="000000010000000000000029", failed_time=NOW - 5 * SECOND
)


def test_a_quiet_database_that_may_be_stuck_is_amber_until_seen_so_for_archive_lag() -> None:
    # The last success is 40 min old, but the segment after it may have finished a second
    # ago: only the same state seen for archive_lag_minutes (15) says it is stuck.
    for suspect in (UPLOADING, RETRIED):
        for seen in (None, timedelta(0), timedelta(minutes=15)):
            verdict = judge_archive(suspect, RPO, stuck_for=seen)
            assert verdict.level == "amber", (seen, verdict.reason)
            assert "(red after 15 min)" in verdict.reason
    verdict = judge_archive(UPLOADING, RPO, stuck_for=timedelta(minutes=4))
    assert verdict.reason.startswith(
        "1 finished segment not archived, seen so far 4 min (red after 15 min); "
        "last archived 40 min ago (000000010000000000000028); cannot see the files"
    )
    verdict = judge_archive(RETRIED, RPO)
    assert verdict.reason.startswith(
        "archiving may be stuck, seen so far 0 s (red after 15 min); last archived 40 min ago"
    )
    verdict = judge_archive(RETRIED, RPO, stuck_for=timedelta(minutes=16))
    assert (verdict.level, verdict.age) == ("red", timedelta(minutes=40))
    assert verdict.reason.startswith(
        "archiving fails, stuck for 16 min at least (limit 15 min); "
        "last archived 40 min ago (000000010000000000000028); the last attempt failed "
        "(000000010000000000000029, 5 s ago"
    )
    assert verdict.reason.endswith("GRANT pg_monitor to this role")
    verdict = judge_archive(UPLOADING, RPO, stuck_for=timedelta(minutes=30))
    assert verdict.reason.startswith(
        "archiving fails, stuck for 30 min at least (limit 15 min); 1 finished segment not "
        "archived; last archived 40 min ago"
    )


def test_what_may_be_stuck_is_the_last_segment_archived_with_a_failure_or_segments_after_it() -> (
    None
):
    assert (
        stuck_state(UPLOADING)
        == stuck_state(RETRIED)
        != stuck_state(reading(**{**QUIET, "last_time": NOW - timedelta(minutes=39)}, unarchived=1))
    )
    never = reading(
        last_wal=None, last_time=None, waiting=None, failed=3, failed_time=NOW, failed_wal="x"
    )
    assert stuck_state(never) is not None
    for fine in (
        reading(**QUIET),  # nothing after the last one archived
        reading(**QUIET, unarchived=0),
        reading(unarchived=1),  # the queue can be listed: what waits says it all
        replace(RETRIED, error="cannot connect"),
    ):
        assert stuck_state(fine) is None


def test_a_server_the_repository_records_as_another_cluster_is_red() -> None:
    # Re-created (initdb, pg_upgrade): wal-push refuses its WAL, and an archive_command
    # storing nothing archives names the old cluster's archive holds. Said before any
    # other finding, even with the last file "stored" (the old cluster's of that name).
    recreated = replace(reading(), system_identifier="7716323209320357378")
    verdict = judge_archive(
        recreated, RPO, stored=True, recorded="7716323189502102936", database="erp"
    )
    assert verdict.level == "red"
    assert verdict.reason == (
        "the server is cluster 7716323209320357378, but the repository records cluster "
        "7716323189502102936 for erp: none of this server's WAL is archived and its "
        "physical backups are refused; if the server was re-created on purpose, run "
        "'respaldo check erp --adopt' (last archived 3 min ago (000000010000000000000028))"
    )
    assert judge_archive(recreated, RPO, stored=True).level == "green"


def test_a_switch_to_wal_level_minimal_after_the_newest_backup_is_red() -> None:
    verdict = judge_archive(
        reading(), RPO, stored=True, minimal=("0/40000A0", "20261206T223622Z-1477dd9e")
    )
    assert verdict.level == "red"
    assert verdict.reason == (
        "the server ran with wal_level = minimal (switched at 0/40000A0): recovery from the "
        "newest physical backup 20261206T223622Z-1477dd9e stops there with an error, "
        "without what came after; take a physical backup now, from which point-in-time "
        "recovery reaches the present again (last archived 3 min ago "
        "(000000010000000000000028))"
    )


def test_archiving_onto_no_backup_of_the_cluster_is_red() -> None:
    # Re-created and adopted: the newest physical backup is the old cluster's.
    verdict = judge_archive(
        reading(), RPO, stored=True, unbacked=("20261206T223457Z-2a4906e2", "7716323189502102936")
    )
    assert verdict.level == "red"
    assert verdict.reason.startswith(
        "no physical backup of this cluster yet: the newest, 20261206T223457Z-2a4906e2, is of "
        "cluster 7716323189502102936, which this server's archived WAL cannot be replayed onto"
    )
    assert "take a physical backup now" in verdict.reason


def test_a_standby_that_archives_nothing_is_amber() -> None:
    standby = reading(archived=0, last_wal=None, last_time=None)
    verdict = judge_archive(replace(standby, in_recovery=True), RPO)
    assert verdict.level == "amber"
    assert verdict.reason.startswith("the server is a standby: it archives no WAL")
    # archive_mode = always: the standby archives what it receives, judged as a primary.
    always = replace(reading(), in_recovery=True, archive_mode="always")
    assert judge_archive(always, RPO).level == "green"
