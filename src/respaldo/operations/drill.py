"""Restore tests (drills): prove that a backup restores, not only that its bytes are intact.

A drill restores a logical backup into a throwaway database on the configured server
(``respaldo_drill_<hex>``), measures how long the restore took (the RTO actually
achievable), then checks:

- the restore itself ended cleanly (``pg_restore --exit-on-error``, stream checksum);
- every table's exact row count equals the count recorded in the backup's snapshot;
- each validation query of the database's config returns its expected value (run
  read-only, with a timeout);
- optionally ``pg_amcheck`` finds no corruption in tables and indexes.

Each run is recorded (``drill_runs``) with every check's result. Success marks the backup
verified (``is_verified``, ``verified_at``); failure marks it unverified. The throwaway
database is always dropped; if the process dies first, the next drill drops it.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from respaldo.catalog import BackupRecords, DrillRuns
from respaldo.config import DatabaseSettings
from respaldo.domain import BackupKind, BackupStatus, validate_backup_id
from respaldo.errors import ConfigError, InvalidBackupId, RecordNotFound, RespaldoError
from respaldo.operations.context import Context
from respaldo.operations.restore import (
    StreamReader,
    drop_quietly,
    load_manifest_any,
    open_with_fallbacks,
    restore_stream_into,
    row_count_differences,
)
from respaldo.postgres import ConnInfo, create_database
from respaldo.postgres.amcheck import pg_amcheck
from respaldo.postgres.queries import readonly_value
from respaldo.repository import Manifest, Repository

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "respaldo_drill_"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class DrillResult:
    run_id: int
    backup_id: str
    database: str
    passed: bool
    restore_seconds: float | None
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def run_drill(ctx: Context, target: str, *, amcheck: bool | None = None) -> DrillResult:
    """Restore-test backup ``target`` (an id) or the newest completed backup of database
    ``target``, record the run and its checks, and mark the backup (un)verified.

    A failed check is a result (``passed`` False), not an exception. Raises ConfigError
    or RecordNotFound when there is nothing to test, and the errors that prevent the
    drill from starting (server unreachable).
    """
    remove_leftovers(ctx)
    backup_id = _choose_backup(ctx, target)
    with contextlib.ExitStack() as leases:
        repo, fallbacks, warnings = open_with_fallbacks(ctx, leases, f"drill of {backup_id}")
        return _drill(ctx, backup_id, repo, fallbacks, warnings, amcheck)


def _drill(
    ctx: Context,
    backup_id: str,
    repo: Repository,
    fallbacks: list[Repository],
    warnings: list[str],
    amcheck: bool | None,
) -> DrillResult:
    manifest = load_manifest_any(repo, fallbacks, backup_id)
    if manifest.kind != BackupKind.FULL.value:
        raise ConfigError(
            f"backup {backup_id} is a {manifest.kind} backup; drills restore logical (full) "
            "backups into a throwaway database"
        )
    db = ctx.settings.database(manifest.source)
    admin = _admin(ConnInfo.from_settings(db))
    scratch = f"{SCRATCH_PREFIX}{secrets.token_hex(6)}"
    with ctx.catalog.begin() as session:
        run_id = DrillRuns(session).start(backup_id, database=db.name, scratch_name=scratch).id
    result = DrillResult(run_id, backup_id, db.name, False, None, warnings=warnings)
    error: str | None = None
    try:
        started = time.monotonic()
        create_database(admin, scratch)
        reader = StreamReader(repo, fallbacks, result.warnings)
        try:
            size = restore_stream_into(
                ctx, reader, manifest, admin.with_dbname(scratch), 1, False, None
            )
            result.restore_seconds = time.monotonic() - started
            result.checks.append(
                Check("restore", True, f"{size} bytes in {result.restore_seconds:.1f} s")
            )
        except RespaldoError as exc:
            result.checks.append(Check("restore", False, str(exc)))
        else:
            result.checks += _checks(ctx, manifest, admin.with_dbname(scratch), db, amcheck)
    except RespaldoError as exc:
        error = str(exc)
        result.checks.append(Check("drill", False, error))
    finally:
        drop_quietly(admin, scratch)
    result.passed = bool(result.checks) and all(c.ok for c in result.checks)
    now = datetime.now(UTC)
    with ctx.catalog.begin() as session:
        DrillRuns(session).finish(
            run_id,
            passed=result.passed,
            restore_seconds=result.restore_seconds,
            checks=[c.to_json() for c in result.checks],
            error=error or _first_failure(result.checks),
        )
        try:
            BackupRecords(session).set_verified(backup_id, now, verified=result.passed)
        except RecordNotFound:
            result.warnings.append(f"backup {backup_id} is not in the catalog: not marked")
    return result


def _checks(
    ctx: Context,
    manifest: Manifest,
    conninfo: ConnInfo,
    db: DatabaseSettings,
    amcheck: bool | None,
) -> list[Check]:
    checks = []
    compared, wrong = row_count_differences(manifest, conninfo)
    if wrong:
        checks.append(Check("row counts", False, "; ".join(wrong[:10])))
    else:
        checks.append(Check("row counts", True, f"{compared} tables match the snapshot"))
    timeout = ctx.settings.drill.query_timeout_seconds
    for validation in db.validations:
        name = f"validation: {validation.name}"
        try:
            value = readonly_value(conninfo, validation.sql, timeout_seconds=timeout)
        except RespaldoError as exc:
            checks.append(Check(name, False, str(exc)))
            continue
        ok = value == validation.expect
        checks.append(Check(name, ok, f"got {value!r}, expected {validation.expect!r}"))
    if amcheck if amcheck is not None else ctx.settings.drill.amcheck:
        try:
            found = pg_amcheck(conninfo)
            checks.append(Check("pg_amcheck", found.ok, found.report[-500:] or "no corruption"))
        except RespaldoError as exc:
            checks.append(Check("pg_amcheck", False, str(exc)))
    return checks


def _first_failure(checks: list[Check]) -> str | None:
    for check in checks:
        if not check.ok:
            return f"{check.name}: {check.detail}"
    return None


def _admin(conninfo: ConnInfo) -> ConnInfo:
    # Scratch databases are managed from the maintenance database.
    return conninfo.with_dbname("postgres")


def _choose_backup(ctx: Context, target: str) -> str:
    try:
        return validate_backup_id(target)
    except InvalidBackupId:
        pass
    db = ctx.settings.database(target)
    with ctx.catalog.begin() as session:
        records = BackupRecords(session).list(
            database=db.name, kind=BackupKind.FULL, status=BackupStatus.COMPLETED, limit=1
        )
    if not records:
        raise RecordNotFound(
            f"no completed full backup of {db.name} to test",
            hint=f"take one with 'respaldo backup {db.name}'",
        )
    return records[0].id


def remove_leftovers(ctx: Context) -> list[str]:
    """Drop the scratch databases of drills whose process died; return their names."""
    with ctx.catalog.begin() as session:
        abandoned = [
            (run.database_name, run.scratch_name) for run in DrillRuns(session).fail_abandoned()
        ]
    removed = []
    for database, scratch in abandoned:
        if not database or not scratch or not scratch.startswith(SCRATCH_PREFIX):
            continue
        try:
            admin = _admin(ConnInfo.from_settings(ctx.settings.database(database)))
        except RespaldoError as exc:
            log.warning("cannot remove leftover %s: %s", scratch, exc)
            continue
        drop_quietly(admin, scratch)
        removed.append(scratch)
    return removed
