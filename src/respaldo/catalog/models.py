"""The catalog's tables, as typed SQLAlchemy 2 ORM classes.

The migrations in ``migrations/versions`` create exactly these tables; a unit test compares
the two, so a change here needs a new migration (see :mod:`respaldo.catalog.database`).
"""

from __future__ import annotations

import threading
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from respaldo.catalog.columns import UTCDateTime, enum_column_type
from respaldo.domain import (
    BackupKind,
    BackupStatus,
    CopyStatus,
    DrillStatus,
    JobKind,
    JobStatus,
    Role,
    TriggeredBy,
)

# Deterministic constraint and index names: Alembic needs names to drop or alter
# constraints later, and SQLite's batch mode (table rebuild) needs them to recreate them.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Names of configured sources and repositories (config.py allows at most 63 characters).
_NAME = sa.String(63)


class Base(DeclarativeBase):
    """Declarative base of every catalog table."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class BackupRecord(Base):
    """One backup: every column of the original specification, plus what the engine needs.

    Times are aware UTC datetimes. Sizes are bytes. Columns that are only known once a
    backup has finished (sizes, checksum, manifest, ...) are NULL before that. Status
    changes go through :class:`respaldo.catalog.backups.BackupRecords`, which enforces the
    state machine of :class:`respaldo.domain.BackupStatus`; do not assign ``status``
    directly.
    """

    __tablename__ = "backup_records"

    # -- the original specification ----------------------------------------------------
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    backup_type: Mapped[BackupKind] = mapped_column(enum_column_type(BackupKind), index=True)
    storage_path: Mapped[str | None] = mapped_column(sa.Text)
    s3_url: Mapped[str | None] = mapped_column(sa.Text)
    storage_tier: Mapped[str | None] = mapped_column(sa.String(32))
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    size_compressed: Mapped[int | None] = mapped_column(sa.BigInteger)
    checksum: Mapped[str | None] = mapped_column(sa.String(128))
    checksum_algorithm: Mapped[str] = mapped_column(
        sa.String(16), default="sha256", server_default="sha256"
    )
    is_verified: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[BackupStatus] = mapped_column(enum_column_type(BackupStatus), index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration: Mapped[float | None] = mapped_column(sa.Float)
    """Seconds from ``started_at`` to ``completed_at``."""
    retention_days: Mapped[int | None] = mapped_column(sa.Integer)
    """None: kept until deleted by hand."""
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    database_version: Mapped[str | None] = mapped_column(sa.String(64))
    schema_version: Mapped[str | None] = mapped_column(sa.String(128))

    # -- added by respaldo ---------------------------------------------------------------
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    """When the record was made; the API's ``timestamp`` and the order of listings."""
    database_name: Mapped[str | None] = mapped_column(_NAME, index=True)
    """Name of the configured source (database or file set); None for all of them."""
    repository: Mapped[str] = mapped_column(_NAME)
    """Name of the primary repository the backup is written to."""
    manifest: Mapped[str | None] = mapped_column(sa.String(255))
    """Object name of the backup's manifest in the repository, once it exists."""
    stored_new_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    """Bytes this backup added to the repository (what deduplication did not save)."""
    triggered_by: Mapped[TriggeredBy | None] = mapped_column(enum_column_type(TriggeredBy))
    """None for records rebuilt from a repository whose manifest does not say."""
    pinned: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    """Retention never expires a pinned backup, whatever ``expires_at`` says."""
    worker_pid: Mapped[int | None] = mapped_column(sa.Integer)
    worker_host: Mapped[str | None] = mapped_column(sa.String(255))
    """Host name of ``worker_pid``: a pid can only be checked on its own machine."""
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the backup started; renewed by the versions before jobs (the job's lease
    is the sign of life now)."""
    tool_version: Mapped[str | None] = mapped_column(sa.String(32))
    job_id: Mapped[int | None] = mapped_column(sa.Integer, index=True)
    """The job the backup runs in: the record is abandoned when that job has ended or its
    lease lapsed. None for records written before jobs, outside any job, or rebuilt from
    a manifest; ``worker_pid`` then decides."""

    source: Mapped[str | None] = mapped_column(sa.String(160))
    """Where a logical backup was read from: ``<system identifier>/<database>`` of the
    server pg_dump read (None: another kind, or recorded before it was kept). The status
    compares a database's newest two: machines whose ``dsn`` for it differ."""

    parent_id: Mapped[str | None] = mapped_column(sa.String(32))
    """The backup an incremental physical backup restores on top of (its manifest's
    ``incremental_of``); retention keeps it while this one is kept."""

    primary_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the backup was deleted from ``repository`` (prune expired it, or a deletion
    by hand) while a mirror that could not be reached still holds it: the record stays
    until it is deleted there too. Such a backup is not listed, verified or copied, nor
    read from ``repository``. None: ``repository`` holds it (migration 0018)."""

    copies: Mapped[list[BackupCopy]] = relationship(
        back_populates="backup",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="BackupCopy.repository",
    )

    def __repr__(self) -> str:
        return f"<BackupRecord {self.id} {self.backup_type} {self.status}>"


class BackupCopy(Base):
    """The copy of one backup in one secondary repository (e.g. offsite S3).

    At most one row per (backup, repository); deleting the backup record deletes its copies.
    """

    __tablename__ = "backup_copies"

    backup_id: Mapped[str] = mapped_column(
        sa.String(32),
        sa.ForeignKey("backup_records.id", ondelete="CASCADE"),
        primary_key=True,
    )
    repository: Mapped[str] = mapped_column(_NAME, primary_key=True)
    status: Mapped[CopyStatus] = mapped_column(enum_column_type(CopyStatus))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    backup: Mapped[BackupRecord] = relationship(back_populates="copies")

    def __repr__(self) -> str:
        return f"<BackupCopy {self.backup_id} {self.repository} {self.status}>"


class DrillRun(Base):
    """One restore test of one backup: when, how long the restore took, what was checked.

    Kept after the backup itself expires (no foreign key): the history of measured
    restore times (RTO) outlives the backups it was measured on.
    """

    __tablename__ = "drill_runs"
    # A database's finished runs, by result and time: the metrics' "was this failure
    # settled by a later pass" (catalog/figures.py) read every pass for each failure
    # without it, which grew with the square of the history (migration 0016).
    __table_args__ = (
        sa.Index(
            "ix_drill_runs_database_status_finished", "database_name", "status", "finished_at"
        ),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    backup_id: Mapped[str] = mapped_column(sa.String(32), index=True)
    database_name: Mapped[str | None] = mapped_column(_NAME)
    status: Mapped[DrillStatus] = mapped_column(enum_column_type(DrillStatus))
    scratch_name: Mapped[str | None] = mapped_column(sa.String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    restore_seconds: Mapped[float | None] = mapped_column(sa.Float)
    checks: Mapped[str | None] = mapped_column(sa.Text)  # JSON list of {name, ok, detail}
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    worker_pid: Mapped[int | None] = mapped_column(sa.Integer)
    worker_host: Mapped[str | None] = mapped_column(sa.String(255))
    """The host whose temporary directory holds a physical drill's scratch directory."""
    job_id: Mapped[int | None] = mapped_column(sa.Integer, index=True)
    """The job the drill runs in (as ``BackupRecord.job_id``)."""
    backup_kind: Mapped[BackupKind | None] = mapped_column(enum_column_type(BackupKind))
    """The tested backup's kind, as its record said when the drill started: the status,
    the metrics and the monthly report judge each kind by its tests, and the record goes
    when retention expires the backup. None for a run recorded before this column whose
    backup was gone by then (migration 0015), or of a backup not in the catalog."""

    def __repr__(self) -> str:
        return f"<DrillRun {self.id} {self.backup_id} {self.status}>"


