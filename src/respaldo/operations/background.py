"""Backups, restores and restore tests started in the background: what an API request
asks for. Each checks the request, submits a job, hands it to the service's
:class:`~respaldo.operations.workers.Workers` and returns at once with the job's id: a
backup takes minutes and the request must not be held open.

With a PostgreSQL catalog the job goes to its queue instead (:func:`jobs.submit`), and
any worker takes it.

Everything that can be refused is refused here, before any job exists (InvalidInput for
a malformed or unfitting request, RecordNotFound for an unknown backup, JobConflict when
a backup of the same database runs); what fails later is the job's, and its row says
how it ended.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from respaldo.config import DatabaseSettings, Settings
from respaldo.domain import (
    BACKUP_STATUS_WORDS,
    BackupKind,
    BackupStatus,
    JobKind,
    TriggeredBy,
    truncate_name,
    validate_database_name,
)
from respaldo.errors import ConfigError, InvalidInput, RecordNotFound
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.drill import backups_to_test
from respaldo.operations.jobs import JobRequest
from respaldo.operations.listing import show_backup
from respaldo.operations.models import ResultModel
from respaldo.operations.recorded import fail_reserved, reserve_record
from respaldo.operations.restore_request import RestoreRequest
from respaldo.operations.scheduled import restore_params
from respaldo.operations.snapshot import plan_backup
from respaldo.operations.views import BackupView
from respaldo.operations.workers import Workers
from respaldo.phrases import N_, Phrase
from respaldo.postgres import ConnInfo


class StartedBackup(BackupView):
    """The record of a backup that a job takes (``pending`` or ``in_progress``), and
    that job's id."""

    job_id: int
    """The job taking the backup (GET /admin/jobs/{jobId})."""


class StartedJob(ResultModel):
    """A job that was started: what it does, and its id (``GET /admin/jobs/{id}``)."""

    message: str
    """What was started, in words."""
    job_id: int
    """The job doing it (GET /admin/jobs/{jobId})."""
    target_database: str | None = None
    """The database a restore goes into."""


def default_database(settings: Settings) -> str:
    """The database a request means when it names none: the first configured one.
    Raises InvalidInput when none is configured."""
    if not settings.databases:
        raise InvalidInput("database", Phrase(N_("no database is configured, and none was named")))
    return settings.databases[0].name


def start_backup(
    ctx: Context,
    workers: Workers,
    kind: BackupKind,
    database: str | None = None,
    *,
    requested_by: str,
    triggered_by: TriggeredBy = TriggeredBy.API,
) -> StartedBackup:
    """Start a ``kind`` backup of ``database`` (a file set's name for ``files``;
    default: :func:`default_database`, the first file set for ``files``): its record is
    made ``pending`` at once and returned with the job's id; a worker thread takes the
    backup.

    Raises InvalidInput (unknown database, a kind that does not fit it), JobConflict (a
    backup of it runs), and what opening the primary repository raises.
    """
    if database is not None:
        name = database
    elif kind is BackupKind.FILES and ctx.settings.file_sets:
        name = ctx.settings.file_sets[0].name
    else:
        name = default_database(ctx.settings)
    try:
        plan = plan_backup(ctx.settings, name, kind)
    except ConfigError as exc:
        raise InvalidInput("database", exc.message, hint=exc.hint or None) from None
    request = JobRequest(
        JobKind.BACKUP, name, triggered_by, requested_by, {"type": plan.kind.value}
    )
    jobs.check_free(ctx, request)
    record = reserve_record(
        ctx,
        kind=plan.recorded_kind,
        source=name,
        retention_days=plan.retention_days,
        triggered_by=triggered_by,
        pinned=plan.pinned,
    )
    try:
        request = JobRequest(
            JobKind.BACKUP,
            name,
            triggered_by,
            requested_by,
            {"type": plan.kind.value, "reserved": record.id},
        )
        job = _launch(ctx, workers, request, result_id=record.id)
    except BaseException as exc:
        fail_reserved(ctx, record.id, f"not started: {exc}")
        raise
    return StartedBackup(**record.model_dump(), job_id=job.id)


