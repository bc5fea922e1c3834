"""The schedule's run times, with the clock in the test's hand."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from respaldo.config import Settings
from respaldo.domain import JobKind
from respaldo.errors import ConfigError
from respaldo.operations.schedule import (
    RESTORE_TEST_SLACK,
    Entry,
    _fire_times,
    describe,
    entries,
    longest_gap,
    short_backup_limits,
    short_restore_test_limits,
    trigger,
)

MEXICO = ZoneInfo("America/Mexico_City")
MADRID = ZoneInfo("Europe/Madrid")


def settings(zone: str = "America/Mexico_City", **schedules: str) -> Settings:
    return Settings(
        databases=[
            {"name": "erp", "dsn": "postgresql://respaldo@127.0.0.1/erp"},
            {
                "name": "nomina",
                "dsn": "postgresql://respaldo@127.0.0.1/nomina",
                "schedules": {"full": "30 1 * * *", "restore_test": "off"},
            },
        ],
        schedules={"time_zone": zone, **schedules},
    )


def by_name(found: list[Entry]) -> dict[str, Entry]:
    return {entry.name: entry for entry in found}


def runs_in(entry: Entry, start: datetime, end: datetime) -> list[datetime]:
    return [when for when in entry.next_runs(start, 400) if when < end]


def test_the_default_schedule_across_a_month() -> None:
    schedule = by_name(entries(settings(), wal_archived={"erp"}))
    assert sorted(schedule) == [
        "cleanup",
        "full:erp",
        "full:nomina",
        "incremental:erp",  # erp archives WAL, nomina does not
        "restore_test:erp",
        "verify",
    ]
    start = datetime(2026, 11, 30, 23, 59, tzinfo=MEXICO)  # runs strictly after it
    end = datetime(2027, 1, 1, tzinfo=MEXICO)

    full = runs_in(schedule["full:erp"], start, end)
    assert len(full) == 31
    assert {(w.hour, w.minute) for w in full} == {(3, 0)}
    assert {w.utcoffset() for w in full} == {timedelta(hours=-6)}  # no DST since 2022

    incremental = runs_in(schedule["incremental:erp"], start, end)
    assert len(incremental) == 31 * 4
    assert {w.hour for w in incremental} == {0, 6, 12, 18}

    # The first Sunday of the month at 02:00, not the 1st (a Tuesday) nor every Sunday.
    tests = schedule["restore_test:erp"].next_runs(start, 3)
    assert tests == [
        datetime(2026, 12, 6, 2, 0, tzinfo=MEXICO),
        datetime(2027, 1, 3, 2, 0, tzinfo=MEXICO),
        datetime(2027, 2, 7, 2, 0, tzinfo=MEXICO),
    ]
    assert all(w.weekday() == 6 and w.day <= 7 for w in tests)

    assert [(w.day, w.hour) for w in runs_in(schedule["cleanup"], start, end)] == [
        (day, 4) for day in range(1, 32)
    ]
    assert len(runs_in(schedule["verify"], start, end)) == 31
    assert schedule["verify"].params == {"slices": 7}

    # The per-database override, and a schedule turned off.
    assert {(w.hour, w.minute) for w in runs_in(schedule["full:nomina"], start, end)} == {(1, 30)}
    assert schedule["full:nomina"].request().params == {"type": "full"}
    assert schedule["full:nomina"].request().requested_by == "full:nomina"
    assert schedule["incremental:erp"].request().params == {"type": "incremental"}
    assert schedule["restore_test:erp"].kind is JobKind.DRILL


def test_a_dst_change_neither_skips_nor_repeats_a_day() -> None:
    schedule = by_name(entries(settings("Europe/Madrid", full="30 2 * * *"), wal_archived=()))
    full = schedule["full:erp"]
    cleanup = schedule["cleanup"]  # 04:00: outside both changes' hours

    # Spring forward (2027-03-28, 02:00 -> 03:00): 02:30 does not exist that day; the
    # run happens once, an hour of wall time later, and never twice.
    spring = full.next_runs(datetime(2027, 3, 26, 12, tzinfo=MADRID), 3)
    assert [w.date().day for w in spring] == [27, 28, 29]
    assert spring[1].astimezone(ZoneInfo("UTC")).hour == 1
    assert [w.utcoffset() for w in cleanup.next_runs(datetime(2027, 3, 27, tzinfo=MADRID), 2)] == [
        timedelta(hours=1),
        timedelta(hours=2),
    ]

    # Fall back (2027-10-31, 03:00 -> 02:00): 02:30 happens twice; the run happens once.
    fall = full.next_runs(datetime(2027, 10, 30, 12, tzinfo=MADRID), 4)
    assert [w.astimezone(MADRID).day for w in fall] == [31, 1, 2, 3][: len(fall)]
    assert fall[0] == datetime(2027, 10, 31, 2, 30, tzinfo=MADRID)  # the first 02:30
    assert fall[0].utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(
    ("zone", "cron", "after", "day", "utc_hour"),
    [
        # Chile springs forward at midnight (2026-09-06, 00:00 -> 01:00): a midnight run
        # of that day happens at 01:00, not a day later.
        ("America/Santiago", "0 0 * * *", datetime(2026, 9, 5, 12), 6, 4),
        ("America/Santiago", "30 0 * * *", datetime(2026, 9, 5, 12), 6, 4),
        # Paraguay's last spring-forward, also at midnight (2024-10-06).
        ("America/Asuncion", "0 0 * * *", datetime(2024, 10, 5, 12), 6, 4),
        # A day of the week too: the first Sunday of September 2026 is that day.
        ("America/Santiago", "15 0 * * sun#1", datetime(2026, 9, 1), 6, 4),
    ],
)
def test_a_time_a_midnight_spring_forward_skips_runs_that_day(
    zone: str, cron: str, after: datetime, day: int, utc_hour: int
) -> None:
    where = ZoneInfo(zone)
    runs = trigger(cron, where, "test")
    first = next(_fire_times(runs, after.replace(tzinfo=where)))
    utc = first.astimezone(ZoneInfo("UTC"))
    assert (utc.day, utc.hour) == (day, utc_hour), first
    # Once: the next run is a day (or a month) later, at its own wall time.
    second = next(_fire_times(runs, first))
    assert second - first >= timedelta(hours=23), second


@pytest.mark.parametrize(
    ("zone", "cron", "spring"),
    [
        # The day after a spring-forward, a time before the hour of the change: APScheduler
        # counted the day from the offset before the change and landed an hour late,
        # past the time, so the whole day was skipped (a nightly 00:00 backup, once a year).
        ("Europe/Madrid", "0 0 * * *", datetime(2027, 3, 28)),
        ("Europe/Madrid", "30 1 * * *", datetime(2027, 3, 28)),
        ("America/New_York", "0 0 * * *", datetime(2027, 3, 14)),
        ("America/New_York", "45 0 * * *", datetime(2027, 3, 14)),
        ("Australia/Lord_Howe", "0 0 * * *", datetime(2026, 10, 4)),
        ("America/Santiago", "0 0 * * *", datetime(2026, 9, 6)),
    ],
)
def test_a_daily_time_runs_every_day_around_a_spring_forward(
    zone: str, cron: str, spring: datetime
) -> None:
    where = ZoneInfo(zone)
    runs = _fire_times(
        trigger(cron, where, "test"), spring.replace(tzinfo=where) - timedelta(days=3)
    )
    days = [next(runs).astimezone(where).date() for _ in range(6)]
    first = days[0]
    assert days == [first + timedelta(days=n) for n in range(6)], days


@pytest.mark.parametrize(
    ("zone", "cron", "started", "due"),
    [
        # Madrid, 2026-03-29: 02:00 CET -> 03:00 CEST; 02:30 runs at 03:30.
        ("Europe/Madrid", "30 2 * * *", datetime(2026, 3, 29, 3, 0), datetime(2026, 3, 29, 3, 30)),
        ("Europe/Madrid", "30 2 * * *", datetime(2026, 3, 29, 3, 29), datetime(2026, 3, 29, 3, 30)),
        ("Europe/Madrid", "0 2 * * *", datetime(2026, 3, 29, 3, 0), datetime(2026, 3, 29, 3, 0)),
        # Santiago, 2026-09-06: 00:00 -> 01:00; 00:15 runs at 01:15.
        ("America/Santiago", "15 0 * * *", datetime(2026, 9, 6, 1, 5), datetime(2026, 9, 6, 1, 15)),
        # Already run that night: the next is the next night's.
        ("Europe/Madrid", "30 2 * * *", datetime(2026, 3, 29, 3, 31), datetime(2026, 3, 30, 2, 30)),
        # A time after the gap that is past: not run late.
        ("Europe/Madrid", "5 3 * * *", datetime(2026, 3, 29, 3, 10), datetime(2026, 3, 30, 3, 5)),
    ],
)
def test_a_service_started_after_a_gap_runs_the_time_it_skipped_that_night(
    zone: str, cron: str, started: datetime, due: datetime
) -> None:
    """Started (or restarted) after a spring-forward, before the time the gap moved a
    wall time to: that night's run is still due. From the wall clock at the start, the
    walk began past 02:30 and planned the next night's: no nightly backup that night."""
    where = ZoneInfo(zone)
    found = trigger(cron, where, "test")
    now = started.replace(tzinfo=where).astimezone(UTC)  # as the service's clock reads
    assert found.get_next_fire_time(None, now) == due.replace(tzinfo=where).astimezone(UTC)
    # The service's due time for that firing (last_due from just before its start).
    entry = Entry("full:erp", cron, found, JobKind.BACKUP, "erp")
    fired = due.replace(tzinfo=where)
    assert entry.last_due(now - timedelta(seconds=1), fired) == fired.astimezone(UTC)


