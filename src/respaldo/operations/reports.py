"""The monthly restore-test report: every restore test (drill) of a month, each check, and
the restore time each took (the measured RTO), per database and, within it, per kind of
the tested backup (logical, physical, files: each kind is proven on its own, as the status
and the scheduled round judge it), with each kind's newest passing test by the month's
end; sent by email to the notification targets that take ``report``.

``respaldo report drills [--month YYYY-MM] [--send]`` shows (and sends) it; the service
sends the report of the month just ended on ``[schedules] report`` (the 1st, 07:00).

Months are the installation's (``[schedules] time_zone``, the zone the schedule fires in),
and so are the times the report shows: in UTC, a report scheduled at midnight on the 1st
in Madrid (23:00 UTC the day before) was the month before last's, and a test run on the
last evening of a month in Mexico City was counted in the next month's report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from functools import partial
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from respaldo.catalog import (
    BackupRecords,
    DrillRun,
    DrillRuns,
    checks_of,
    newest_backup_times,
    newest_kind_passes,
)
from respaldo.domain import BackupKind, DrillStatus
from respaldo.errors import CatalogError, InvalidInput, NotificationError
from respaldo.i18n import SOURCE_LANGUAGE, translations
from respaldo.notify import Level, Message, deliver, targets_for
from respaldo.operations.alerts import DeliveryResult
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel, UtcTime
from respaldo.operations.tested_kinds import KIND_NAMES, relied_on
from respaldo.operations.views import DrillCheckView
from respaldo.operations.zone import time_zone
from respaldo.phrases import N_
from respaldo.processes import this_host
from respaldo.reasons import failed_check, reason

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class ReportRun(ResultModel):
    """One restore test of the month."""

    run_id: int
    backup_id: str
    backup_type: str | None
    database: str | None
    status: str
    started_at: UtcTime
    restore_seconds: float | None
    checks: list[DrillCheckView]
    error: str | None


class ReportPass(ResultModel):
    """A kind's newest passing restore test by the month's end (maybe of an earlier
    month: how old the proof of that kind is)."""

    run_id: int
    backup_id: str
    finished_at: UtcTime


class ReportKind(ResultModel):
    """One kind of a database's backups in the month: its tests and its newest pass."""

    kind: str | None
    """The tested backups' kind (``full``: logical, ``incremental``: physical,
    ``files``); None for tests of backups no longer in the catalog."""
    relied_on: bool
    """Whether the database relied on this kind at the month's end (its newest backup
    of the kind within ``[rpo] restore_test_days``): a kind relied on and not tested
    is listed with no runs."""
    runs: int
    passed: int
    failed: int
    rto_median_seconds: float | None
    rto_max_seconds: float | None
    newest_pass: ReportPass | None
    """The newest passed test of this kind that finished by the month's end; None:
    none ever passed."""


class ReportDatabase(ResultModel):
    """One database's month: how many tests, how many passed, the measured RTO; and the
    same for each kind of its backups."""

    database: str
    runs: int
    passed: int
    failed: int
    rto_median_seconds: float | None
    rto_max_seconds: float | None
    kinds: list[ReportKind] = []
    """Each kind tested in the month or relied on at its end, logical first."""


class DrillReport(ResultModel):
    """``respaldo report drills``: the restore tests of ``month`` (``YYYY-MM``, in
    ``time_zone``)."""

    month: str
    runs: list[ReportRun]
    databases: list[ReportDatabase]
    untested: list[str]
    """Configured databases, then file sets, without any restore test in the month that
    had a completed backup by its end."""
    nothing_to_test: list[str] = []
    """Configured databases, then file sets, without a test in the month and without any
    completed backup by its end (a month before the first backup): nothing to test.
    Told apart from :attr:`untested` by the backups the catalog holds, and the restore
    tests by then (a source tested had a backup): one never tested whose every backup of
    that time was pruned since looks the same."""
    sent: list[DeliveryResult] = []
    time_zone: str = "UTC"
    """The zone of the month and of the times the report's text shows (its name)."""


