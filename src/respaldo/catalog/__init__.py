"""The catalog: a database of backups, for listing, retention, the API and alerts.

Words used here:

- *catalog*: a SQLite file (default) or a PostgreSQL database, named by URL. It is never
  inside a database respaldo backs up: restoring that database must not rewind it.
- *record*: one row of ``backup_records``, one backup, identified by its backup id
  (:mod:`respaldo.domain`). Its status moves only along the state machine written in
  :data:`respaldo.domain.BACKUP_TRANSITIONS`.
- *job*: a row of ``jobs``, one operation run by any interface, with a lease
  (:mod:`respaldo.catalog.jobs`); its status follows :data:`respaldo.domain.JOB_TRANSITIONS`.
- *catalog's clock*: what leases are written and judged by (:mod:`respaldo.catalog.clock`):
  a PostgreSQL catalog's server's clock, a SQLite catalog's machine's.
- *copy*: a row of ``backup_copies``, the state of one backup in one secondary repository.
- *user*, *session*, *API token*: who may use the API (``users``, ``auth_sessions``,
  ``api_tokens``; :mod:`respaldo.catalog.access`), stored as hashes only.
- *audit entry*: a row of ``audit_log``, append-only (:mod:`respaldo.catalog.audit`).
- *migration*: an Alembic revision in ``migrations/versions``; :func:`open_catalog`
  applies the missing ones every time it opens a catalog.

The repositories are the source of truth, not the catalog: a record becomes
``completed`` only after the backup's manifest is written, and the whole catalog can be
rebuilt from manifests (:meth:`BackupRecords.upsert_from_manifest`). This layer knows
nothing of storage formats; it imports only SQLAlchemy, Alembic, ``respaldo.domain`` and
``respaldo.errors``.
"""

from respaldo.catalog.access import ApiTokens, AuthSessions, Users
from respaldo.catalog.alerts import AlertStates, Deliveries, Notifications
from respaldo.catalog.audit import AuditLog
from respaldo.catalog.backups import (
    BackupRecords,
    ManifestValues,
    failed_verification,
    newest_completed,
    newest_completed_times,
    pid_alive,
    this_host,
)
from respaldo.catalog.clock import catalog_now, clock_offset
from respaldo.catalog.copies import BackupCopies
from respaldo.catalog.database import Catalog, normalize_url, open_catalog
from respaldo.catalog.drills import DrillRuns, checks_of, tested_kind
from respaldo.catalog.figures import (
    BackupFigures,
    CatalogFigures,
    DrillFigures,
    KindDrillFigures,
    NotificationFigures,
    newest_backup_times,
    newest_kind_passes,
    read_figures,
)
from respaldo.catalog.jobs import Jobs, outcome_of, params_of
from respaldo.catalog.logins import LoginFailures
from respaldo.catalog.models import (
    AlertDelivery,
    AlertState,
    ApiToken,
    AuditEntry,
    AuthSession,
    BackupCopy,
    BackupRecord,
    DrillRun,
    Job,
    LoginFailure,
    NotificationRecord,
    User,
    Worker,
)
from respaldo.catalog.repository_ids import known_identity, recorded_identity
from respaldo.catalog.serialize import API_FIELDS, record_to_api
from respaldo.catalog.workers import Workers, queues_of

__all__ = [
    "API_FIELDS",
    "AlertDelivery",
    "AlertState",
    "AlertStates",
    "ApiToken",
    "ApiTokens",
    "AuditEntry",
    "AuditLog",
    "AuthSession",
    "AuthSessions",
    "BackupCopies",
    "BackupCopy",
    "BackupFigures",
    "BackupRecord",
    "BackupRecords",
    "Catalog",
    "CatalogFigures",
    "Deliveries",
    "DrillFigures",
    "DrillRun",
    "DrillRuns",
    "Job",
    "Jobs",
    "KindDrillFigures",
    "LoginFailure",
    "LoginFailures",
    "ManifestValues",
    "NotificationFigures",
    "NotificationRecord",
    "Notifications",
    "User",
    "Users",
    "Worker",
    "Workers",
    "catalog_now",
    "checks_of",
    "clock_offset",
    "failed_verification",
    "known_identity",
    "newest_backup_times",
    "newest_completed",
    "newest_completed_times",
    "newest_kind_passes",
    "normalize_url",
    "open_catalog",
    "outcome_of",
    "params_of",
    "pid_alive",
    "queues_of",
    "read_figures",
    "record_to_api",
    "recorded_identity",
    "tested_kind",
    "this_host",
]