def test_every_wall_time_runs_once_through_a_year_of_changes() -> None:
    """Every half hour through two years of Madrid's and Santiago's changes: by elapsed
    time, in order, never twice, none missed (a spring-forward's skipped times are not
    run late as well, a fall-back's repeated hour runs in both passes)."""
    for zone in ("Europe/Madrid", "America/Santiago"):
        where = ZoneInfo(zone)
        runs = _fire_times(
            trigger("*/30 * * * *", where, "test"), datetime(2026, 1, 1, tzinfo=where)
        )
        utc = ZoneInfo("UTC")
        previous = next(runs)
        for when in runs:
            if when.year > 2027:
                break
            gap = when.astimezone(utc) - previous.astimezone(utc)
            assert gap == timedelta(minutes=30), (previous, when)
            previous = when


def test_last_due_names_one_missed_run_however_many_were_missed() -> None:
    full = by_name(entries(settings(), wal_archived=()))["full:erp"]
    last_run = datetime(2026, 12, 1, 3, 0, tzinfo=MEXICO)
    assert full.last_due(last_run, datetime(2026, 12, 1, 20, 0, tzinfo=MEXICO)) is None
    assert full.last_due(last_run, datetime(2026, 12, 4, 10, 0, tzinfo=MEXICO)) == datetime(
        2026, 12, 4, 3, 0, tzinfo=MEXICO
    )


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 3 * *", "5 fields"),
        ("0 3 * * 0", "name the days of the week"),
        ("0 3 * * sun#6", "DAY#N"),
        ("0 25 * * *", "invalid schedule '0 25 \\* \\* \\*' in \\[schedules\\] full"),
        # Valid fields, but no such date: it would never fire, the service silently idle.
        ("0 3 30 feb *", "never fires: no date matches"),
        ("0 3 31 apr,jun,sep,nov *", "never fires: no date matches"),
    ],
)
def test_a_bad_cron_expression_is_a_config_error(cron: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        entries(settings(full=cron), wal_archived=())


@pytest.mark.parametrize(
    ("source", "key", "where"),
    [
        ("databases", "full", "[[databases]] 'ventas' schedules.full"),
        ("databases", "incremental", "[[databases]] 'ventas' schedules.incremental"),
        ("databases", "restore_test", "[[databases]] 'ventas' schedules.restore_test"),
        ("file_sets", "files", "[[file_sets]] 'ventas' schedules.files"),
        ("file_sets", "restore_test", "[[file_sets]] 'ventas' schedules.restore_test"),
    ],
)
def test_a_bad_cron_of_a_source_names_that_source(source: str, key: str, where: str) -> None:
    # The source's own expression is the one taken, so the error points at it, not at
    # [schedules].
    one = {"name": "ventas", "schedules": {key: "0 25 * * *"}}
    if source == "databases":
        one["dsn"] = "postgresql://respaldo@127.0.0.1/ventas"
    else:
        one["paths"] = ["/srv/ventas"]
    config = Settings(**{source: [one]}, schedules={"time_zone": "America/Mexico_City"})
    with pytest.raises(ConfigError) as caught:
        entries(config, wal_archived=())
    assert f"in {where}: " in str(caught.value)


def test_a_seconds_field_and_an_unknown_zone() -> None:
    every_two = trigger("*/2 * * * * *", MEXICO, "test")
    assert every_two.get_next_fire_time(None, datetime(2026, 12, 4, 3, 0, 1, tzinfo=MEXICO)) == (
        datetime(2026, 12, 4, 3, 0, 2, tzinfo=MEXICO)
    )
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        entries(settings("Mars/Olympus"), wal_archived=())


def test_describe_lists_the_next_runs_in_the_configured_zone() -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=MEXICO)
    (full, *_) = describe(settings(), (), now, count=2)
    assert (full.name, full.cron, full.time_zone) == (
        "full:erp",
        "0 3 * * *",
        "America/Mexico_City",
    )
    assert full.next_runs == [
        datetime(2026, 12, 5, 3, 0, tzinfo=MEXICO),
        datetime(2026, 12, 6, 3, 0, tzinfo=MEXICO),
    ]