def previous_month(now: datetime, zone: tzinfo = UTC) -> str:
    """``YYYY-MM`` of the month before ``now``'s in ``zone``."""
    now = now.astimezone(zone)
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def month_bounds(month: str, zone: tzinfo = UTC) -> tuple[datetime, datetime]:
    """``[start, end)`` of ``month`` (``YYYY-MM``) in ``zone``, as UTC times. Raises
    InvalidInput."""
    found = _MONTH.match(month)
    if found is None or not 1 <= int(found.group(2)) <= 12:
        raise InvalidInput(
            "month", f"{month!r} is not a month", hint="write it as YYYY-MM, e.g. 2026-11"
        )
    year, number = int(found.group(1)), int(found.group(2))
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def drill_report(
    ctx: Context, month: str | None = None, *, now: datetime | None = None
) -> DrillReport:
    """The restore tests of ``month`` (default: the month before ``now``), months being
    the installation's (``[schedules] time_zone``). Raises InvalidInput for a malformed
    month, ConfigError for an unknown zone."""
    zone = time_zone(ctx.settings)
    month = month or previous_month(now or datetime.now(UTC), zone)
    start, end = month_bounds(month, zone)
    # The state at the month's end (or now, for the month under way): its newest passes
    # and the kinds relied on then, not those of the day the report is read.
    until = min(end, now or datetime.now(UTC))
    with ctx.catalog.read() as session:
        found = DrillRuns(session).between(start, end)
        # A cancelled run tested nothing: neither a failed test nor a test at all.
        runs = [
            _run(BackupRecords(session), run)
            for run in found
            if run.status is not DrillStatus.CANCELLED
        ]
        passes = newest_kind_passes(session, until)
        backup_times = newest_backup_times(session, until)
        # A source tested by then had a backup then, also once retention (7 days by
        # default) has deleted every backup of that time: read months later, the
        # report would otherwise call its untested month one before its first backup.
        tested_before = DrillRuns(session).sources_tested(until)
    per_db: dict[str, list[ReportRun]] = {}
    for run in runs:
        per_db.setdefault(run.database or "-", []).append(run)
    databases = []
    for name, got in sorted(per_db.items()):
        window = ctx.settings.rpo_for(name).restore_test if _is_database(ctx, name) else None
        relied = (
            relied_on({kind: backup_times.get((name, kind)) for kind in KIND_NAMES}, until, window)
            if window is not None
            else []
        )
        databases.append(_database(name, got, relied, passes))
    # File sets are restore-tested too (restore_test:<file set>): one left untested is
    # named as a database is.
    sources = [db.name for db in ctx.settings.databases]
    sources += [fs.name for fs in ctx.settings.file_sets]
    # A source without a backup by the month's end had nothing a test could restore:
    # "not tested" said a test was missing in a month before its first backup.
    backed_up = {source for source, _ in backup_times} | tested_before
    idle = [name for name in sources if name not in per_db]
    return DrillReport(
        month=month,
        runs=runs,
        databases=databases,
        untested=[name for name in idle if name in backed_up],
        nothing_to_test=[name for name in idle if name not in backed_up],
        time_zone=str(zone),
    )


def _run(records: BackupRecords, run: DrillRun) -> ReportRun:
    # The run's own kind first: its backup may have been pruned since (the run still
    # counts, for its kind); a run recorded before it kept one asks the record.
    backup_type: str | None = run.backup_kind.value if run.backup_kind is not None else None
    if backup_type is None:
        try:
            backup_type = records.get(run.backup_id).backup_type.value
        except CatalogError:  # pruned since (RecordNotFound): the run still counts
            backup_type = None
    return ReportRun(
        run_id=run.id,
        backup_id=run.backup_id,
        backup_type=backup_type,
        database=run.database_name,
        status=run.status.value,
        started_at=run.started_at,
        restore_seconds=run.restore_seconds,
        checks=[DrillCheckView(**c) for c in checks_of(run)],
        error=run.error_message,
    )


