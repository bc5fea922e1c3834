"""Backup records as the REST API shows them (the original BackupManager contract).

Field names are the original camelCase ones, in the original order, followed by
respaldo's additions, so that the existing front end works unchanged. Datetimes are ISO
8601 in UTC with a ``Z`` suffix; enums are their string values; missing values are None
(JSON null). Worker bookkeeping (pid, host, heartbeat) is not part of the API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

from respaldo.catalog.models import BackupRecord

# (API name, column) in API order. The first block is the original contract.
_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("id", "id"),
    ("timestamp", "created_at"),
    ("backupType", "backup_type"),
    ("storagePath", "storage_path"),
    ("s3Url", "s3_url"),
    ("storageTier", "storage_tier"),
    ("sizeBytes", "size_bytes"),
    ("sizeCompressed", "size_compressed"),
    ("checksum", "checksum"),
    ("checksumAlgorithm", "checksum_algorithm"),
    ("isVerified", "is_verified"),
    ("verifiedAt", "verified_at"),
    ("status", "status"),
    ("startedAt", "started_at"),
    ("completedAt", "completed_at"),
    ("duration", "duration"),
    ("retentionDays", "retention_days"),
    ("expiresAt", "expires_at"),
    ("errorMessage", "error_message"),
    ("databaseVersion", "database_version"),
    ("schemaVersion", "schema_version"),
    # respaldo's additions
    ("databaseName", "database_name"),
    ("repository", "repository"),
    ("manifest", "manifest"),
    ("storedNewBytes", "stored_new_bytes"),
    ("triggeredBy", "triggered_by"),
    ("pinned", "pinned"),
    ("toolVersion", "tool_version"),
    ("primaryDeletedAt", "primary_deleted_at"),
)

API_FIELDS: Final[tuple[str, ...]] = tuple(name for name, _ in _FIELDS)
"""The keys of :func:`record_to_api`, in order."""


def format_time(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, e.g. ``2026-11-28T08:30:00Z`` (microseconds if any).

    Raises ValueError for a naive datetime: its zone is unknown.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} cannot be shown as UTC")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _api_value(value: object) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    # The plain value, so that no JSON encoder or equality check ever meets an enum.
    if isinstance(value, Enum):
        return value.value
    return value


def record_to_api(record: BackupRecord) -> dict[str, Any]:
    """The API representation of ``record``: keys exactly :data:`API_FIELDS`, in order.

    Values are JSON-ready: str, int, float, bool or None. Pure; reads loaded attributes
    only (a record from a closed session is fine, as the catalog does not expire them).
    """
    return {name: _api_value(getattr(record, column)) for name, column in _FIELDS}