def mirrored(**schedules: str) -> Settings:
    """``settings()`` with a secondary repository, ``offsite``."""
    return settings(**schedules).model_copy(
        update={
            "repositories": [
                {"name": "local", "url": "file:///srv/respaldo"},
                {"name": "offsite", "url": "file:///mnt/offsite"},
            ]
        }
    )


def test_archived_wal_goes_to_the_mirrors_every_five_minutes() -> None:
    schedule = by_name(entries(mirrored(), wal_archived={"erp"}))
    copy = schedule["wal_copy"]
    start = datetime(2026, 12, 1, 10, 2, tzinfo=MEXICO)
    assert [(w.hour, w.minute) for w in copy.next_runs(start, 3)] == [(10, 5), (10, 10), (10, 15)]
    request = copy.request()
    assert (request.kind, request.target, request.requested_by) == (
        JobKind.WAL_COPY,
        None,
        "wal_copy",
    )
    # Two copies at once (two workers of the queue) would copy the same files twice.
    assert request.exclusive_key == "wal_copy"


def test_no_wal_copy_without_a_mirror_or_archived_wal_or_when_off() -> None:
    assert "wal_copy" not in by_name(entries(settings(), wal_archived={"erp"}))
    assert "wal_copy" not in by_name(entries(mirrored(), wal_archived=()))
    assert "wal_copy" not in by_name(entries(mirrored(wal_copy="off"), wal_archived={"erp"}))
    own = by_name(entries(mirrored(wal_copy="*/15 * * * *"), wal_archived={"erp"}))
    assert own["wal_copy"].cron == "*/15 * * * *"


