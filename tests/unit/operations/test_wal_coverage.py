"""How far archived WAL lets a backup recover, from file names alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from respaldo.errors import IntegrityError, InvalidWalFile, RestoreError, option
from respaldo.i18n import translations
from respaldo.operations import wal_coverage as wal_coverage_module
from respaldo.operations.wal_coverage import (
    WalCoverage,
    check_recovery_target,
    earliest_target_time,
    label_start_time,
    newest_timeline,
    offset_warnings,
    timeline_path,
    wal_coverage,
)
from respaldo.postgres.datadir import RecoveryTarget
from respaldo.postgres.wal import format_lsn, parse_lsn
from respaldo.reasons import reason
from respaldo.repository import Manifest

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def no_cluster_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """No repository here: the cluster record (a switch to wal_level = minimal, read by
    minimal_switch) says nothing; tests/integration/physical/test_wal_level_minimal.py
    has a real one."""
    monkeypatch.setattr(wal_coverage_module, "minimal_switch", lambda *args: None)


MIB16 = 16 * 1024 * 1024


def _seg(number: int, timeline: int = 1) -> str:
    return f"{timeline:08X}{number // 256:08X}{number % 256:08X}"


def test_continuous_archive_ends_at_its_last_segment() -> None:
    # The backup ended in segment 3 (its tar holds it); 4 and 5 are archived.
    names = [_seg(n) for n in range(1, 6)] + [f"{_seg(3)}.00000028.backup"]
    found = wal_coverage(names, timeline=1, stop_lsn=3 * MIB16 + 0x100, segment_size=MIB16)
    assert found.end == 6 * MIB16
    assert found.missing is None


def test_the_segments_recovery_replays_after_the_backup_are_named_in_order() -> None:
    names = [_seg(n) for n in range(1, 6)] + [_seg(8)]
    found = wal_coverage(names, timeline=1, stop_lsn=3 * MIB16 + 0x100, segment_size=MIB16)
    # The backup's own segment (3) is in its tar; the run ends at the gap before 8.
    assert found.replayed == (_seg(4), _seg(5))
    switched = wal_coverage(
        [_seg(4), _seg(5, 2), _seg(6, 2)],
        timeline=1,
        stop_lsn=3 * MIB16 + 0x100,
        segment_size=MIB16,
        path=[(1, 0), (2, 5 * MIB16 + 0x80)],
    )
    assert switched.replayed == (_seg(4), _seg(5, 2), _seg(6, 2))


def test_a_missing_segment_after_the_backup_is_a_gap() -> None:
    names = [_seg(4), _seg(6), _seg(7)]
    found = wal_coverage(names, timeline=1, stop_lsn=3 * MIB16 + 0x100, segment_size=MIB16)
    assert (found.missing, found.resumes) == (_seg(5), _seg(6))
    assert found.end == 5 * MIB16


def test_segments_missing_before_the_backups_end_are_in_its_tar() -> None:
    found = wal_coverage([_seg(9)], timeline=1, stop_lsn=9 * MIB16, segment_size=MIB16)
    # Stop exactly at the start of segment 9: the tar's WAL ends with segment 8.
    assert found.missing is None and found.end == 10 * MIB16


def test_nothing_archived_after_the_backup_ends_at_its_stop() -> None:
    stop = parse_lsn("0/3000100")
    found = wal_coverage([_seg(1), _seg(2)], timeline=1, stop_lsn=stop, segment_size=MIB16)
    assert found.end == 4 * MIB16 and found.missing is None


def test_other_timelines_and_names_do_not_count_on_their_own() -> None:
    names = [_seg(4, 2), "00000002.history", "00000001.history", "junk", f"{_seg(4)}.partial"]
    found = wal_coverage(names, timeline=1, stop_lsn=3 * MIB16 + 1, segment_size=MIB16)
    assert found.end == 4 * MIB16 and found.missing is None


def test_the_newest_timeline_is_the_last_of_consecutive_history_files() -> None:
    names = ["00000002.history", "00000003.history", "00000005.history", _seg(3, 4)]
    assert newest_timeline(names, 1) == 3
    assert newest_timeline(names, 5) == 5


def test_recovery_follows_the_timelines_of_the_newest_history() -> None:
    # Timeline 1 until 0/5000100 (in segment 5), then 2 until 0/7000000, then 3.
    history = "1\t0/5000100\tno recovery target specified\n\n2\t0/7000000\tbefore 123\n"
    path = timeline_path(history, 3)
    assert path == [(1, 0), (2, parse_lsn("0/5000100")), (3, parse_lsn("0/7000000"))]
    # The backup ended in segment 3 of timeline 1; segment 5 is the switch: timeline 2's.
    names = [_seg(4), _seg(5), _seg(6), _seg(5, 2), _seg(6, 2), _seg(7, 3), _seg(8, 3)]
    found = wal_coverage(names, timeline=1, stop_lsn=3 * MIB16 + 8, segment_size=MIB16, path=path)
    assert found.missing is None and found.end == 9 * MIB16
    # Timeline 2's segment 6 missing: timeline 1's segment 6 does not stand in for it.
    names.remove(_seg(6, 2))
    found = wal_coverage(names, timeline=1, stop_lsn=3 * MIB16 + 8, segment_size=MIB16, path=path)
    assert (found.missing, found.resumes) == (_seg(6, 2), _seg(7, 3))


def test_segment_numbers_carry_into_the_next_log_id() -> None:
    names = [_seg(255), _seg(256), _seg(258)]
    found = wal_coverage(names, timeline=1, stop_lsn=254 * MIB16 + 8, segment_size=MIB16)
    assert found.missing == "000000010000000100000001"
    assert found.end == 257 * MIB16


def test_a_switch_in_the_backups_last_segment_needs_the_new_timelines_copy() -> None:
    # Promoted right at the backup's end (restore --immediate, then archiving kept on).
    stop = 3 * MIB16 + 0x100
    path = timeline_path(f"1\t{format_lsn(stop)}\treached consistency\n", 2)
    found = wal_coverage(
        [_seg(3), _seg(4, 2)], timeline=1, stop_lsn=stop, segment_size=MIB16, path=path
    )
    assert (found.missing, found.resumes) == (_seg(3, 2), _seg(4, 2))
    found = wal_coverage(
        [_seg(3, 2), _seg(4, 2)], timeline=1, stop_lsn=stop, segment_size=MIB16, path=path
    )
    assert found.missing is None and found.end == 5 * MIB16


def _manifest(started_at: datetime, start_time: str, **meta: object) -> Manifest:
    return Manifest(
        "b", "incremental", "erp", started_at, started_at + timedelta(minutes=5), "0", [],
        meta={"start_time": start_time, **meta},
    )  # fmt: skip


STARTED = datetime(2026, 12, 5, 7, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("label", "server"),
    [
        ("2026-12-05 06:59:58 UTC", datetime(2026, 12, 5, 6, 59, 58, tzinfo=UTC)),
        ("2026-12-05 07:00:03 GMT", datetime(2026, 12, 5, 7, 0, 3, tzinfo=UTC)),
        ("2026-12-05 07:59:58 +01", datetime(2026, 12, 5, 6, 59, 58, tzinfo=UTC)),
        ("2026-12-05 10:00:03 +03", datetime(2026, 12, 5, 7, 0, 3, tzinfo=UTC)),
        # A zone name (the server's log_timezone abbreviation), read with the tz database.
        ("2026-12-05 08:00:03 CET", datetime(2026, 12, 5, 7, 0, 3, tzinfo=UTC)),
        ("2026-12-05 02:00:03 EST", datetime(2026, 12, 5, 7, 0, 3, tzinfo=UTC)),
        # The hour repeated when summer time ends: the abbreviation says which one.
        ("2026-10-25 02:30:00 CEST", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        ("2026-10-25 02:30:00 CET", datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
        # IST is India's, Ireland's summer time and Israel's: no guess. Nor for none.
        ("2026-07-05 08:00:03 IST", None),
        ("2026-12-05 08:00:03 XYZT", None),
        ("", None),
        # A POSIX log_timezone 'UTC+3' writes "UTC" three hours off: outside the backup's
        # own run, so not trusted (it would move the bound by three hours).
        ("2026-12-05 04:00:03 UTC", None),
        # PST: Los Angeles (07:00:03Z the next day) or Manila (15:00:03Z): the run says.
        ("2026-12-04 23:00:03 PST", datetime(2026, 12, 5, 7, 0, 3, tzinfo=UTC)),
        ("2026-12-05 15:00:03 PST", datetime(2026, 12, 5, 7, 0, 3, tzinfo=UTC)),
    ],
)
def test_the_backup_labels_start_time_is_read_on_the_servers_clock(
    label: str, server: datetime | None
) -> None:
    # Each backup started a few seconds before its label's time (respaldo's clock).
    started = (server or STARTED) - timedelta(seconds=3)
    assert label_start_time(_manifest(started, label)) == server


def _refused_or_warned(label: str, target: datetime) -> list[str]:
    return check_recovery_target(
        None,  # type: ignore[arg-type]  # --target-time only: the archive is not looked at here
        _manifest(STARTED, label),
        RecoveryTarget(time=target),
    )


@pytest.fixture
def no_archive(monkeypatch: pytest.MonkeyPatch) -> None:
    # The time bound is decided from the manifest alone; the archive part says nothing.
    monkeypatch.setattr(wal_coverage_module, "_archive_warnings", lambda *_: [])


@pytest.mark.usefixtures("no_archive")
@pytest.mark.parametrize("label", ["2026-12-05 08:00:05 CET", "2026-12-05 07:00:05 UTC"])
def test_a_target_time_before_the_servers_start_time_is_refused(label: str) -> None:
    # respaldo started at 07:00:00, the server's checkpoint ended by 07:00:05: a commit at
    # 07:00:01 is in the backup's files and never replayed, so a target at 07:00:02 would
    # come back with it (and with whatever followed until the first commit after the end).
    target = datetime(2026, 12, 5, 7, 0, 2, tzinfo=UTC)
    with pytest.raises(RestoreError, match="before backup b started") as caught:
        _refused_or_warned(label, target)
    assert caught.value.hint is not None and option("immediate") in caught.value.hint


def test_the_labels_whole_second_is_refused_up_to_the_backups_end() -> None:
    # START TIME is in whole seconds: the checkpoint may have ended at 07:00:05.9.
    label = "2026-12-05 07:00:05 UTC"
    bound = datetime(2026, 12, 5, 7, 0, 6, tzinfo=UTC)
    assert earliest_target_time(_manifest(STARTED, label)) == (bound, True)
    # A backup that ended within that second: any target after its end is valid.
    stop = datetime(2026, 12, 5, 7, 0, 5, 400000, tzinfo=UTC)
    manifest = _manifest(STARTED, label, stop_time=stop.isoformat())
    assert earliest_target_time(manifest) == (stop, True)
    assert earliest_target_time(_manifest(STARTED, "")) == (STARTED, False)


@pytest.mark.usefixtures("no_archive")
def test_a_target_time_while_the_backup_ran_is_warned_about() -> None:
    within_the_labels_second = datetime(2026, 12, 5, 7, 0, 5, 500000, tzinfo=UTC)
    with pytest.raises(RestoreError, match="before backup b started"):
        _refused_or_warned("2026-12-05 08:00:05 CET", within_the_labels_second)
    target = datetime(2026, 12, 5, 7, 0, 6, tzinfo=UTC)
    (warning,) = _refused_or_warned("2026-12-05 08:00:05 CET", target)
    assert "PostgreSQL refuses it" in warning
    assert _refused_or_warned("2026-12-05 08:00:05 CET", STARTED + timedelta(minutes=6)) == []


@pytest.mark.usefixtures("no_archive")
def test_a_target_time_in_the_future_is_refused() -> None:
    manifest = _manifest(STARTED, "2026-12-05 08:00:05 CET")
    now = STARTED + timedelta(hours=2)  # 09:00 UTC, 10:00 in Madrid

    def check(target: datetime) -> list[str]:
        return check_recovery_target(None, manifest, RecoveryTarget(time=target), now=now)  # type: ignore[arg-type]

    madrid = timezone(timedelta(hours=1))
    # The day typed wrong: tomorrow at 09:30 in Madrid.
    with pytest.raises(RestoreError, match="is in the future") as caught:
        check(datetime(2026, 12, 6, 9, 30, tzinfo=madrid))
    said = str(caught.value)
    assert "2026-12-06T09:30:00+01:00" in said
    assert "this machine's clock says 2026-12-05T10:00:00+01:00" in said  # in the target's offset
    assert caught.value.hint is not None and "give no target" in caught.value.hint
    # A server clock a few minutes ahead of this one: still a target it may reach.
    assert check(now + timedelta(minutes=9)) == []
    with pytest.raises(RestoreError, match="is in the future"):
        check(now + timedelta(minutes=11))


@pytest.mark.usefixtures("no_archive")
def test_a_server_clock_ahead_at_the_backup_moves_the_future_on() -> None:
    # The server's clock was an hour ahead of respaldo's: its stop_time is an hour after
    # respaldo's completion, and so are its commits now.
    completed = STARTED + timedelta(minutes=5)
    manifest = _manifest(STARTED, "", stop_time=(completed + timedelta(hours=1)).isoformat())
    now = STARTED + timedelta(hours=2)

    def check(target: datetime) -> list[str]:
        return check_recovery_target(None, manifest, RecoveryTarget(time=target), now=now)  # type: ignore[arg-type]

    assert check(now + timedelta(minutes=65)) == []  # five minutes ago on the server
    with pytest.raises(RestoreError, match="is in the future") as caught:
        check(now + timedelta(minutes=71))
    assert "(the server's was 1 h 0 min ahead of respaldo's at the backup)" in str(caught.value)


@pytest.mark.usefixtures("no_archive")
@pytest.mark.parametrize("label", ["", "2026-07-05 08:00:03 IST"])
def test_without_the_servers_start_time_the_warning_says_what_may_come_back(label: str) -> None:
    # Only respaldo's own start is known, before the checkpoint: a target between the two
    # is not refused, and PostgreSQL cannot refuse it either (its commits are not replayed).
    with pytest.raises(RestoreError, match="before backup b started"):
        _refused_or_warned(label, STARTED - timedelta(seconds=1))
    (warning,) = _refused_or_warned(label, STARTED + timedelta(seconds=2))
    assert "PostgreSQL refuses" not in warning
    assert "may include commits made after the target" in warning
    assert "an earlier backup" in warning and "the backup's end (immediate)" in warning


def test_a_history_file_that_is_not_one_is_an_error_not_a_shorter_path() -> None:
    # Skipping a line it cannot read would follow the wrong timelines without a word.
    with pytest.raises(InvalidWalFile, match="not a timeline history line"):
        timeline_path("1\t0/5000100\tok\nthis is not history\n", 3)


def _archive(monkeypatch: pytest.MonkeyPatch, names: list[str], history: str) -> Manifest:
    """A backup of timeline 1 that ended in segment 3, and an archive of ``names`` whose
    timeline 2 history file is ``history``."""
    monkeypatch.setattr(wal_coverage_module, "list_wal", lambda _repo, _sid: names)
    monkeypatch.setattr(
        wal_coverage_module, "get_wal", lambda _repo, _sid, _tli, _name: history.encode()
    )
    # The segments hold no WAL here: where a target time lies in it is tested below.
    monkeypatch.setattr(wal_coverage_module, "_after_last_commit", lambda *_: [])
    meta = {
        "stop_lsn": "0/3000100", "wal_segment_size": MIB16, "system_identifier": "7",
        "timeline": 1,
    }  # fmt: skip
    return _manifest(STARTED, "", **meta)


# A restored copy that kept archiving was promoted to timeline 2 at 0/5000100.
SWITCH = "1\t0/5000100\tno recovery target specified\n"
COPY = ["00000002.history", _seg(4), _seg(5, 2), _seg(6, 2)]


def test_recovery_on_a_newer_timeline_than_the_backups_is_warned_about(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest = _archive(monkeypatch, COPY, SWITCH)
    (warning,) = check_recovery_target(None, manifest, RecoveryTarget())  # type: ignore[arg-type]
    assert "recovery follows timeline 2" in warning and "timeline 1" in warning
    assert "0/5000100" in warning and "kept writing" not in warning
    # A target on the history both timelines share: nothing to say.
    on_both = RecoveryTarget(lsn="0/5000000")
    assert check_recovery_target(None, manifest, on_both) == []  # type: ignore[arg-type]


def test_the_backups_timeline_archived_on_after_the_switch_is_warned_about_more_strongly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Production stayed on timeline 1 and archived segments 5 to 7 after the copy branched
    # off: recovery to the end would replay the copy's timeline 2, not production's WAL.
    names = [*COPY, _seg(5), _seg(6), _seg(7), f"{_seg(5)}.partial"]
    manifest = _archive(monkeypatch, names, SWITCH)
    found = wal_coverage(
        names, timeline=1, stop_lsn=3 * MIB16 + 0x100, segment_size=MIB16,
        path=timeline_path(SWITCH, 2),
    )  # fmt: skip
    assert found.left == (1, _seg(7))
    (warning,) = check_recovery_target(None, manifest, RecoveryTarget())  # type: ignore[arg-type]
    assert "recovery follows timeline 2" in warning
    assert f"timeline 1 was archived on after 0/5000100 (up to {_seg(7)})" in warning
    assert "remove timeline 2's files" in warning and "00000002/" in warning
    target = RecoveryTarget(time=STARTED + timedelta(hours=1))
    assert check_recovery_target(None, manifest, target) == [warning]  # type: ignore[arg-type]


def test_the_old_timelines_partial_segment_is_not_written_on_after_the_switch() -> None:
    # What a promoted server archives of its old timeline's last segment: not a sign of
    # a server that kept writing on it.
    names = [*COPY, f"{_seg(5)}.partial"]
    found = wal_coverage(
        names, timeline=1, stop_lsn=3 * MIB16 + 0x100, segment_size=MIB16,
        path=timeline_path(SWITCH, 2),
    )  # fmt: skip
    assert found.left is None and found.missing is None


@pytest.mark.parametrize(
    ("label", "zone", "server"),
    [
        # IST in the server's own zone: India's, or Ireland's summer time, not a guess.
        ("2026-07-05 08:00:03 IST", "Asia/Kolkata", datetime(2026, 7, 5, 2, 30, 3, tzinfo=UTC)),
        ("2026-07-05 08:00:03 IST", "Europe/Dublin", datetime(2026, 7, 5, 7, 0, 3, tzinfo=UTC)),
        # The repeated hour, told apart by the abbreviation in the named zone.
        ("2026-10-25 02:30:00 CEST", "Europe/Madrid", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        ("2026-10-25 02:30:00 CET", "Europe/Madrid", datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
    ],
)
def test_the_start_time_is_read_in_the_servers_recorded_log_timezone(
    label: str, zone: str, server: datetime
) -> None:
    started = server - timedelta(seconds=3)
    assert label_start_time(_manifest(started, label, log_timezone=zone)) == server


def test_in_a_recorded_zone_the_start_time_is_the_servers_even_off_respaldos_clock() -> None:
    # The server's clock runs an hour behind respaldo's: its label time is outside the
    # backup's run on respaldo's clock, but target times (commit timestamps) are on the
    # server's clock, so the server's own reading is the bound.
    label = "2026-12-05 07:00:03 CET"  # 06:00:03Z on the server's clock
    plain = _manifest(STARTED, label)
    named = _manifest(STARTED, label, log_timezone="Europe/Madrid")
    assert label_start_time(plain) is None
    assert label_start_time(named) == datetime(2026, 12, 5, 6, 0, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("label", "zone", "server"),
    [
        # A POSIX zone the tz database does not have: read as before, by the run's window.
        ("2026-12-05 04:00:03 UTC", "UTC+3", None),
        ("2026-12-05 07:00:03 UTC", "<+03>-03", datetime(2026, 12, 5, 7, 0, 3, tzinfo=UTC)),
        # An abbreviation the named zone does not use then (the setting changed between
        # the backup's start and its end): read as before.
        ("2026-12-05 08:00:03 CET", "Asia/Tokyo", datetime(2026, 12, 5, 7, 0, 3, tzinfo=UTC)),
        ("2026-12-05 08:00:03 CET", "../../etc/passwd", datetime(2026, 12, 5, 7, 0, 3, tzinfo=UTC)),
    ],
)
def test_a_recorded_zone_that_does_not_fit_is_not_trusted(
    label: str, zone: str, server: datetime | None
) -> None:
    started = STARTED - timedelta(seconds=3)
    assert label_start_time(_manifest(started, label, log_timezone=zone)) == server


MADRID = ZoneInfo("Europe/Madrid")


def _offset_said(target: str, zone: ZoneInfo | None = MADRID) -> list[str]:
    return offset_warnings(RecoveryTarget(time=datetime.fromisoformat(target)), zone)


def test_a_winter_offset_for_a_summer_time_is_warned_about() -> None:
    (said,) = _offset_said("2026-07-15 10:00:00+01:00")
    assert said.startswith(
        "the recovery target 2026-07-15 10:00:00+01:00 is 2026-07-15 11:00:00 CEST in "
        "Europe/Madrid ([schedules] time_zone), whose UTC offset then is +02:00, not +01:00"
    )
    assert said.endswith("10:00:00 there is 2026-07-15 10:00:00+02:00 (CEST)")


def test_a_time_a_spring_forward_change_skipped_is_warned_about() -> None:
    # 02:30 on 29 March 2026 never happened in Madrid; +01:00 makes it 03:30 summer time.
    (said,) = _offset_said("2026-03-29 02:30:00+01:00")
    assert "is 2026-03-29 03:30:00 CEST in Europe/Madrid" in said
    assert "no clock there showed 2026-03-29 02:30:00" in said


def test_the_fall_back_hour_is_named_twice_where_its_offset_is_neither() -> None:
    # 02:30 on 25 October 2026 happened twice in Madrid: either offset is that time.
    assert _offset_said("2026-10-25 02:30:00+02:00") == []
    assert _offset_said("2026-10-25 02:30:00+01:00") == []
    (said,) = _offset_said("2026-10-25 02:30:00-05:00")
    assert said.endswith(
        "02:30:00 there is 2026-10-25 02:30:00+02:00 (CEST) or 2026-10-25 02:30:00+01:00 (CET)"
    )


def test_utc_and_no_configured_zone_are_not_warned_about() -> None:
    assert _offset_said("2026-07-15 10:00:00+00:00") == []
    assert _offset_said("2026-07-15 10:00:00+01:00", None) == []
    # Mexico City has kept -06:00 all year since 2022: its old summer offset is warned.
    assert _offset_said("2026-07-15 10:00:00-06:00", ZoneInfo("America/Mexico_City")) == []
    (said,) = _offset_said("2026-07-15 10:00:00-05:00", ZoneInfo("America/Mexico_City"))
    assert "is 2026-07-15 09:00:00 CST in America/Mexico_City" in said


# --- a target time after the newest archived commit -------------------------------------------

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _commits(
    monkeypatch: pytest.MonkeyPatch, by_segment: dict[str, list[datetime] | Exception]
) -> tuple[Manifest, WalCoverage, list[str]]:
    """A backup that ended in segment 3, segments 4 and 5 archived after it; the commit
    times each segment holds (or what reading it raises). Returns the manifest, the
    coverage and the segments read, in order."""
    read: list[str] = []

    def get_wal(_repo: object, _sid: str, _tli: str, name: str) -> bytes:
        read.append(name)
        found = by_segment.get(name, [])
        if isinstance(found, Exception):
            raise found
        return name.encode()

    def times(
        segment: bytes, _following: bytes | None, after: int = 0, beyond: bytes = b""
    ) -> list[int]:
        found = by_segment.get(segment.decode(), [])
        assert isinstance(found, list)
        return [(t - EPOCH) // timedelta(microseconds=1) for t in found]

    monkeypatch.setattr(wal_coverage_module, "get_wal", get_wal)
    monkeypatch.setattr(wal_coverage_module, "xact_end_times", times)
    meta = {
        "stop_lsn": "0/3000100", "wal_segment_size": MIB16, "system_identifier": "7",
        "timeline": 1,
    }  # fmt: skip
    coverage = wal_coverage([_seg(3), _seg(4), _seg(5)], timeline=1, stop_lsn=0x3000100,
                            segment_size=MIB16)  # fmt: skip
    return _manifest(STARTED, "", **meta), coverage, read


def _check(manifest: Manifest, coverage: WalCoverage, target: datetime) -> list[str]:
    return check_recovery_target(
        None,  # type: ignore[arg-type]  # its WAL is read through the patched get_wal
        manifest, RecoveryTarget(time=target), coverage, now=STARTED + timedelta(hours=2),
    )  # fmt: skip


def test_a_target_after_the_newest_archived_commit_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    last = STARTED + timedelta(minutes=30)
    manifest, coverage, read = _commits(
        monkeypatch, {_seg(4): [last - timedelta(minutes=5)], _seg(5): [last - timedelta(1), last]}
    )
    santiago = timezone(timedelta(hours=-3))
    with pytest.raises(RestoreError, match="after the last transaction") as caught:
        _check(manifest, coverage, last + timedelta(seconds=1))
    assert "its newest commit after backup b is at 2026-12-05T04:30:00-03:00" not in str(
        caught.value
    )  # the target's offset is UTC here
    assert "is at 2026-12-05T07:30:00+00:00 (archived up to 0/6000000)" in str(caught.value)
    assert caught.value.hint is not None and "no target" in caught.value.hint
    # The newest segment held one: the older ones were not read.
    assert read == [_seg(5)]
    with pytest.raises(RestoreError) as caught:
        _check(manifest, coverage, (last + timedelta(minutes=1)).astimezone(santiago))
    assert "is at 2026-12-05T04:30:00-03:00" in str(caught.value)
    # At the commit itself: recovery stops only before a commit later than the target
    # (recovery_target_inclusive replays the one at it and goes on), so it is not reached.
    with pytest.raises(RestoreError, match="is at the last transaction") as caught:
        _check(manifest, coverage, last)
    assert caught.value.hint is not None
    assert caught.value.hint.startswith("give a target before 2026-12-05T07:30:00+00:00")
    # Before it, by as little as a microsecond: reached.
    assert _check(manifest, coverage, last - timedelta(microseconds=1)) == []
    assert _check(manifest, coverage, last - timedelta(minutes=10)) == []


def test_segments_without_commits_are_read_back_to_the_backups_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Inside one long transaction: only the segment the backup ended in has a commit
    # after its end.
    last = STARTED + timedelta(minutes=6)
    manifest, coverage, read = _commits(monkeypatch, {_seg(3): [last]})
    with pytest.raises(RestoreError, match="after the last transaction"):
        _check(manifest, coverage, last + timedelta(minutes=1))
    assert read == [_seg(5), _seg(4), _seg(3)]


def test_a_target_with_no_commit_archived_after_the_backup_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Recovery has no commit after the backup's end to stop before: every target time
    # fails in the server (it was only warned about, and the whole backup written).
    manifest, coverage, read = _commits(monkeypatch, {})
    with pytest.raises(RestoreError, match="cannot be reached") as caught:
        _check(manifest, coverage, STARTED + timedelta(hours=1))
    assert "the archived WAL after backup b (up to 0/6000000) holds no commit" in str(caught.value)
    assert caught.value.hint is not None and option("immediate") in caught.value.hint
    assert read == [_seg(5), _seg(4), _seg(3)]


@pytest.mark.parametrize(
    ("by_segment", "said"),
    [
        (
            {_seg(5): IntegrityError("archived WAL file is damaged: bad tag")},
            f"archived WAL segment {_seg(5)} could not be read (archived WAL file is damaged",
        ),
        ({_seg(5): OSError("Connection reset")}, f"archived WAL segment {_seg(5)} could not"),
    ],
)
def test_without_a_commit_to_go_by_the_target_is_warned_about_not_refused(
    monkeypatch: pytest.MonkeyPatch, by_segment: dict[str, list[datetime] | Exception], said: str
) -> None:
    manifest, coverage, _ = _commits(monkeypatch, by_segment)
    (warning,) = _check(manifest, coverage, STARTED + timedelta(hours=1))
    assert warning.startswith(said), warning
    assert "is not known before the server replays it" in warning


ES = translations("es").gettext


@pytest.mark.usefixtures("no_archive")
def test_a_target_time_before_the_backup_is_refused_in_spanish() -> None:
    """Before: English in a Spanish installation's alert of the failed restore and on the
    page, among Spanish words. As the job records it (text) and as raised (a phrase)."""
    with pytest.raises(RestoreError) as caught:
        _refused_or_warned("", STARTED - timedelta(seconds=1))
    for said in (str(caught.value), caught.value.args[0]):
        assert reason(said, ES).startswith(
            "el objetivo de recuperación 2026-12-05T06:59:59+00:00 es anterior al inicio del "
            "backup b (2026-12-05T07:00:00+00:00): la recuperación no puede detenerse antes"
        ), reason(said, ES)
    assert caught.value.hint is not None
    assert reason(caught.value.hint, ES).startswith("elija un backup que terminó antes")


@pytest.mark.usefixtures("no_archive")
@pytest.mark.parametrize(
    ("label", "spanish"),
    [
        ("2026-12-05 08:00:05 CET", "(de 2026-12-05T07:00:06+00:00 a "),
        ("", "la hora de inicio del servidor no se conoce: no consta en su manifiesto)"),
        (
            "2026-07-05 08:00:03 IST",
            "no se conoce: el START TIME '2026-07-05 08:00:03 IST' de su backup_label no nombra "
            "una única zona horaria)",
        ),
    ],
)
def test_a_target_time_while_the_backup_ran_is_warned_about_in_spanish(
    label: str, spanish: str
) -> None:
    (warning,) = _refused_or_warned(label, STARTED + timedelta(seconds=7))
    for said in (warning, str(warning)):
        text = reason(said, ES)
        assert text.startswith(
            "el objetivo de recuperación 2026-12-05T07:00:07+00:00 cae mientras se hacía el "
            "backup b "
        ), text
        assert spanish in text, text
        assert "while backup" not in text and "not known" not in text, text


def test_an_unreadable_segments_warning_is_said_in_spanish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest, coverage, _ = _commits(monkeypatch, {_seg(5): OSError("Connection reset")})
    (warning,) = _check(manifest, coverage, STARTED + timedelta(hours=1))
    for said in (warning, str(warning)):
        assert reason(said, ES) == (
            f"el segmento de WAL archivado {_seg(5)} no se pudo leer (Connection reset): no se "
            "sabe si la recuperación alcanza el objetivo de recuperación "
            "2026-12-05T08:00:00+00:00 hasta que el servidor la reproduzca"
        ), reason(said, ES)