class Job(Base):
    """One operation (backup, restore, drill, prune, verify) run by any interface.

    Status changes go through :class:`respaldo.catalog.jobs.Jobs`, which enforces
    :data:`respaldo.domain.JOB_TRANSITIONS`. A running job renews ``heartbeat_at`` (its
    lease); one whose lease lapsed is failed by the next process that looks.
    ``exclusive_key`` names what the job must hold alone while it runs (``backup:<db>``):
    a unique index over the running jobs' keys makes that hold across processes.
    """

    __tablename__ = "jobs"
    # Partial indexes: PostgreSQL's WHERE (the same as SQLite's) is added by
    # add_postgresql_options() when a PostgreSQL catalog's engine is made.
    __table_args__ = (
        sa.Index(
            "uq_jobs_running_exclusive_key",
            "exclusive_key",
            unique=True,
            sqlite_where=sa.text("status = 'running' AND exclusive_key IS NOT NULL"),
        ),
        sa.Index(
            "uq_jobs_schedule_fire",
            "requested_by",
            "scheduled_for",
            unique=True,
            sqlite_where=sa.text("scheduled_for IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    kind: Mapped[JobKind] = mapped_column(enum_column_type(JobKind), index=True)
    target: Mapped[str | None] = mapped_column(sa.String(255))
    """The database (or file set, or repository) the job works on; None for all."""
    params: Mapped[str | None] = mapped_column(sa.Text)  # JSON object of the job's inputs
    status: Mapped[JobStatus] = mapped_column(enum_column_type(JobStatus), index=True)
    triggered_by: Mapped[TriggeredBy] = mapped_column(enum_column_type(TriggeredBy))
    requested_by: Mapped[str | None] = mapped_column(sa.String(255))
    """The OS or API user, or the schedule's name."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    worker_pid: Mapped[int | None] = mapped_column(sa.Integer)
    worker_host: Mapped[str | None] = mapped_column(sa.String(255))
    cancel_requested: Mapped[bool] = mapped_column(
        sa.Boolean, default=False, server_default=sa.false()
    )
    progress_done: Mapped[int | None] = mapped_column(sa.BigInteger)
    progress_total: Mapped[int | None] = mapped_column(sa.BigInteger)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    result_id: Mapped[str | None] = mapped_column(sa.String(64))
    """The backup id the job produced or worked on."""
    outcome: Mapped[str | None] = mapped_column(sa.Text)
    """What a completed job produced, as a JSON object (a prune: the bytes it reclaimed
    per repository); None when the job reports nothing."""
    exclusive_key: Mapped[str | None] = mapped_column(sa.String(320))
    queue_name: Mapped[str | None] = mapped_column(sa.String(128))
    """The procrastinate queue the job went to; None for a job run in-process."""
    queue_job_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    """procrastinate's id of the queued job."""
    retry_of: Mapped[int | None] = mapped_column(sa.Integer)
    """The lost job this one runs again."""
    attempt: Mapped[int] = mapped_column(sa.Integer, default=1, server_default=sa.text("1"))
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """A scheduled job's fire time: unique per schedule (``requested_by``)."""

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.kind} {self.target} {self.status}>"


class JobTally(Base):
    """The jobs of one kind and final status that were deleted from ``jobs`` (retention,
    a routine schedule's earlier runs): how many, and when the newest of them ended, so
    that the counters read from ``jobs`` never go down when rows are forgotten."""

    __tablename__ = "job_tallies"

    kind: Mapped[JobKind] = mapped_column(enum_column_type(JobKind), primary_key=True)
    status: Mapped[JobStatus] = mapped_column(enum_column_type(JobStatus), primary_key=True)
    count: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default=sa.text("0"))
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<JobTally {self.kind} {self.status} {self.count}>"


class AlertState(Base):
    """The state of one watched condition (``set_condition``), by key: whether it fires,
    since when, and when it was last told, so that repeats are throttled and the end is
    told once. Failure alerts sent with a throttle key keep only ``last_sent_at`` here."""

    __tablename__ = "alert_states"

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    firing: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    level: Mapped[str] = mapped_column(sa.String(16))
    message: Mapped[str | None] = mapped_column(sa.Text)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<AlertState {self.key} firing={self.firing}>"


class NotificationRecord(Base):
    """One message sent (or tried) to one notification target, and how it went; the
    error never holds the target's URL or secret."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    level: Mapped[str] = mapped_column(sa.String(16))
    kind: Mapped[str] = mapped_column(sa.String(64))
    key: Mapped[str | None] = mapped_column(sa.String(255))
    target: Mapped[str] = mapped_column(_NAME)
    ok: Mapped[bool] = mapped_column(sa.Boolean)
    error: Mapped[str | None] = mapped_column(sa.Text)

    def __repr__(self) -> str:
        return f"<NotificationRecord {self.id} {self.target} ok={self.ok}>"


class AlertDelivery(Base):
    """One alert to one notification target, until it is delivered or given up: the
    alert as sent (JSON), ``pending`` (tried ``attempts`` times, next at ``next_try_at``),
    ``sent``, or ``given_up`` (not delivered within ``[notifications] retry_hours``; the
    last reason in ``error``). A channel that is down gets its alerts when it is back,
    in order, each once it was recorded as sent (migration 0017)."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (sa.Index("ix_alert_deliveries_state_target", "state", "target"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    target: Mapped[str] = mapped_column(_NAME)
    level: Mapped[str] = mapped_column(sa.String(16))
    kind: Mapped[str] = mapped_column(sa.String(64))
    key: Mapped[str | None] = mapped_column(sa.String(255))
    alert: Mapped[str] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default=sa.text("0"))
    tried_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(sa.Text)

    def __repr__(self) -> str:
        return f"<AlertDelivery {self.id} {self.target} {self.state}>"


