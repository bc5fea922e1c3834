"""The audit entries of jobs asked for from the command line.

A CLI command that changes something runs it as a job (``jobs.run_now``); when the job
ends, this records who (the OS user), what (backup created, restore, restore test,
prune), on what (the backup id, else the job's target) and how it ended. Jobs the API
starts are audited by its routes (``audit.record`` with the caller), scheduled ones not
at all: no person asked for them, and the jobs table keeps them. Verifications and dry
runs change nothing and are not audited.
"""

from __future__ import annotations

import logging

from respaldo.domain import AuditAction, AuditOutcome, JobKind, TriggeredBy
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest
from respaldo.operations.principal import local_principal
from respaldo.operations.scrub import Scrubber

log = logging.getLogger(__name__)

_ACTIONS = {
    JobKind.BACKUP: AuditAction.BACKUP_CREATE,
    JobKind.RESTORE: AuditAction.RESTORE,
    JobKind.DRILL: AuditAction.RESTORE_TEST,
    JobKind.PRUNE: AuditAction.PRUNE,
}


def audit_cli_job(
    ctx: Context,
    request: JobRequest,
    job_id: int,
    result_id: str | None,
    error: BaseException | None,
) -> None:
    """Record the end of a CLI job that changed (or tried to change) something. After a
    failure, a failure to record is logged, not raised: the job's own error is the one
    to see."""
    action = _ACTIONS.get(request.kind)
    if action is None or request.triggered_by is not TriggeredBy.CLI:
        return
    if request.params.get("dry_run"):
        return
    outcome = AuditOutcome.SUCCESS if error is None else AuditOutcome.FAILURE
    detail = f"job {job_id}" + (f": {error or type(error).__name__}" if error else "")
    detail = Scrubber(ctx.settings)(detail) if error else detail
    target = result_id or request.target
    if error is None:
        audit.record(ctx, local_principal(), action, target, outcome, detail)
        return
    try:
        audit.record(ctx, local_principal(), action, target, outcome, detail)
    except Exception as exc:  # the catalog may be what failed the job
        log.warning("could not record job %s in the audit log: %s", job_id, exc)