def _is_database(ctx: Context, name: str) -> bool:
    return name in {db.name for db in ctx.settings.databases}


_KIND_ORDER = (BackupKind.FULL, BackupKind.INCREMENTAL, BackupKind.FILES)
"""The order a database's kinds are listed in (as a round tests them), then any other."""


def _database(
    name: str,
    runs: list[ReportRun],
    relied: list[BackupKind],
    passes: dict[tuple[str | None, BackupKind], DrillRun],
) -> ReportDatabase:
    tally = _tally(runs)
    per_kind: dict[str | None, list[ReportRun]] = {kind.value: [] for kind in relied}
    for run in runs:
        per_kind.setdefault(run.backup_type, []).append(run)
    order = [kind.value for kind in _KIND_ORDER]

    def position(kind: str | None) -> tuple[int, str]:
        return (order.index(kind), "") if kind in order else (len(order), kind or "~")

    kinds = []
    for kind in sorted(per_kind, key=position):
        newest = passes.get((name, BackupKind(kind))) if kind is not None else None
        kinds.append(
            ReportKind(
                kind=kind,
                relied_on=kind in {k.value for k in relied},
                **_tally(per_kind[kind]),
                newest_pass=(
                    ReportPass(
                        run_id=newest.id, backup_id=newest.backup_id, finished_at=newest.finished_at
                    )
                    if newest is not None and newest.finished_at is not None
                    else None
                ),
            )
        )
    return ReportDatabase(database=name, **tally, kinds=kinds)


def _tally(runs: list[ReportRun]) -> dict[str, Any]:
    """How many tests, passed and failed, and the restore times they measured."""
    times = [r.restore_seconds for r in runs if r.restore_seconds is not None]
    passed = sum(1 for r in runs if r.status == "passed")
    return {
        "runs": len(runs),
        "passed": passed,
        "failed": len(runs) - passed,
        "rto_median_seconds": median(times) if times else None,
        "rto_max_seconds": max(times) if times else None,
    }


def _local(when: datetime, zone: str) -> str:
    """``when`` in ``zone`` (a name), with its abbreviation: ``2026-11-30 21:00 CST``."""
    try:
        local = when.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):  # a report from an older respaldo
        local = when.astimezone(UTC)
    return local.strftime("%Y-%m-%d %H:%M %Z")


def render_report(report: DrillReport, language: str) -> Message:
    """The report as an email (subject and plain-text body) in ``language``."""
    _ = translations(language).gettext
    # A check's name and what it found, as the catalog recorded them in English, said
    # in the report's language where respaldo worded them (as the page says them); in
    # English as recorded ("wal archive", not the page's "WAL archive").
    say: Callable[[str], str] = str
    said_failure: Callable[[str], str] = str
    if language != SOURCE_LANGUAGE:
        say = partial(reason, gettext=_)
        said_failure = partial(failed_check, gettext=_)
    lines = [
        _("Restore tests of {month} on {host}").format(month=report.month, host=this_host()),
        "",
    ]
    if not report.runs:
        lines.append(_("No restore test ran this month."))
    for db in report.databases:
        rto = (
            _("restore time: median {median}, longest {longest}").format(
                median=_seconds(db.rto_median_seconds), longest=_seconds(db.rto_max_seconds)
            )
            if db.rto_max_seconds is not None
            else ""
        )
        tally = _(
            N_("{database}: {count} test, {passed} passed, {failed} failed")
            if db.runs == 1
            else N_("{database}: {count} tests, {passed} passed, {failed} failed")
        )
        lines.append(
            tally.format(database=db.database, count=db.runs, passed=db.passed, failed=db.failed)
            + (f"; {rto}" if rto else "")
        )
        lines += ["  " + _kind_line(kind, report.time_zone, _) for kind in db.kinds]
    if report.untested:
        lines.append(_("Not tested this month: {names}").format(names=", ".join(report.untested)))
    if report.nothing_to_test:
        lines.append(
            _("Nothing to test this month (no backup yet): {names}").format(
                names=", ".join(report.nothing_to_test)
            )
        )
    for run in report.runs:
        lines += [
            "",
            _("Test {id}: backup {backup} of {database}, {status}").format(
                id=run.run_id,
                backup=run.backup_id,
                database=run.database or "-",
                status=_("passed") if run.status == "passed" else _("FAILED"),
            ),
        ]
        lines.append(
            "  "
            + _("started {when}, restore time {seconds}").format(
                when=_local(run.started_at, report.time_zone),
                seconds=_seconds(run.restore_seconds),
            )
        )
        for check in run.checks:
            mark = "ok" if check.ok else _("FAILED")
            detail = say(check.detail)
            lines.append(f"  - {say(check.name)}: {mark}" + (f" ({detail})" if detail else ""))
        if run.error:
            lines.append("  " + _("Error") + f": {said_failure(run.error)}")
    failed = sum(db.failed for db in report.databases)
    subject = "[respaldo] " + _(
        "restore tests of {month}: {passed} passed, {failed} failed"
    ).format(month=report.month, passed=len(report.runs) - failed, failed=failed)
    return Message(subject=subject, body="\n".join(lines) + "\n", short=subject)


