"""The schedule: which job runs when, from ``[schedules]`` and each database's overrides.

Pure apart from the question of which databases archive WAL (asked once, by the
caller): every function takes the current time, so tests move the clock. Cron
expressions are APScheduler's ``CronTrigger`` fields, not parsed here; this module only
splits the five (or six) fields and turns cron's ``sun#1`` into APScheduler's
``1st sun``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from respaldo.config import Settings
from respaldo.domain import JobKind, TriggeredBy
from respaldo.errors import ConfigError
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest, last_of_schedule
from respaldo.operations.models import ResultModel, UtcTime
from respaldo.operations.scheduled import wal_archived
from respaldo.operations.status_server import human_age
from respaldo.operations.zone import time_zone
from respaldo.phrases import days_said

OFF = "off"
REPEATED_HOUR_REACH = timedelta(hours=3)
"""How long before now a schedule's last run can have been in the first pass of a
repeated hour that now is in (an hour, with room for a late run): the service goes on
from a run that recent (``Service._first_since``), and the listing does too."""
_ORDINALS = {"1": "1st", "2": "2nd", "3": "3rd", "4": "4th", "5": "5th"}
_DAY_NAMES = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}


@dataclass(frozen=True)
class Entry:
    """One schedule: its name (``full:erp``, ``cleanup``), its cron and its job."""

    name: str
    cron: str
    trigger: CronTrigger = field(compare=False)
    kind: JobKind
    target: str | None
    params: dict[str, Any] = field(default_factory=dict, compare=False)

    def request(self) -> JobRequest:
        """The job this schedule submits, recorded as triggered by it."""
        return JobRequest(self.kind, self.target, TriggeredBy.SCHEDULE, self.name, self.params)

    def next_runs(
        self, now: datetime, count: int, *, ran: datetime | None = None
    ) -> list[datetime]:
        """The next ``count`` times this schedule fires after ``now`` (aware), in its
        zone, for showing: compare them in UTC (fold is ignored within one zone).
        ``ran``: its last run (its fire time), which the service goes on from when it is
        shortly before ``now`` (:data:`REPEATED_HOUR_REACH`): in the second pass of a
        fall-back's repeated hour, a wall time that ran in the first pass is not next."""
        zone = self.trigger.timezone
        since = ran if ran is not None and now - REPEATED_HOUR_REACH <= ran <= now else now
        later = (when for when in _fire_times(self.trigger, since) if _utc(when) > _utc(now))
        return [when.astimezone(zone) for when in _take(later, count)]

    def last_due(self, since: datetime, now: datetime) -> datetime | None:
        """The latest time this schedule was due in ``(since, now]``, or None: what a
        service that was down from ``since`` to ``now`` missed (run once, not each).
        In UTC, to be compared."""
        last = None
        for when in _fire_times(self.trigger, since):
            if when > now:
                break
            last = when
        return last


class EntryInfo(ResultModel):
    """A schedule as ``respaldo schedule --json`` prints it."""

    name: str
    kind: JobKind
    target: str | None
    cron: str
    time_zone: str
    next_runs: list[UtcTime]


class WallClockTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler has no types
    """A CronTrigger that fires once for each wall-clock time of its expression, through
    daylight saving changes:

    - a time that a fall-back change repeats runs once, at its first occurrence: "02:30
      daily" runs once on that day, not at 02:30 summer time and again at 02:30 winter
      time (which plain CronTrigger does);
    - a time that a spring-forward change skips runs once, at the end of the gap (an hour
      of wall time later): also where the gap starts at midnight (Chile, Paraguay: 00:00
      -> 01:00), where CronTrigger skips the whole day, and for a service started after
      the gap, before that time (:meth:`_wall_before_gap`);
    - every other time runs on its day: CronTrigger, counting from a fire time before a
      spring-forward with the offset of before it, skipped the next day's times before
      the hour of the change (a nightly 00:00 backup in Madrid or New York, once a year).

    A schedule whose hour field matches every hour (``*/5 * * * *``, or ``*/1``, ``0-23``)
    runs through both passes of a repeated hour instead, by elapsed time: skipping the second
    pass would leave an hour more between two runs (65 minutes for ``*/5``), past an RPO
    limit such as ``[rpo] wal_copy_minutes``.

    The next wall time is found by the same expression on naive wall-clock times (a
    trigger in UTC, which has no changes), and only then placed in the zone. Fire times
    are returned in UTC: two aware times of one zone compare by their wall clocks, fold
    ignored, so APScheduler (whose clock is in the zone) would take a second-pass time
    as already due during the first pass; :meth:`Entry.next_runs` shows them in the zone.
    """

    def __init__(self, *, timezone: tzinfo, **fields: Any) -> None:
        super().__init__(timezone=timezone, **fields)
        self._wall_twin = CronTrigger(timezone=UTC, **fields)
        self._every_hour = _every_hour(self.fields[self.FIELD_NAMES.index("hour")])

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        tick = timedelta(microseconds=1)
        if previous_fire_time is not None:
            # As CronTrigger: from just after the previous fire time; the wall times up to
            # its own have run (the repeated hour's second pass is not run again, but for
            # an every-hour schedule: see _second_pass).
            start = min(_utc(now), _utc(previous_fire_time) + tick)
            after = self._wall(previous_fire_time) + tick
        else:
            start = _utc(now)
            after = self._wall_before_gap(now)
        found: datetime | None = None
        due = self._wall_twin.get_next_fire_time(None, after.replace(tzinfo=UTC))
        while due is not None:
            found = self._instant(due.replace(tzinfo=None), start)
            if found is not None:
                break
            due = self._wall_twin.get_next_fire_time(due, due)
        if found is not None and self._every_hour:
            return self._second_pass(start, found) or found
        return found

    def _second_pass(self, start: datetime, until: datetime) -> datetime | None:
        """The earliest time in ``[start, until)`` (UTC) that is the second pass of a
        repeated wall time of the expression, or None: what the wall-time walk skips
        when a fall-back change lies between ``start`` and its next wall time ``until``.
        (From within a second pass the walk itself goes on through it.)"""
        offset_after = until.astimezone(self.timezone).utcoffset()
        offset_before = start.astimezone(self.timezone).utcoffset()
        if offset_after is None or offset_before is None or offset_after >= offset_before:
            return None
        # ``start`` read with the offset after the change: the earliest wall time whose
        # second pass can be at or after ``start``. Walked in wall time (never in UTC,
        # which would move the minutes of a +05:45 zone).
        wall = start + offset_after
        due = self._wall_twin.get_next_fire_time(None, wall.replace(tzinfo=UTC))
        while due is not None:
            naive = due.replace(tzinfo=None)
            second = _utc(naive.replace(tzinfo=self.timezone, fold=1))
            if second >= until:
                return None
            if second >= start and second != _utc(naive.replace(tzinfo=self.timezone)):
                return second
            due = self._wall_twin.get_next_fire_time(due, due)
        return None

    def _instant(self, wall: datetime, start: datetime) -> datetime | None:
        """The instant of wall time ``wall`` in the zone, if not before ``start`` (UTC):
        its first occurrence where a fall-back repeats it (the second if the first is
        before ``start``), the end of the gap where a spring-forward skips it."""
        # zoneinfo reads a wall time in a gap with the offset before the change (fold=0):
        # as an instant, that is the end of the gap.
        for fold in (0, 1):
            instant = _utc(wall.replace(tzinfo=self.timezone, fold=fold))
            if instant >= start:
                return instant
        return None

    def _wall(self, when: datetime) -> datetime:
        return when.astimezone(self.timezone).replace(tzinfo=None)

    def _wall_before_gap(self, now: datetime) -> datetime:
        """Where the walk from ``now`` (no previous fire time) starts in wall time: the
        earlier of now's wall clock and now read with the offset of a few hours before
        (:data:`REPEATED_HOUR_REACH`). A wall time a spring-forward skipped runs after
        the gap, at a wall time later than itself (02:30 at 03:30 in Madrid): from now's
        wall clock alone, a service started between 03:00 and 03:30 that night walked
        from past 02:30 and planned the nightly ``30 2 * * *`` backup for the next
        night, and that night none ran. Wall times of the walk whose instant is already
        past are left out by :meth:`_instant`."""
        utc = _utc(now)
        earlier = (utc - REPEATED_HOUR_REACH).astimezone(self.timezone).utcoffset()
        wall = self._wall(utc)
        if earlier is None:
            return wall
        return min(wall, (utc + earlier).replace(tzinfo=None))


