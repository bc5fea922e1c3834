"""``prune`` as a result model: every decision with its rules, and what each repository
did. ``prune --json`` prints it; its field names are those ``prune --json`` always had."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import Field
from sqlalchemy.exc import SQLAlchemyError

from respaldo.errors import ClockAhead, RespaldoError
from respaldo.operations.context import Context
from respaldo.operations.jobs import forget_old
from respaldo.operations.models import IsoTime, ResultModel, Said
from respaldo.operations.prune import PruneResult, RepositoryOutcome, check_clock, plan, prune

log = logging.getLogger(__name__)


class DecisionView(ResultModel):
    """Keep or expire one backup, and every rule that decided it."""

    id: str
    """The backup id."""
    database_name: str | None
    """The configured database it is of."""
    backup_type: str
    """Its type."""
    status: str
    """Its status."""
    completed_at: IsoTime | None
    """When it completed."""
    decision: str
    """keep or expire."""
    rules: list[Said]
    """Every rule that keeps it, or why none does."""
    time: datetime = Field(exclude=True)
    """When the backup was taken, for ordering."""

    @property
    def keep(self) -> bool:
        return self.decision == "keep"


class GcView(ResultModel):
    backups: int
    packs: int
    packs_deleted: int
    packs_repacked: int
    packs_written: int
    chunks_dropped: int
    temporaries_removed: int
    bytes_before: int
    bytes_after: int
    bytes_reclaimed: int
    problems: list[str]


class WalView(ResultModel):
    files_deleted: int
    bytes_deleted: int
    kept_from: dict[str, str]
    """System identifier -> first segment still needed for point-in-time recovery."""


class ObjectLockView(ResultModel):
    mode: str
    until: IsoTime
    checked: int
    renewed: int
    failed: list[str]


class RepositoryPruneView(ResultModel):
    name: str
    location: str
    manifests_deleted: int
    error: str | None
    deferred: str | None = None
    """Why a secondary could not be reached: its prune waits for the next prune that
    reaches it (a warning says what waits), which is no failure of this one."""
    gc: GcView | None
    wal: WalView | None
    object_lock: ObjectLockView | None


class PruneReport(ResultModel):
    """What prune decided and did (``dry_run``: would do). ``ok`` is false when a
    repository could not be pruned; running prune again finishes the work. A secondary
    that could not be reached is ``deferred`` (with a warning), not a failure."""

    dry_run: bool
    now: IsoTime
    decisions: list[DecisionView]
    deleted: list[str]
    repositories: list[RepositoryPruneView]
    bytes_reclaimed: int
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return all(r.error is None for r in self.repositories)

    def found_failure(self) -> str | None:
        """The first repository prune could not finish in, for the job's row (see
        operations.jobs.Verdict: the CLI's prune job fails as the scheduled one does)."""
        for r in self.repositories:
            if r.error is not None:
                return f"prune could not finish in {r.name}: {r.error}"
        return None

    @property
    def expired(self) -> list[DecisionView]:
        return [d for d in self.decisions if not d.keep]

    def outcome(self) -> dict[str, Any] | None:
        """What the prune job records (``jobs.outcome``): the bytes reclaimed in each
        repository, garbage collection and WAL together, and ``deferred``: the
        secondaries it could not reach, and why. None for a dry run, whose figures are
        estimates of what was not done."""
        if self.dry_run:
            return None
        outcome: dict[str, Any] = {
            "bytes_reclaimed": {
                r.name: (r.gc.bytes_reclaimed if r.gc is not None else 0)
                + (r.wal.bytes_deleted if r.wal is not None else 0)
                for r in self.repositories
            }
        }
        # The job completed; its row says what it left for the next prune, and why.
        deferred = {r.name: r.deferred for r in self.repositories if r.deferred is not None}
        if deferred:
            outcome["deferred"] = deferred
        return outcome