_REPORT_KIND_NAMES = {
    **{kind.value: name for kind, name in KIND_NAMES.items()},
    BackupKind.FILES.value: N_("files backups"),
}
"""How the report names each kind ("physical backups"), as the status names them."""


def _kind_line(kind: ReportKind, zone: str, _: Callable[[str], str]) -> str:
    """``physical backups: 1 test, 0 passed, 1 failed; newest pass: ...``."""
    name = (
        _(_REPORT_KIND_NAMES.get(kind.kind, kind.kind))
        if kind.kind is not None
        else _("backups no longer in the catalog")
    )
    said = (
        _(
            N_("{kind}: {count} test, {passed} passed, {failed} failed")
            if kind.runs == 1
            else N_("{kind}: {count} tests, {passed} passed, {failed} failed")
        ).format(kind=name, count=kind.runs, passed=kind.passed, failed=kind.failed)
        if kind.runs
        else _("{kind}: not tested this month").format(kind=name)
    )
    if kind.rto_max_seconds is not None:
        said += "; " + _("restore time: median {median}, longest {longest}").format(
            median=_seconds(kind.rto_median_seconds), longest=_seconds(kind.rto_max_seconds)
        )
    if kind.kind is None:
        return said
    newest = kind.newest_pass
    return (
        said
        + "; "
        + (
            _("newest pass: backup {backup}, {when} (test {id})").format(
                backup=newest.backup_id, when=_local(newest.finished_at, zone), id=newest.run_id
            )
            if newest is not None
            else _("no restore test of these ever passed")
        )
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{value:.1f} s"


def send_drill_report(
    ctx: Context, month: str | None = None, *, now: datetime | None = None
) -> DrillReport:
    """Build the report of ``month`` and send it to every target that takes ``report``.

    Raises NotificationError when no target takes reports, or when none of those that do
    could be reached (each reason in the message): a scheduled report that nobody got is
    a failed job, and so an alert.
    """
    report = drill_report(ctx, month, now=now)
    settings = ctx.settings.notifications
    targets = targets_for(settings, Level.REPORT)
    if not targets:
        raise NotificationError(
            "no notification target takes the restore-test report",
            hint='add "report" to the levels of a [[notifications.targets]] (an email)',
        )
    message = render_report(report, settings.language)
    sent = [
        DeliveryResult.of(deliver(t, message, Level.REPORT, settings.timeout_seconds))
        for t in targets
    ]
    if not any(d.ok for d in sent):
        reasons = "; ".join(d.error or d.target for d in sent)
        raise NotificationError(
            f"the restore-test report of {report.month} was not sent: {reasons}"
        )
    return report.model_copy(update={"sent": sent})
