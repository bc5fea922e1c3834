"""The API representation of a record: the original field names, in order, JSON-ready."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone

import pytest

from respaldo.catalog import API_FIELDS, BackupRecords, Catalog, record_to_api
from respaldo.catalog.serialize import format_time
from respaldo.domain import BackupKind, TriggeredBy

from .support import T0

pytestmark = pytest.mark.unit

ORIGINAL_ORDER = [
    "id", "timestamp", "backupType", "storagePath", "s3Url", "storageTier", "sizeBytes",
    "sizeCompressed", "checksum", "checksumAlgorithm", "isVerified", "verifiedAt", "status",
    "startedAt", "completedAt", "duration", "retentionDays", "expiresAt", "errorMessage",
    "databaseVersion", "schemaVersion",
]  # fmt: skip
ADDITIONS = [
    "databaseName", "repository", "manifest", "storedNewBytes", "triggeredBy", "pinned",
    "toolVersion", "primaryDeletedAt",
]  # fmt: skip


def test_keys_are_the_original_ones_in_order_then_the_additions(catalog: Catalog) -> None:
    with catalog.begin() as session:
        record = BackupRecords(session).create_pending(
            kind=BackupKind.FULL, repository="local", triggered_by=TriggeredBy.API,
            retention_days=7, now=T0,
        )  # fmt: skip
    assert list(record_to_api(record)) == ORIGINAL_ORDER + ADDITIONS
    assert list(API_FIELDS) == ORIGINAL_ORDER + ADDITIONS


def test_values_are_json_ready_and_times_are_utc_with_z(catalog: Catalog) -> None:
    with catalog.begin() as session:
        records = BackupRecords(session)
        record = records.create_pending(
            kind=BackupKind.INCREMENTAL, repository="local", triggered_by=TriggeredBy.SCHEDULE,
            retention_days=7, database_name="erp", now=T0, storage_tier="local",
        )  # fmt: skip
        records.start(record.id, os.getpid(), host="h", now=T0)
        records.complete(
            record.id, completed_at=T0 + timedelta(seconds=61, microseconds=250_000),
            size_bytes=2048, size_compressed=1024, stored_new_bytes=10, checksum="aa" * 32,
            manifest=f"manifests/{record.id}", database_version="16.4",
        )  # fmt: skip
    # Read back in a new session: what the API serves comes from the database.
    with catalog.begin() as session:
        shown = record_to_api(BackupRecords(session).get(record.id))
    assert json.loads(json.dumps(shown)) == shown
    assert shown["timestamp"] == "2026-11-28T08:30:00Z"
    assert shown["startedAt"] == "2026-11-28T08:30:00Z"
    assert shown["completedAt"] == "2026-11-28T08:31:01.250000Z"
    assert shown["expiresAt"] == "2026-12-05T08:31:01.250000Z"
    assert shown["verifiedAt"] is None
    assert shown["backupType"] == "incremental"
    assert type(shown["backupType"]) is str
    assert shown["status"] == "completed"
    assert shown["triggeredBy"] == "schedule"
    assert shown["duration"] == 61.25
    assert (shown["sizeBytes"], shown["sizeCompressed"], shown["storedNewBytes"]) == (
        2048,
        1024,
        10,
    )
    assert (shown["isVerified"], shown["pinned"]) == (False, False)
    assert (shown["databaseName"], shown["repository"], shown["storageTier"]) == (
        "erp",
        "local",
        "local",
    )
    assert "workerPid" not in shown


def test_format_time() -> None:
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 1, 2, 5, 4, 5, tzinfo=plus_two)) == "2026-01-02T03:04:05Z"
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 1, 2))  # naive on purpose