def with_file_sets(**schedules: str) -> Settings:
    base = settings(**schedules)
    return Settings(
        databases=[db.model_dump() for db in base.databases],
        schedules=base.schedules.model_dump(),
        file_sets=[
            {"name": "uploads", "paths": ["/srv/erp/uploads"]},
            {
                "name": "planos",
                "paths": ["/srv/erp/planos"],
                "schedules": {"files": "0 */4 * * *", "restore_test": "off"},
            },
        ],
    )


def test_file_sets_are_backed_up_and_restore_tested_on_their_schedules() -> None:
    schedule = by_name(entries(with_file_sets(), wal_archived=()))
    start = datetime(2026, 11, 30, 23, 59, tzinfo=MEXICO)
    end = datetime(2026, 12, 2, tzinfo=MEXICO)
    uploads = schedule["files:uploads"]
    assert [(w.day, w.hour, w.minute) for w in runs_in(uploads, start, end)] == [(1, 3, 30)]
    request = uploads.request()
    assert (request.kind, request.target, request.params) == (
        JobKind.BACKUP,
        "uploads",
        {"type": "files"},
    )
    assert {w.hour for w in runs_in(schedule["files:planos"], start, end)} == {0, 4, 8, 12, 16, 20}
    assert schedule["restore_test:uploads"].kind is JobKind.DRILL
    assert schedule["restore_test:uploads"].target == "uploads"
    assert "restore_test:planos" not in schedule  # turned off
    assert sorted(n for n in schedule if n.startswith("restore_test:")) == [
        "restore_test:erp",
        "restore_test:uploads",
    ]
    off = by_name(entries(with_file_sets(files="off"), wal_archived=()))
    assert sorted(n for n in off if n.startswith("files:")) == ["files:planos"]


TODAY = datetime(2026, 12, 6, 15, 15, tzinfo=UTC)