def _every_hour(field: Any) -> bool:
    """Whether an hour field matches all 24 hours, however it is written (``*``,
    ``*/1``, ``0-23``, ``0-11,12-23``): judged by the hours it matches, as the field
    itself finds them, not by its text. Only ``*`` was taken for every hour, and
    ``*/5 */1 * * *`` left 65 minutes without a run over a fall-back's repeated hour."""
    day = datetime(2001, 1, 1)
    return all(field.get_next_value(day.replace(hour=hour)) == hour for hour in range(24))


def _utc(when: datetime) -> datetime:
    # Compared in UTC: two times of one zone compare by their wall clocks, fold ignored.
    return when.astimezone(UTC)


def trigger(cron: str, zone: tzinfo, where: str) -> CronTrigger:
    """A CronTrigger for a 5-field (or 6, seconds first) cron expression.

    Raises ConfigError naming ``where`` for a malformed expression, one that never fires
    (``30 feb``) or a numeric day of the week (cron counts from Sunday, APScheduler from
    Monday: names are unambiguous).
    """
    fields = cron.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    if len(fields) != 6:
        raise _bad(cron, where, "it needs 5 fields (minute hour day month day-of-week)")
    second, minute, hour, day, month, dow = fields
    if any(c.isdigit() for c in dow.split("#")[0]):
        raise _bad(cron, where, "name the days of the week (mon-sun), not numbers")
    if "#" in dow:
        name, _, nth = dow.partition("#")
        if name not in _DAY_NAMES or nth not in _ORDINALS or day != "*":
            raise _bad(cron, where, "DAY#N needs a day name, N from 1 to 5 and day '*'")
        day, dow = f"{_ORDINALS[nth]} {name}", "*"
    try:
        found = WallClockTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=dow,
            timezone=zone,
        )
    except ValueError as exc:
        raise _bad(cron, where, str(exc)) from None
    if found.get_next_fire_time(None, datetime.now(zone)) is None:
        # '0 3 30 feb *': every field is valid, the date never comes. Taken, it would
        # leave its job silently undone (nothing watches a cleanup or verify that never runs).
        raise _bad(cron, where, "it never fires: no date matches its day and month")
    return found


def _bad(cron: str, where: str, why: str) -> ConfigError:
    return ConfigError(
        f"invalid schedule {cron!r} in {where}: {why}",
        hint="e.g. '0 3 * * *' (03:00 daily), '0 2 * * sun#1' (first Sunday), or 'off'",
    )


def entries(settings: Settings, wal_archived: Collection[str]) -> list[Entry]:
    """Every schedule that is on. ``wal_archived``: the databases whose WAL is archived,
    the only ones that get physical (incremental) backups by default."""
    zone = time_zone(settings)
    defaults = settings.schedules
    found: list[Entry] = []

    def add(
        name: str, cron: str, where: str, kind: JobKind, target: str | None, **params: Any
    ) -> None:
        if cron.strip().lower() != OFF:
            found.append(Entry(name, cron, trigger(cron, zone, where), kind, target, params))

    def add_source(
        source: str, own: Any, where: str, key: str, kind: JobKind, **params: Any
    ) -> None:
        # A source's own cron for ``key`` where it has one, else ``[schedules]``'s; an
        # error names the one that was taken.
        mine = getattr(own, key)
        cron, taken = (
            (mine, f"{where}.{key}") if mine else (getattr(defaults, key), f"[schedules] {key}")
        )
        add(f"{key}:{source}", cron, taken, kind, source, **params)

    for db in settings.databases:
        where = f"[[databases]] {db.name!r} schedules"
        add_source(db.name, db.schedules, where, "full", JobKind.BACKUP, type="full")
        if db.schedules.incremental or db.name in wal_archived:
            add_source(
                db.name, db.schedules, where, "incremental", JobKind.BACKUP, type="incremental"
            )
        add_source(db.name, db.schedules, where, "restore_test", JobKind.DRILL)
    for file_set in settings.file_sets:
        where = f"[[file_sets]] {file_set.name!r} schedules"
        add_source(file_set.name, file_set.schedules, where, "files", JobKind.BACKUP, type="files")
        add_source(file_set.name, file_set.schedules, where, "restore_test", JobKind.DRILL)
    add("cleanup", defaults.cleanup, "[schedules] cleanup", JobKind.PRUNE, None)
    add(
        "verify",
        defaults.verify,
        "[schedules] verify",
        JobKind.VERIFY,
        None,
        slices=defaults.verify_slices,
    )
    # Only where someone receives it: a report nobody gets would be a failed job a month.
    if any("report" in t.levels for t in settings.notifications.targets):
        add("report", defaults.report, "[schedules] report", JobKind.REPORT, None)
    # Only where it copies something: a secondary to copy to, WAL archived to copy.
    if settings.repositories[1:] and wal_archived:
        add("wal_copy", defaults.wal_copy, "[schedules] wal_copy", JobKind.WAL_COPY, None)
    return found


