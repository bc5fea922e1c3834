"""The audit entries of jobs a person asked for: from the command line, or through the
API or the page.

When such a job ends, this records who, what (backup created, restore, restore test,
prune), on what (the backup id, else the job's target) and how it ended. From the
command line the actor is the OS user, and this entry is the only one. A job the API or
the page started was recorded by its route when it started (``success``: the request was
carried out, the detail names the job); the entry of its end, with the same actor (the
job's ``requested_by``), says whether the work itself succeeded, so that a failed
restore is never only a success in the log. A scheduled job that restores, tests a
restore or deletes backups (a restore test, the cleanup) is audited too, with the
schedule as its actor (``schedule:restore_test:erp``): those need the approve
permission when a person asks, and the audit log, not the jobs table (whose old rows
prune deletes), is where every one of them is found. Scheduled backups are not (they
delete nothing, and run every hour or day); verifications and dry runs change nothing and
are not audited.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

from respaldo.domain import AuditAction, AuditOutcome, JobKind, TriggeredBy
from respaldo.errors import JobConflict
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest, found_failure, get
from respaldo.operations.principal import Principal, local_principal
from respaldo.operations.scrub import Scrubber

log = logging.getLogger(__name__)

_ACTIONS = {
    JobKind.BACKUP: AuditAction.BACKUP_CREATE,
    JobKind.RESTORE: AuditAction.RESTORE,
    JobKind.DRILL: AuditAction.RESTORE_TEST,
    JobKind.PRUNE: AuditAction.PRUNE,
}

SCHEDULED_AUDITED = frozenset({JobKind.RESTORE, JobKind.DRILL, JobKind.PRUNE})
"""The scheduled jobs audited (see the module doc)."""
SCHEDULE_ACTOR = "schedule:"
"""The actor of a scheduled job's entry: this, then the schedule's name."""


def audit_job_end(
    ctx: Context,
    request: JobRequest,
    job_id: int,
    result_id: str | None,
    error: BaseException | None,
    *,
    result: object = None,
) -> None:
    """Record the end of a job asked for from the command line, the API or the page, or
    run by a schedule (see the module doc), that changed (or tried to change) something:
    a failure when it raised ``error``, or when its ``result`` says what failed
    (:class:`~respaldo.operations.jobs.Verdict`: the job ended failed). After a failure,
    a failure to record is logged, not raised: the job's own error is the one to see."""
    action = _ACTIONS.get(request.kind)
    if action is None or request.params.get("dry_run"):
        return
    actor: Principal | str
    if request.triggered_by is TriggeredBy.CLI:
        actor = local_principal()
    elif request.triggered_by is TriggeredBy.API:
        actor = request.requested_by or "-"
    elif request.triggered_by is TriggeredBy.SCHEDULE and request.kind in SCHEDULED_AUDITED:
        if isinstance(error, JobConflict):
            return  # skipped (another job held the lock): nothing was tried
        actor = SCHEDULE_ACTOR + (request.requested_by or "-")
    else:
        return
    if error is not None:
        failure: str | None = str(error) or type(error).__name__
    else:
        failure = _ended_with(ctx, job_id, found_failure(result))
    outcome = AuditOutcome.SUCCESS if failure is None else AuditOutcome.FAILURE
    detail = f"job {job_id}" + (
        f": {failure}" if failure is not None else (f": {note}" if (note := _note(result)) else "")
    )
    detail = Scrubber(ctx.settings)(detail) if failure is not None else detail
    target = result_id or request.target
    if error is None:
        audit.record(ctx, actor, action, target, outcome, detail)
        return
    try:
        audit.record(ctx, actor, action, target, outcome, detail)
    except Exception as exc:  # the catalog may be what failed the job
        log.warning("could not record job %s in the audit log: %s", job_id, exc)


@runtime_checkable
class Noted(Protocol):
    """A result whose entry says more than its one id: a restore test of a database
    tests a backup of each kind, and the entry's target names one of them."""

    def audit_note(self) -> str | None:
        """What the entry's detail adds after the job's number; None: nothing."""
        ...


def _note(result: object) -> str | None:
    return result.audit_note() if isinstance(result, Noted) else None


def _ended_with(ctx: Context, job_id: int, found: str | None) -> str | None:
    """What a job whose result says ``found`` failed ended with, as its row says: a job
    cancelled meanwhile ended ``cancelled`` (its failed result was the cancellation,
    "pg_restore was killed", not a finding; see :func:`~respaldo.operations.jobs.run`).
    ``found`` itself when the row cannot be read."""
    if found is None:
        return None
    try:
        return get(ctx, job_id).error or found
    except Exception as exc:  # the catalog: what the result found is still the failure
        log.warning("could not read job %s for its audit entry: %s", job_id, exc)
        return found