@pytest.mark.parametrize("zone", ["Europe/Madrid", "America/Mexico_City", "UTC"])
def test_the_default_restore_test_limit_outlasts_the_longest_first_sunday_gap(zone: str) -> None:
    # First Sundays are up to 35 days apart (2 Nov -> 7 Dec 2025), in Madrid 35 days and
    # an hour across the fall-back (3 Oct -> 7 Nov 2027): a 35-day limit turned the
    # status red, and alerted, whenever such a month's test took longer than the last.
    config = settings(zone)
    gap = longest_gap(by_name(entries(config, wal_archived=()))["restore_test:erp"], TODAY)
    assert gap is not None
    assert gap.length >= timedelta(days=35)
    assert config.rpo_for("erp").restore_test >= gap.length + RESTORE_TEST_SLACK
    assert short_restore_test_limits(config, entries(config, wal_archived=()), TODAY) == []


def test_longest_gap_is_real_time_across_a_fall_back_change() -> None:
    gap = longest_gap(by_name(entries(settings("Europe/Madrid"), ()))["restore_test:erp"], TODAY)
    assert gap is not None
    assert gap.length == timedelta(days=35, hours=1)
    assert (gap.start.date().isoformat(), gap.end.date().isoformat()) == (
        "2027-10-03",
        "2027-11-07",
    )


def test_a_restore_test_limit_shorter_than_its_schedule_needs_is_warned() -> None:
    base = with_file_sets()
    config = Settings(
        databases=[
            {**base.databases[0].model_dump(), "rpo": {"restore_test_days": 35}},
            # Weekly: 10 days leave plenty.
            {
                "name": "nomina",
                "dsn": "postgresql://respaldo@127.0.0.1/nomina",
                "schedules": {"restore_test": "0 2 * * sun"},
                "rpo": {"restore_test_days": 10},
            },
        ],
        schedules={"time_zone": "Europe/Madrid"},
        file_sets=[{"name": "uploads", "paths": ["/srv/erp/uploads"]}],
        rpo={"restore_test_days": 36.5},
    )
    erp, uploads = short_restore_test_limits(config, entries(config, wal_archived=()), TODAY)
    assert erp == (
        "restore_test_days of 'erp' (35 days) leaves less than 48 h for a test to run after "
        "the longest time its restore_test schedule '0 2 * * sun#1' leaves between two tests "
        "(35 d 1 h, from 2027-10-03 to 2027-11-07): restore_test:erp will turn red, and "
        "alert, while its tests pass on time; set [rpo] (or its [databases.rpo]) "
        "restore_test_days to 38 or more"
    )
    assert uploads.startswith("restore_test_days of 'uploads' (36.5 days)")
    assert uploads.endswith("set [rpo] (or its [file_sets.rpo]) restore_test_days to 38 or more")


@pytest.mark.parametrize("zone", ["Europe/Madrid", "America/Santiago"])
def test_the_default_limits_outlast_their_schedules_across_a_fall_back_change(zone: str) -> None:
    # Every 6 hours is 7 hours across a fall-back change (00:00 summer time to 06:00
    # winter time in Madrid, 18:00 to 00:00 in Santiago): the whole of a physical_hours of
    # 7, the default before, and rpo:erp:incremental red, and alerting, while that backup
    # ran. Full and files backups (daily: 25 h that day) have 26 h; nothing warns.
    config = with_file_sets(time_zone=zone)
    assert config.rpo.physical_hours == 8
    schedule = entries(config, wal_archived={"erp", "nomina"})
    assert short_backup_limits(config, schedule, TODAY) == []
    assert short_restore_test_limits(config, schedule, TODAY) == []


@pytest.mark.parametrize(
    ("zone", "gap"),
    [
        ("Europe/Madrid", "from 2027-10-31 00:00 CEST to 2027-10-31 06:00 CET"),
        ("America/Santiago", "from 2027-04-03 18:00 -03 to 2027-04-04 00:00 -04"),
    ],
)
def test_a_physical_limit_the_fall_back_change_uses_up_is_warned(zone: str, gap: str) -> None:
    # The old default, set by hand: still said.
    config = settings(zone)
    config = config.model_copy(update={"rpo": config.rpo.model_copy(update={"physical_hours": 7})})
    (said,) = short_backup_limits(config, entries(config, wal_archived={"erp"}), TODAY)
    assert said == (
        "physical_hours of 'erp' (7 h) leaves less than 30 min for a backup to run after the "
        "longest time its incremental schedule '0 */6 * * *' leaves between two backups "
        f"(7 h, {gap}): rpo:erp:incremental will "
        "turn red, and alert, while its backups run on time; set [rpo] (or its "
        "[databases.rpo]) physical_hours to 8 or more"
    )
    # Mexico City has no change: 7 h is enough there.
    mexico = settings("America/Mexico_City")
    mexico = mexico.model_copy(update={"rpo": config.rpo})
    assert short_backup_limits(mexico, entries(mexico, wal_archived={"erp"}), TODAY) == []