def describe(
    settings: Settings,
    wal_archived: Collection[str],
    now: datetime,
    count: int = 3,
    ran: Callable[[str], datetime | None] = lambda _: None,
) -> list[EntryInfo]:
    """The schedules with their next ``count`` run times, for listing; ``ran(name)``:
    the fire time of a schedule's last run, if known (:meth:`Entry.next_runs`)."""
    zone = settings.schedules.time_zone or str(time_zone(settings))
    return [
        EntryInfo(
            name=e.name,
            kind=e.kind,
            target=e.target,
            cron=e.cron,
            time_zone=zone,
            next_runs=e.next_runs(now, count, ran=ran(e.name)),
        )
        for e in entries(settings, wal_archived)
    ]


def schedule_listing(ctx: Context, now: datetime, count: int = 3) -> list[EntryInfo]:
    """What ``respaldo schedule`` and the page list: the schedules of ``ctx``'s settings
    (physical ones only for the databases whose WAL is archived), with their next
    ``count`` run times: the service's, which go on from each schedule's last run (in
    the second pass of a repeated hour, "02:30 CET" was listed as next after 02:30 CEST
    had run, and the service would not run it)."""

    def ran(name: str) -> datetime | None:
        last = last_of_schedule(ctx, name, now)
        return None if last is None else last.scheduled_for or last.created_at

    return describe(ctx.settings, wal_archived(ctx), now, count, ran)


RESTORE_TEST_SLACK = timedelta(days=2)
"""What a restore-test limit should leave after the longest time between two runs of its
schedule: the test itself runs for hours on a large database, a run caught up after the
service was down starts late. ``[rpo] restore_test_days``' default, 38, is the default
schedule's longest gap (first Sundays: 35 days, and an hour more across a fall-back
change) plus this, in whole days."""


@dataclass(frozen=True)
class Gap:
    """The longest time between two consecutive runs of a schedule, and when."""

    length: timedelta
    start: datetime
    end: datetime


def longest_gap(entry: Entry, now: datetime, *, years: int = 28, most: int = 2000) -> Gap | None:
    """The longest time between two consecutive runs of ``entry`` after ``now``, over
    ``years`` (28: every pattern of weekdays on dates, leap years included, until 2100) or
    its first ``most`` runs, whichever ends first (a daily schedule's gaps are a day); the
    earliest of equal ones. None: it runs less than twice in that time. Measured in real
    time (UTC), not wall time: a fall-back change between two runs adds its hour."""
    horizon = _utc(now) + timedelta(days=365.25 * years)
    longest: Gap | None = None
    previous: datetime | None = None
    for when in _take(_fire_times(entry.trigger, now), most):
        if _utc(when) > horizon:
            break
        if previous is not None:
            length = _utc(when) - _utc(previous)
            if longest is None or length > longest.length:
                zone = entry.trigger.timezone
                longest = Gap(length, previous.astimezone(zone), when.astimezone(zone))
        previous = when
    return longest


