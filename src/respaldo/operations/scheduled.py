"""Running a submitted job from its catalog row alone: what a scheduler or a queue does.

:func:`run_queued` reads the job's kind, target and parameters and calls the same
operation a CLI command calls, as that job (see :mod:`respaldo.operations.jobs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from respaldo.cancellation import CancelToken
from respaldo.catalog import Jobs, params_of
from respaldo.domain import BackupKind, JobKind, JobStatus, TriggeredBy
from respaldo.errors import ConfigError, RespaldoError
from respaldo.operations import alerts, jobs
from respaldo.operations.context import Context
from respaldo.operations.copy import WalCopyOutcome, replicate_wal
from respaldo.operations.drill import run_restore_test_round
from respaldo.operations.job_audit import audit_job_end
from respaldo.operations.prune_report import PruneReport, prune_backups
from respaldo.operations.recorded import fail_reserved
from respaldo.operations.reports import send_drill_report
from respaldo.operations.restore_request import RestoreRequest, restore
from respaldo.operations.snapshot import backup_source
from respaldo.operations.verify import VerifyResult, check_presence, verify
from respaldo.operations.zone import time_zone
from respaldo.phrases import counted
from respaldo.repository.wal import read_cluster

log = logging.getLogger(__name__)


def run_queued(
    ctx: Context,
    job_id: int,
    *,
    token: CancelToken | None = None,
    on_conflict: JobStatus = JobStatus.FAILED,
) -> Any:
    """Run the queued job ``job_id`` (see :func:`respaldo.operations.jobs.run`).

    A backup job whose parameters name a ``reserved`` record (made when it was
    submitted, see :func:`~respaldo.operations.recorded.reserve_record`) takes that
    record; if the job ends before the backup starts it (refused, cancelled while
    queued), the record is failed with the reason. A restore job runs from its
    parameters when they name its ``target_database`` (see :func:`restore_params`).

    Raises ConfigError for a job this function cannot run from its parameters (a
    restore into a directory), and whatever the job raises.
    """
    with ctx.catalog.begin() as session:
        job = Jobs(session).get(job_id)
        kind, target, params, by = job.kind, job.target, params_of(job), job.triggered_by
        request = jobs.JobRequest(kind, target, by, job.requested_by, params)
    reserved = params.get("reserved") if kind is JobKind.BACKUP else None
    # A job the API or the page started, or a schedule: its end is audited (the CLI's are
    # by run_now; audit_job_end leaves out the scheduled kinds it does not audit).
    audited = by in (TriggeredBy.API, TriggeredBy.SCHEDULE)
    try:
        body, result_id = _body(kind, target, params, by)
        result = jobs.run(
            ctx,
            job_id,
            body,
            token=token,
            result_id=result_id,
            outcome=_outcome,
            on_conflict=on_conflict,
        )
    except BaseException as exc:
        if reserved is not None:
            fail_reserved(ctx, str(reserved), str(exc) or type(exc).__name__)
        if audited:
            # The backup (reserved, or the one restored) its start was recorded on.
            known = reserved or params.get("backup_id")
            audit_job_end(ctx, request, job_id, str(known) if known else None, exc)
        raise
    if audited:
        audit_job_end(ctx, request, job_id, result_id(result), None, result=result)
    return result


def _outcome(result: Any) -> dict[str, Any] | None:
    return result.outcome() if isinstance(result, PruneReport) else None


def restore_params(request: RestoreRequest) -> dict[str, Any]:
    """The parameters of a restore job that :func:`run_queued` can run: a logical
    restore (into ``target_database``) with pg_restore's defaults."""
    if request.target_database is None:
        raise ConfigError("only a restore into a database can run from the queue")
    return {
        "backup_id": request.backup_id,
        "target_database": request.target_database,
        "database": request.database,
        "replace": request.replace,
        "repository": request.repository,
    }


def _body(
    kind: JobKind, target: str | None, params: dict[str, Any], by: TriggeredBy
) -> tuple[Callable[[Context], Any], Callable[[Any], str | None]]:
    if kind is JobKind.BACKUP and target is not None:
        backup_kind = BackupKind(params["type"]) if params.get("type") else None
        reserved = str(params["reserved"]) if params.get("reserved") else None
        # pg_dump workers asked for by the command that queued it: a retry on another
        # worker runs the backup as it was asked for.
        dump_jobs = int(params["jobs"]) if params.get("jobs") else None
        return (
            lambda c: backup_source(
                c, target, backup_kind, triggered_by=by, reserved=reserved, jobs=dump_jobs
            ),
            lambda result: result.record.id,
        )
    if kind is JobKind.DRILL and target is not None:
        amcheck = params.get("amcheck")
        checks = None if amcheck is None else bool(amcheck)
        # Every kind of backup a database relies on, not its newest logical one alone;
        # the schedule's round skips a kind whose newest backup passed a test already,
        # a test someone asked for (the API, the page) tests each anew.
        retest = by is not TriggeredBy.SCHEDULE
        return (
            lambda c: run_restore_test_round(c, target, amcheck=checks, retest=retest),
            lambda result: result.backup_id,
        )
    if kind is JobKind.RESTORE and params.get("target_database"):
        request = RestoreRequest(
            str(params["backup_id"]),
            target_database=str(params["target_database"]),
            database=str(params["database"]) if params.get("database") else None,
            replace=bool(params.get("replace", False)),
            repository=str(params["repository"]) if params.get("repository") else None,
        )
        return lambda c: restore(c, request), lambda _: request.backup_id
    if kind is JobKind.PRUNE:
        return lambda c: _prune(c, target), lambda _: None
    if kind is JobKind.VERIFY:
        slices = int(params.get("slices", 7))
        return lambda c: verify_slice(c, slices), lambda _: None
    if kind is JobKind.REPORT:
        # The month before the one the job runs in (in the installation's zone, as the
        # schedule fires): on the 1st, the month just ended.
        return lambda c: send_drill_report(c), lambda _: None
    if kind is JobKind.WAL_COPY:
        return wal_copy, lambda _: None
    raise ConfigError(f"a {kind.value} job cannot run from the queue")