def test_a_files_limit_shorter_than_its_schedule_is_warned() -> None:
    config = with_file_sets()
    config = config.model_copy(update={"rpo": config.rpo.model_copy(update={"files_hours": 20})})
    found = short_backup_limits(config, entries(config, wal_archived=()), TODAY)
    assert any(
        said.startswith("files_hours of ")
        and "set [rpo] (or its [file_sets.rpo]) files_hours to" in said
        for said in found
    ), found


def _fires(zone: ZoneInfo, cron: str, start: datetime, end: datetime) -> list[str]:
    runs = _fire_times(trigger(cron, zone, "test"), start.replace(tzinfo=zone))
    found = []
    for when in runs:
        if when >= end.replace(tzinfo=zone):
            break
        found.append(when.astimezone(zone).strftime("%m-%d %H:%M%z"))
    return found


def _every_five(day: str, hour: int, offset: str) -> list[str]:
    return [f"{day} {hour:02}:{minute:02}{offset}" for minute in range(0, 60, 5)]


@pytest.mark.parametrize(
    ("zone", "start", "end", "repeated", "before", "after"),
    [
        # 2026-10-25 and 2027-10-31: 03:00 CEST -> 02:00 CET, 02:00-02:59 twice.
        (
            "Europe/Madrid",
            datetime(2026, 10, 25, 1, 55),
            datetime(2026, 10, 25, 3, 1),
            2,
            "+0200",
            "+0100",
        ),
        (
            "Europe/Madrid",
            datetime(2027, 10, 31, 1, 55),
            datetime(2027, 10, 31, 3, 1),
            2,
            "+0200",
            "+0100",
        ),
        # 2026-04-05 and 2027-04-04: 00:00 -03 -> 23:00 -04 the day before.
        (
            "America/Santiago",
            datetime(2026, 4, 4, 22, 55),
            datetime(2026, 4, 5, 0, 1),
            23,
            "-0300",
            "-0400",
        ),
        (
            "America/Santiago",
            datetime(2027, 4, 3, 22, 55),
            datetime(2027, 4, 4, 0, 1),
            23,
            "-0300",
            "-0400",
        ),
    ],
)
def test_an_every_hour_schedule_runs_through_both_passes_of_a_repeated_hour(
    zone: str, start: datetime, end: datetime, repeated: int, before: str, after: str
) -> None:
    """``*/5 * * * *`` (the default wal_copy) by elapsed time through a fall-back change:
    both passes of the repeated hour, never 65 minutes without a run (past [rpo]
    wal_copy_minutes); a schedule pinned to hours keeps running once."""
    where = ZoneInfo(zone)
    day = start.strftime("%m-%d")
    next_day = (start + timedelta(hours=2)).strftime("%m-%d")
    fires = _fires(where, "*/5 * * * *", start, end)
    assert fires == (
        _every_five(day, repeated, before)
        + _every_five(day, repeated, after)
        + [f"{next_day} 00:00{after}" if repeated == 23 else f"{day} 03:00{after}"]
    ), fires
    # The same times as the listing shows them (respaldo schedule, the page).
    wal_copy = Entry(
        "wal_copy", "*/5 * * * *", trigger("*/5 * * * *", where, "t"), JobKind.WAL_COPY, None
    )
    listed = wal_copy.next_runs(start.replace(tzinfo=where), len(fires))
    assert [w.strftime("%m-%d %H:%M%z") for w in listed] == fires
    gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in itertools.pairwise(listed)}
    assert gaps == {timedelta(minutes=5)}

    # Every 6 hours (00, 06, 12, 18) and daily at 02:30: each wall time once.
    six = _fire_times(
        trigger("0 */6 * * *", where, "t"), (start - timedelta(hours=12)).replace(tzinfo=where)
    )
    walls = [next(six).astimezone(where).replace(tzinfo=None) for _ in range(6)]
    assert {b - a for a, b in itertools.pairwise(walls)} == {timedelta(hours=6)}, walls
    nightly = _fires(where, "30 2 * * *", start - timedelta(days=1), start + timedelta(days=2))
    assert [f[6:11] for f in nightly] == ["02:30"] * 3, nightly
    assert len({f[:5] for f in nightly}) == 3  # one a day, the change's day included