def short_restore_test_limits(
    settings: Settings, schedule: Iterable[Entry], now: datetime
) -> list[str]:
    """A warning for each restore-test schedule whose source's ``restore_test_days`` is
    shorter than the schedule's longest gap plus :data:`RESTORE_TEST_SLACK`: its
    ``restore_test:<source>`` status item would turn red, and alert, between two tests
    that both ran and passed on time. Pure; ``respaldo serve`` logs them as it starts
    (not refused: a threshold set too tight must not stop the backups)."""
    databases = {db.name for db in settings.databases}
    found: list[str] = []
    gaps: dict[str, Gap | None] = {}  # every database on one cron: reckoned once
    for entry in schedule:
        if entry.kind is not JobKind.DRILL or entry.target is None:
            continue
        if entry.cron not in gaps:
            gaps[entry.cron] = longest_gap(entry, now)
        gap = gaps[entry.cron]
        source = entry.target
        if source in databases:
            limit, own = settings.rpo_for(source).restore_test, "[databases.rpo]"
        else:
            limit, own = settings.rpo_for_file_set(source).restore_test, "[file_sets.rpo]"
        if gap is None or limit >= gap.length + RESTORE_TEST_SLACK:
            continue
        enough = math.ceil((gap.length + RESTORE_TEST_SLACK) / timedelta(days=1))
        found.append(
            f"restore_test_days of {source!r} ({days_said(limit / timedelta(days=1))}) leaves less "
            f"than {human_age(RESTORE_TEST_SLACK)} for a test to run after the longest time "
            f"its restore_test schedule {entry.cron!r} leaves between two tests "
            f"({human_age(gap.length)}, from {gap.start:%Y-%m-%d} to {gap.end:%Y-%m-%d}): "
            f"restore_test:{source} will turn red, and alert, while its tests pass on time; "
            f"set [rpo] (or its {own}) restore_test_days to {enough} or more"
        )
    return found


BACKUP_SLACK = timedelta(minutes=30)
"""What a backup's limit (``full_hours``, ``physical_hours``, ``files_hours``) should leave
after the longest time between two runs of its schedule, for the backup itself to run."""

_BACKUP_LIMITS = {
    "full": ("full", "full_hours"),
    "incremental": ("physical", "physical_hours"),
    "files": ("files", "files_hours"),
}


def short_backup_limits(settings: Settings, schedule: Iterable[Entry], now: datetime) -> list[str]:
    """A warning for each backup schedule whose source's limit leaves less than
    :data:`BACKUP_SLACK` after the schedule's longest gap (real time: a fall-back change
    adds its hour). The default physical schedule, every 6 hours, leaves 7 hours across a
    fall-back change in every zone that has one (00:00 summer time to 06:00 winter time in
    Madrid), which was all of the default ``physical_hours`` before it became 8:
    ``rpo:<db>:incremental`` turned red, and alerted, for as long as that morning's backup
    took longer than the one before it. Pure; ``respaldo serve`` logs them as it starts
    (not refused)."""
    databases = {db.name for db in settings.databases}
    found: list[str] = []
    gaps: dict[str, Gap | None] = {}
    for entry in schedule:
        kind = entry.params.get("type")
        if entry.kind is not JobKind.BACKUP or entry.target is None or kind not in _BACKUP_LIMITS:
            continue
        field_name, key = _BACKUP_LIMITS[kind]
        source = entry.target
        if source in databases:
            limit, own = getattr(settings.rpo_for(source), field_name), "[databases.rpo]"
        else:
            limit, own = settings.rpo_for_file_set(source).files, "[file_sets.rpo]"
        if entry.cron not in gaps:
            gaps[entry.cron] = longest_gap(entry, now)
        gap = gaps[entry.cron]
        if gap is None or limit >= gap.length + BACKUP_SLACK:
            continue
        enough = math.ceil((gap.length + BACKUP_SLACK) / timedelta(hours=1))
        found.append(
            f"{key} of {source!r} ({limit / timedelta(hours=1):g} h) leaves less than "
            f"{human_age(BACKUP_SLACK)} for a backup to run after the longest time its "
            f"{entry.name.split(':')[0]} schedule {entry.cron!r} leaves between two backups "
            f"({human_age(gap.length)}, from {gap.start:%Y-%m-%d %H:%M %Z} to "
            f"{gap.end:%Y-%m-%d %H:%M %Z}): rpo:{source}:{kind} "
            f"will turn red, and alert, while its backups run on time; set [rpo] (or its "
            f"{own}) {key} to {enough} or more"
        )
    return found


def _fire_times(trig: CronTrigger, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after ``after``, in order."""
    # get_next_fire_time(None, now) may return 'now' itself; with a previous fire time
    # it starts a microsecond after it.
    when = trig.get_next_fire_time(None, after + timedelta(microseconds=1))
    while when is not None:
        yield when
        when = trig.get_next_fire_time(when, when)


def _take(times: Iterator[datetime], count: int) -> Iterator[datetime]:
    for _, when in zip(range(count), times, strict=False):
        yield when
