"""Is the service healthy? Catalog reachable, repositories there, how old the backups are.

What ``GET /health`` answers (200 when :attr:`Health.ok`, else 503). Cheap enough to be
polled: one catalog query and one ``stat`` per repository, no index loaded.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from respaldo.catalog import BackupRecord
from respaldo.domain import BackupKind, BackupStatus
from respaldo.errors import RespaldoError
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel, UtcTime
from respaldo.operations.repositories import open_store
from respaldo.repository.config_file import CONFIG_NAME


class ComponentHealth(ResultModel):
    name: str
    ok: bool
    error: str | None = None


class NewestBackup(ResultModel):
    """The newest completed backup of one source and kind."""

    database: str | None
    kind: BackupKind
    backup_id: str
    completed_at: UtcTime | None
    age_seconds: float | None


class Health(ResultModel):
    ok: bool
    catalog: ComponentHealth
    repositories: list[ComponentHealth]
    newest_backups: list[NewestBackup]


def check_health(ctx: Context, *, now: datetime | None = None) -> Health:
    """Check the catalog and every configured repository; never raises for their
    failures (they are the answer)."""
    when = now or datetime.now(UTC)
    newest: list[NewestBackup] = []
    try:
        with ctx.catalog.read() as session:
            newest = [_newest(record, when) for record in _newest_records(session)]
        catalog = ComponentHealth(name="catalog", ok=True)
    except (SQLAlchemyError, RespaldoError) as exc:
        catalog = ComponentHealth(name="catalog", ok=False, error=_first_line(exc))
    repositories = [_repository(ctx, repo.name) for repo in ctx.settings.repositories]
    ok = catalog.ok and all(r.ok for r in repositories)
    return Health(ok=ok, catalog=catalog, repositories=repositories, newest_backups=newest)


def _newest_records(session: sa.orm.Session) -> list[BackupRecord]:
    latest = (
        sa.select(
            BackupRecord.database_name,
            BackupRecord.backup_type,
            sa.func.max(BackupRecord.completed_at).label("at"),
        )
        .where(BackupRecord.status == BackupStatus.COMPLETED)
        .group_by(BackupRecord.database_name, BackupRecord.backup_type)
        .subquery()
    )
    query = (
        sa.select(BackupRecord)
        .join(
            latest,
            sa.and_(
                BackupRecord.database_name.is_not_distinct_from(latest.c.database_name),
                BackupRecord.backup_type == latest.c.backup_type,
                BackupRecord.completed_at == latest.c.at,
            ),
        )
        .where(BackupRecord.status == BackupStatus.COMPLETED)
        .order_by(BackupRecord.database_name, BackupRecord.backup_type)
    )
    return list(session.scalars(query))


def _newest(record: BackupRecord, now: datetime) -> NewestBackup:
    done = record.completed_at
    return NewestBackup(
        database=record.database_name,
        kind=record.backup_type,
        backup_id=record.id,
        completed_at=done,
        age_seconds=(now - done).total_seconds() if done is not None else None,
    )


def _repository(ctx: Context, name: str) -> ComponentHealth:
    try:
        store = open_store(ctx.settings.repository(name))
        try:
            store.stat(CONFIG_NAME)
        finally:
            store.close()
    except RespaldoError as exc:
        return ComponentHealth(name=name, ok=False, error=_first_line(exc))
    return ComponentHealth(name=name, ok=True)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else type(exc).__name__