@pytest.mark.parametrize("hours", ["*/1", "0-23", "0-23/1", "0-11,12-23", "12-23,0-11"])
def test_every_hour_is_judged_by_the_hours_matched_not_the_fields_text(hours: str) -> None:
    """``*/5 */1 * * *`` or ``*/5 0-23 * * *`` runs every hour as ``*/5 * * * *`` does;
    only a literal ``*`` was taken for every hour, and these skipped the second pass of
    Madrid's repeated hour: 02:55 CEST, then 03:00 CET, 65 minutes without a run."""
    where = ZoneInfo("Europe/Madrid")
    start, end = datetime(2027, 10, 31, 1, 55), datetime(2027, 10, 31, 3, 1)
    fires = _fires(where, f"*/5 {hours} * * *", start, end)
    assert fires == _fires(where, "*/5 * * * *", start, end), fires
    assert fires[:24] == _every_five("10-31", 2, "+0200") + _every_five("10-31", 2, "+0100")


@pytest.mark.parametrize("hours", ["*/2", "1-23", "0-22", "0-1,3-23"])
def test_hours_short_of_every_hour_run_each_wall_time_once(hours: str) -> None:
    """A schedule that leaves out any hour is pinned to hours: each wall time runs once,
    the repeated hour's first pass only (docs/service.md)."""
    where = ZoneInfo("Europe/Madrid")
    fires = _fires(where, f"0 {hours} * * *", datetime(2027, 10, 30, 0, 0), datetime(2027, 11, 1))
    walls = [f[:11] for f in fires]
    assert len(walls) == len(set(walls)), fires


def test_a_repeated_half_hour_runs_twice_and_minutes_stay_in_odd_offset_zones() -> None:
    # Lord Howe falls back half an hour (02:00 +11 -> 01:30 +10:30, 2027-04-04).
    howe = ZoneInfo("Australia/Lord_Howe")
    fires = _fires(howe, "*/15 * * * *", datetime(2027, 4, 4, 1, 15), datetime(2027, 4, 4, 2, 1))
    assert fires == [
        "04-04 01:30+1100",
        "04-04 01:45+1100",
        "04-04 01:30+1030",
        "04-04 01:45+1030",
        "04-04 02:00+1030",
    ]
    # +05:30 and +05:45: the minutes are the wall clock's, not UTC's.
    for zone in ("Asia/Kolkata", "Asia/Kathmandu"):
        where = ZoneInfo(zone)
        fires = _fires(
            where, "*/5 * * * *", datetime(2026, 12, 7, 0, 59), datetime(2026, 12, 7, 2, 0)
        )
        assert [f[6:11] for f in fires] == [f"01:{m:02}" for m in range(0, 60, 5)], fires


def test_a_second_pass_time_is_not_due_during_the_first_pass() -> None:
    """APScheduler's clock is in the zone, and two times of one zone compare by their
    wall clocks: a second-pass time returned in the zone would be due at once."""
    runs = trigger("*/5 * * * *", MADRID, "test")
    first_pass_end = datetime(2026, 10, 25, 2, 55, tzinfo=MADRID)
    nxt = runs.get_next_fire_time(first_pass_end, first_pass_end)
    assert nxt == datetime(2026, 10, 25, 1, 0, tzinfo=UTC)  # 02:00 CET, the second pass
    now = datetime(2026, 10, 25, 2, 56, tzinfo=MADRID)  # as APScheduler reads its clock
    assert not nxt <= now


def test_a_restore_test_limit_of_one_day_says_one_day() -> None:
    """The warning said "restore_test_days of 'erp' (1 days)" for a limit of one day."""
    base = with_file_sets()
    config = Settings(
        databases=[
            {
                **base.databases[0].model_dump(),
                "schedules": {"restore_test": "0 2 * * *"},
                "rpo": {"restore_test_days": 1},
            },
        ],
        schedules={"time_zone": "Europe/Madrid"},
    )
    (said,) = short_restore_test_limits(config, entries(config, wal_archived=()), TODAY)
    assert said.startswith("restore_test_days of 'erp' (1 day) leaves less than 48 h"), said