def prune_backups(
    ctx: Context,
    *,
    dry_run: bool = False,
    database: str | None = None,
    wait: float | None = None,
    trust_clock: bool = False,
) -> PruneReport:
    """``prune``: :func:`respaldo.operations.prune.prune`, as a result model. Unless
    ``dry_run``, it then forgets the jobs older than ``[jobs] keep_days``, and the web
    logins and notification records as old (:func:`~respaldo.operations.jobs.forget_old`);
    a catalog that fails at that is logged and left for the next prune, and does not
    fail this one. ``trust_clock``: expire by age even when the clock is far past the
    newest backup (see :func:`~respaldo.operations.prune.check_clock`)."""
    report = report_of(
        prune(ctx, dry_run=dry_run, database=database, wait=wait, trust_clock=trust_clock)
    )
    if not dry_run:
        try:
            forget_old(ctx, datetime.now(UTC))
        except (SQLAlchemyError, RespaldoError) as exc:
            log.warning("could not forget the old jobs (the next prune tries again): %s", exc)
    return report


class RetentionPreview(ResultModel):
    """What prune would decide now for every backup (newest first), with each rule
    that keeps it, or why none does. Only the decision: what garbage collection would
    reclaim is ``prune --dry-run``'s."""

    now: IsoTime
    """The time the decisions are for."""
    decisions: list[DecisionView]
    """One decision per backup, newest first."""
    refused: Said | None = None
    """Why prune would refuse and delete nothing, the expire decisions notwithstanding
    (the clock far past the newest backup: ``[retention] clock_check_days``); None:
    it would delete what expires."""


def retention_preview(ctx: Context, *, database: str | None = None) -> RetentionPreview:
    """The retention decisions for every backup (of ``database``); changes nothing and
    reads no repository (so, unlike prune, it cannot tell that a backup is missing from
    every repository and counts it as good). ``refused`` says when prune would refuse
    for the clock: the preview said "expire" of backups the nightly prune then kept,
    failing."""
    result = plan(ctx, database=database)
    decisions = sorted(_decisions(result), key=lambda d: (d.time, d.id), reverse=True)
    refused = None
    try:
        check_clock(ctx, result, [d.backup for d in result.decisions], None)
    except ClockAhead as exc:
        refused = exc.message
    return RetentionPreview(now=result.now, decisions=decisions, refused=refused)


def _decisions(result: PruneResult) -> list[DecisionView]:
    return [
        DecisionView(
            id=d.backup.id,
            database_name=d.backup.database,
            backup_type=d.backup.kind,
            status=d.backup.status,
            completed_at=d.backup.completed_at,
            decision=d.action.value,
            rules=list(d.reasons),
            time=d.backup.time,
        )
        for d in result.decisions
    ]


def report_of(result: PruneResult) -> PruneReport:
    return PruneReport(
        dry_run=result.dry_run,
        now=result.now,
        decisions=_decisions(result),
        deleted=list(result.deleted),
        repositories=[_repository(r) for r in result.repositories],
        bytes_reclaimed=result.bytes_reclaimed,
        warnings=list(result.warnings),
    )


def _repository(r: RepositoryOutcome) -> RepositoryPruneView:
    gc, wal, locks = r.gc, r.wal, r.locks
    return RepositoryPruneView(
        name=r.name,
        location=r.location,
        manifests_deleted=r.manifests_deleted,
        error=r.error,
        deferred=r.deferred,
        gc=None
        if gc is None
        else GcView(
            backups=gc.backups,
            packs=gc.packs,
            packs_deleted=gc.packs_deleted,
            packs_repacked=gc.packs_repacked,
            packs_written=gc.packs_written,
            chunks_dropped=gc.chunks_dropped,
            temporaries_removed=gc.temporaries_removed,
            bytes_before=gc.bytes_before,
            bytes_after=gc.bytes_after,
            bytes_reclaimed=gc.bytes_reclaimed,
            problems=[str(p) for p in gc.problems],
        ),
        wal=None
        if wal is None
        else WalView(
            files_deleted=wal.files_deleted,
            bytes_deleted=wal.bytes_deleted,
            kept_from=dict(wal.kept_from),
        ),
        object_lock=None
        if locks is None
        else ObjectLockView(
            mode=locks.mode,
            until=locks.until,
            checked=locks.checked,
            renewed=locks.extended,
            failed=list(locks.failed),
        ),
    )