def start_restore(
    ctx: Context,
    workers: Workers,
    backup_id: str,
    *,
    replace: bool = False,
    confirm: str | None = None,
    target_database: str | None = None,
    repository: str | None = None,
    requested_by: str,
    triggered_by: TriggeredBy = TriggeredBy.API,
) -> StartedJob:
    """Start restoring the completed logical backup ``backup_id``.

    By default into a new database on its database's server: ``target_database``, or
    ``<name>_restored_<UTC time>_<hex>``; the result names it. ``replace`` swaps the
    live database of the backup's configured database instead, running its
    ``pre_restore_hook`` and ``post_restore_hook`` (the application's stop and start)
    around the swap; it needs ``confirm`` to be that database's name (the configured
    name, as the backup's ``databaseName`` shows it, or the PostgreSQL database's).

    ``repository`` names the one repository to read (default: the first that opens,
    the others as fallbacks).

    Raises RecordNotFound, InvalidBackupId, InvalidInput (not a completed logical
    backup, its database is not configured, ``confirm`` missing or wrong, a target name
    PostgreSQL cannot keep, or one given with ``replace``, a repository that is not
    configured): then nothing was started and nothing changed.
    """
    if repository is not None:
        try:
            ctx.settings.repository(repository)
        except ConfigError as exc:
            raise InvalidInput("repository", exc.message, hint=exc.hint or None) from None
    if target_database is not None:
        if replace:
            raise InvalidInput(
                "target_database",
                Phrase(N_("give a new database's name, or replace, not both")),
            )
        try:
            validate_database_name(target_database)
        except ConfigError as exc:
            raise InvalidInput("target_database", exc.message, hint=exc.hint or None) from None
    record = show_backup(ctx, backup_id)
    db = _restorable(ctx.settings, record)
    live = ConnInfo.parse(db.dsn).dbname or db.name
    if replace:
        if confirm not in {db.name, live}:
            raise InvalidInput(
                "confirm",
                Phrase(
                    N_("replacing database {database} needs its name as confirmation, got {got}"),
                    database=live,
                    got=repr(confirm),
                )
                if confirm
                else Phrase(
                    N_("replacing database {database} needs its name as confirmation"),
                    database=live,
                ),
                hint=Phrase(
                    N_(
                        "send {{'replace': true, 'confirm': '{name}'}}; the application is "
                        "stopped while its database is swapped"
                    ),
                    name=db.name,
                ),
            )
        target = live
    elif target_database is not None:
        target = target_database
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        target = f"{truncate_name(live, 30)}_restored_{stamp}_{secrets.token_hex(2)}"
    restore = RestoreRequest(
        record.id,
        target_database=target,
        database=db.name,
        replace=replace,
        repository=repository,
    )
    job = _launch(
        ctx,
        workers,
        JobRequest(JobKind.RESTORE, target, triggered_by, requested_by, restore_params(restore)),
        result_id=record.id,
    )
    if replace:
        message = (
            f"restore of backup {record.id} over database {target} started: "
            "the application is stopped while the database is swapped"
        )
    else:
        message = f"restore of backup {record.id} into the new database {target} started"
    return StartedJob(message=message, job_id=job.id, target_database=target)


# A backup's kind in a sentence, as the status and the alerts say it (logical,
# physical: the English said "a incremental backup" where the Spanish said "físico"),
# a word in the page's language.
_KIND_WORDS = {
    BackupKind.FULL: N_("logical"),
    BackupKind.INCREMENTAL: N_("physical"),
    BackupKind.FILES: N_("files"),
    BackupKind.SNAPSHOT: N_("snapshot"),
}


def _restorable(settings: Settings, record: BackupView) -> DatabaseSettings:
    if record.status is not BackupStatus.COMPLETED:
        raise InvalidInput(
            "backup_id",
            Phrase(
                N_("backup {backup} is {status}: only a completed backup restores"),
                backup=record.id,
                status=Phrase(BACKUP_STATUS_WORDS.get(record.status, record.status.value)),
            ),
        )
    if record.backup_type not in (BackupKind.FULL, BackupKind.SNAPSHOT):
        raise InvalidInput(
            "backup_id",
            Phrase(
                N_(
                    "backup {backup} is a {kind} backup: only logical backups restore into "
                    "a database here"
                ),
                backup=record.id,
                kind=Phrase(_KIND_WORDS.get(record.backup_type, record.backup_type.value)),
            ),
            hint=Phrase(
                N_("restore it with 'respaldo restore' (--target-datadir or --target-dir)")
            ),
        )
    try:
        return settings.database(record.database_name or "")
    except ConfigError as exc:
        raise InvalidInput("backup_id", exc.message, hint=exc.hint or None) from None


def start_restore_test(
    ctx: Context,
    workers: Workers,
    backup_id: str | None = None,
    database: str | None = None,
    *,
    requested_by: str,
    triggered_by: TriggeredBy = TriggeredBy.API,
) -> StartedJob:
    """Start a restore test (drill) of ``backup_id``, or of ``database`` (default:
    :func:`default_database`): the newest backup of each kind it relies on, logical and
    physical, as 'respaldo drill DATABASE' does
    (:func:`~respaldo.operations.drill.backups_to_test`).

    Raises RecordNotFound, InvalidBackupId, InvalidInput (both given, no database of
    that name, no completed backup to test)."""
    if backup_id is not None:
        if database is not None:
            raise InvalidInput("database", Phrase(N_("give a backup id or a database, not both")))
        target = show_backup(ctx, backup_id).id
        what = f"backup {target}"
    else:
        target = database if database is not None else default_database(ctx.settings)
        try:
            ctx.settings.database(target)
        except ConfigError as exc:
            raise InvalidInput("database", exc.message, hint=exc.hint or None) from None
        try:
            newest = backups_to_test(ctx, target, retest=True)
        except RecordNotFound as exc:
            raise InvalidInput("database", exc.message, hint=exc.hint or None) from None
        # One backup of each kind the database relies on (logical first).
        what = (
            f"the newest backups of {target}, one of each kind ({', '.join(newest)})"
            if len(newest) > 1
            else f"the newest backup of {target} ({newest[0]})"
        )
    job = _launch(ctx, workers, JobRequest(JobKind.DRILL, target, triggered_by, requested_by))
    return StartedJob(message=f"restore test of {what} started", job_id=job.id)


def _launch(
    ctx: Context, workers: Workers, request: JobRequest, *, result_id: str | None = None
) -> jobs.JobInfo:
    """Submit the job and have it run: with a PostgreSQL catalog :func:`jobs.submit` puts
    it in its queue (any worker takes it, docs/scaling.md); with SQLite this process's
    ``workers`` run it. Raises JobConflict at once when a running job holds the key it
    needs."""
    jobs.check_free(ctx, request)
    job = jobs.submit(ctx, request, result_id=result_id)
    if job.queue_name is None:
        workers.start(job.id)
    return job