def _prune(ctx: Context, database: str | None) -> PruneReport:
    # A prune that could not finish in a repository ends its job failed by its result
    # (PruneReport.found_failure, as from the CLI), with what it reclaimed elsewhere
    # recorded; prune sent the alerts itself, repository by repository.
    return prune_backups(ctx, database=database)


def wal_copy(ctx: Context) -> list[WalCopyOutcome]:
    """The ``wal_copy`` schedule's job: copy the archived WAL each secondary repository
    lacks (:func:`~respaldo.operations.copy.replicate_wal`, incremental).

    Raises RespaldoError naming every repository that is still behind, so the job is
    recorded failed; the copy alerted already, once per repeat interval per repository,
    so the failed job sends no alert of its own. The next run copies what is missing.
    """
    try:
        outcomes = replicate_wal(ctx)
    finally:
        jobs.forget_earlier_runs(ctx, "wal_copy")
    failed = [o.error for o in outcomes if o.error is not None]
    if failed:
        raise alerts.mark_alerted(
            RespaldoError(
                "; ".join(failed),
                hint="the next wal_copy run copies what is missing; "
                "'respaldo copy --all --to REPOSITORY' does it now",
            )
        )
    return outcomes


def slice_of(day: date, slices: int) -> int:
    """Which slice (1..slices) of ``verify --subset`` runs on ``day``: consecutive days
    take consecutive slices, so ``slices`` days read every chunk once."""
    return day.toordinal() % slices + 1


def slice_at(now: datetime, zone: tzinfo, slices: int) -> int:
    """The slice of a verify run at ``now``: that of its day in the installation's zone
    (``zone``), the zone its schedule fires in. By the UTC date, a daily run at 01:30 in
    Madrid (00:30 UTC in winter, 23:30 UTC the day before in summer) took one UTC date
    twice at the spring change (a slice verified twice, the one after it left for a
    week more) and skipped one at the autumn change."""
    return slice_of(now.astimezone(zone).date(), slices)


def verify_slice(ctx: Context, slices: int, *, today: date | None = None) -> VerifyResult:
    """``verify --subset n/slices`` of the primary repository for today's ``n``, then,
    in each mirror, that every pack its index names and every backup copied there is
    there (:func:`~respaldo.operations.verify.check_presence`: listings, no data read).

    Raises RespaldoError if problems are found (the job fails and says how many); the
    damaged copies are quarantined by :func:`~respaldo.operations.verify.verify`. A
    mirror that cannot be opened, or whose lock a garbage collection holds for longer
    than ``[locks] wait_seconds`` (the wait ends when the job is cancelled), is skipped
    with a warning: its copies fail, and alert, on their own, and the status's
    ``verify:<repository>`` item turns red once it went unchecked for ``[rpo]
    verify_hours`` (:mod:`~respaldo.operations.status_verify`).
    """
    n = (
        slice_of(today, slices)
        if today is not None
        else slice_at(datetime.now(UTC), time_zone(ctx.settings), slices)
    )
    read = 0

    def advance(size: int) -> None:
        nonlocal read
        read += size
        ctx.progress("verify", read, None)  # in a job: stops here when cancelled

    result = verify(ctx, subset=f"{n}/{slices}", advance=advance)
    mirrors = []
    for mirror in ctx.settings.repositories[1:]:
        try:
            mirrors.append(check_presence(ctx, mirror.name))
        except RespaldoError as exc:
            result.warnings.append(f"repository {mirror.name} was not checked: {exc}")
            log.warning("verify: repository %s was not checked: %s", mirror.name, exc)
    if not result.ok:
        # verify sent the alert, naming the damage: the failed job sends none.
        raise alerts.mark_alerted(
            RespaldoError(
                f"verify --subset {n}/{slices} found "
                + counted(len(result.problems), "{count} problem", "{count} problems"),
                hint="run 'respaldo verify --all', then 'respaldo repair'",
            )
        )
    for found in mirrors:
        if not found.ok:
            # check_presence sent the alert.
            raise alerts.mark_alerted(
                RespaldoError(
                    f"repository {found.repository} lacks what its index or the catalog "
                    "says it holds ("
                    + counted(len(found.problems), "{count} problem", "{count} problems")
                    + f"): {found.problems[0]}",
                    hint=f"run 'respaldo repair {found.repository}' (what the missing "
                    "packs held is quarantined now: repair copies it again from the other "
                    "repositories), then 'respaldo prune' (which drops the missing packs "
                    f"from the index) and 'respaldo verify --all --repository "
                    f"{found.repository}'",
                )
            )
    return result


def wal_archived(ctx: Context) -> set[str]:
    """The configured databases whose WAL the primary repository archives (it holds
    their cluster record): the ones that get physical backups on the schedule."""
    databases = ctx.settings.databases
    if not databases:
        return set()
    repo = ctx.repository()
    return {db.name for db in databases if read_cluster(repo, db.name) is not None}