# User and token names: what `respaldo user add` and `respaldo token create` accept.
_USER = sa.String(64)


class User(Base):
    """A local user of the API: an argon2id hash of the password, never the password.

    Changes go through :class:`respaldo.catalog.access.Users`. Removing a user removes
    their sessions (refresh tokens); the audit log keeps their name.
    """

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(_USER, primary_key=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[Role] = mapped_column(enum_column_type(Role))
    disabled: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<User {self.name} {self.role}>"


class AuthSession(Base):
    """One login of a local user: its refresh token (as a SHA-256 hash) and its life.

    Access tokens name their session (``sid``); a revoked or expired session makes them
    invalid at once, whatever their own expiry says (``POST /auth/logout``).
    """

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    user_name: Mapped[str] = mapped_column(
        _USER, sa.ForeignKey("users.name", ondelete="CASCADE"), index=True
    )
    refresh_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    address: Mapped[str | None] = mapped_column(sa.String(64))
    previous_refresh_hash: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    """The refresh token the last renewal replaced: a request sent with it just after is
    racing that renewal (two requests of one page), not a session that ended."""
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<AuthSession {self.id} {self.user_name}>"


class ApiToken(Base):
    """A revocable API token for automation: its public id, a SHA-256 hash of its secret
    part (the token is shown once, at creation), its role. Revoked tokens stay listed."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    name: Mapped[str] = mapped_column(_USER, unique=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64))
    role: Mapped[Role] = mapped_column(enum_column_type(Role))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(sa.String(255))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<ApiToken {self.id} {self.name} {self.role}>"


class AuditEntry(Base):
    """One entry of the audit log: who did what to what, from where, and how it ended.

    Append-only: :class:`respaldo.catalog.audit.AuditLog` can only add and read, and the
    migration adds triggers that make the database refuse UPDATE and DELETE. Action,
    method and outcome are stored as plain text so that an older respaldo can still read
    entries a newer one wrote.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(sa.String(255), index=True)
    method: Mapped[str | None] = mapped_column(sa.String(16))
    address: Mapped[str | None] = mapped_column(sa.String(64))
    action: Mapped[str] = mapped_column(sa.String(32), index=True)
    target: Mapped[str | None] = mapped_column(sa.String(255))
    outcome: Mapped[str] = mapped_column(sa.String(16))
    detail: Mapped[str | None] = mapped_column(sa.Text)

    def __repr__(self) -> str:
        return f"<AuditEntry {self.id} {self.actor} {self.action} {self.outcome}>"


class Worker(Base):
    """A ``respaldo worker`` process (or a ``serve`` that runs jobs): where, which
    queues, and its last sign of life. Removed when it stops; a dead one's row stays
    until its heartbeat is older than the jobs' lease (then it is pruned)."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    host: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int] = mapped_column(sa.Integer)
    queues: Mapped[str | None] = mapped_column(sa.Text)  # JSON list; None: every queue
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopping: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    confirmed_silent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The heartbeat a sweep found unchanged at two looks, a few renewal periods apart
    (:func:`respaldo.operations.reconcile.silent_workers`): the next processes take its
    silence without looking twice again. None: not confirmed (migration 0019)."""


class RepositoryIdentity(Base):
    """The id of the repository a configured name stands for, as the first process that
    opened it on this catalog found it. Every process sharing the catalog (workers on
    several machines) must reach that same repository under that name: one whose
    ``file://`` path is its own local disk would otherwise record backups the others cannot
    read, and their prune would count them as kept."""

    __tablename__ = "repository_identities"

    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    repository_id: Mapped[str] = mapped_column(sa.String(64))
    location: Mapped[str] = mapped_column(sa.Text)
    """Where the process that recorded it found it (its URL, for the message)."""
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoginFailure(Base):
    """One failed login (or one being checked) for a key: ``user:NAME`` or
    ``address:ADDR``. Shared by every API server on the catalog, so that together they
    allow ``[server] login_max_failures`` per key; rows older than the window are deleted
    at the next attempt (:mod:`respaldo.catalog.logins`)."""

    __tablename__ = "login_failures"
    __table_args__ = (sa.Index("ix_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(sa.String(320))
    at: Mapped[float] = mapped_column(sa.Float)  # seconds, on the limiter's (wall) clock


_add_lock = threading.Lock()


def add_postgresql_options() -> None:
    """Give the partial indexes their PostgreSQL ``WHERE`` (SQLite's), once a PostgreSQL
    catalog is used; idempotent.

    Not written as ``postgresql_where=`` in the models: SQLAlchemy checks a keyword of a
    dialect by importing that dialect, and its PostgreSQL one (19 modules, about 2 MiB of
    a process's memory) is otherwise never imported by a process whose catalog is SQLite,
    the default: a backup or restore held it for nothing.
    """
    with _add_lock:
        for table in Base.metadata.tables.values():
            for index in table.indexes:
                where = index.dialect_options["sqlite"]["where"]
                if where is not None:
                    index.dialect_options["postgresql"]["where"] = where
