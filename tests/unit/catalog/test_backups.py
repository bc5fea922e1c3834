"""The life of a backup record: the state machine, time arithmetic, listing, crash recovery
and rebuilding from manifests, on a real SQLite catalog."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from respaldo.catalog import BackupRecords, Catalog, ManifestValues, record_to_api
from respaldo.catalog.models import BackupRecord
from respaldo.domain import BackupKind, BackupStatus, TriggeredBy
from respaldo.errors import InvalidBackupId, InvalidTransition, RecordExists, RecordNotFound

from .support import T0

pytestmark = pytest.mark.unit

HOST = "test-host"


@pytest.fixture
def session(catalog: Catalog) -> Iterator[Session]:
    with catalog.begin() as session:
        yield session


@pytest.fixture
def records(session: Session) -> BackupRecords:
    return BackupRecords(session)


def pending(
    records: BackupRecords,
    *,
    kind: BackupKind = BackupKind.FULL,
    database: str | None = "erp",
    retention_days: int | None = 7,
    offset: timedelta = timedelta(0),
) -> BackupRecord:
    return records.create_pending(
        kind=kind,
        repository="local",
        triggered_by=TriggeredBy.CLI,
        retention_days=retention_days,
        database_name=database,
        now=T0 + offset,
    )


def completed(records: BackupRecords, record: BackupRecord) -> BackupRecord:
    records.start(record.id, os.getpid(), host=HOST, now=record.created_at)
    return records.complete(
        record.id,
        completed_at=record.created_at + timedelta(seconds=90),
        size_bytes=1000,
        size_compressed=400,
        stored_new_bytes=120,
        checksum="ab" * 32,
        manifest=f"manifests/{record.id}",
    )


def dead_pid() -> int:
    # A child that has exited and been reaped: its pid names no process any more.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- creating and reading ---------------------------------------------------------------


def test_create_pending_fills_the_record(records: BackupRecords) -> None:
    record = pending(records)
    assert record.id.startswith("20261128T083000Z-")
    assert record.status is BackupStatus.PENDING
    assert record.created_at == T0
    assert record.is_verified is False
    assert record.pinned is False
    assert record.checksum_algorithm == "sha256"
    assert record.tool_version
    assert records.get(record.id) is record


def test_snapshots_are_pinned_by_default(records: BackupRecords) -> None:
    assert pending(records, kind=BackupKind.SNAPSHOT, retention_days=None).pinned is True


def test_a_taken_id_is_refused(records: BackupRecords) -> None:
    record = pending(records)
    with pytest.raises(RecordExists):
        records.create_pending(
            kind=BackupKind.FULL,
            repository="local",
            triggered_by=TriggeredBy.API,
            retention_days=7,
            backup_id=record.id,
        )


def test_get_of_an_unknown_id_is_record_not_found_with_a_hint(records: BackupRecords) -> None:
    with pytest.raises(RecordNotFound) as caught:
        records.get("20261128T083000Z-00000000")
    assert "20261128T083000Z-00000000" in str(caught.value)
    assert "respaldo list" in caught.value.hint


@pytest.mark.parametrize("bad", ["", "../x", "20261128T083000Z-3F9A1C2E", "x; rm -rf /"])
def test_get_of_a_malformed_id_is_refused_before_the_query(
    records: BackupRecords, bad: str
) -> None:
    with pytest.raises(InvalidBackupId):
        records.get(bad)


# -- the state machine ----------------------------------------------------------------


def test_the_happy_path_computes_duration_and_expiry(records: BackupRecords) -> None:
    record = pending(records, retention_days=7)
    started = records.start(record.id, 4242, host=HOST, now=T0 + timedelta(seconds=5))
    assert started.status is BackupStatus.IN_PROGRESS
    assert (started.worker_pid, started.worker_host) == (4242, HOST)
    assert started.started_at == started.heartbeat_at == T0 + timedelta(seconds=5)

    done = records.complete(
        record.id,
        completed_at=T0 + timedelta(minutes=2, seconds=5, microseconds=500_000),
        size_bytes=10_000,
        size_compressed=3_000,
        stored_new_bytes=700,
        checksum="cd" * 32,
        manifest=f"manifests/{record.id}",
        database_version="16.4",
        schema_version="2026.11",
    )
    assert done.status is BackupStatus.COMPLETED
    assert done.duration == 120.5
    assert done.expires_at == T0 + timedelta(days=7, minutes=2, seconds=5, microseconds=500_000)
    assert (done.size_bytes, done.size_compressed, done.stored_new_bytes) == (10_000, 3_000, 700)


def test_no_retention_means_no_expiry(records: BackupRecords) -> None:
    record = completed(records, pending(records, retention_days=None))
    assert record.expires_at is None


def test_completed_to_in_progress_is_refused_and_leaves_the_record_alone(
    catalog: Catalog,
) -> None:
    with catalog.begin() as session:
        record = completed(BackupRecords(session), pending(BackupRecords(session)))
        before = record_to_api(record)
    with catalog.begin() as session:
        with pytest.raises(InvalidTransition) as caught:
            BackupRecords(session).start(record.id, 1, host=HOST, now=T0 + timedelta(days=1))
        assert str(caught.value) == (
            f"backup {record.id} cannot go from completed to in_progress: completed is final"
        )
        assert (caught.value.current, caught.value.requested) == ("completed", "in_progress")
    with catalog.begin() as session:
        assert record_to_api(BackupRecords(session).get(record.id)) == before


@pytest.mark.parametrize("end", ["complete", "fail"])
def test_a_pending_backup_cannot_complete_but_can_fail(records: BackupRecords, end: str) -> None:
    record = pending(records)
    if end == "complete":
        with pytest.raises(InvalidTransition, match="from pending it can only become"):
            records.complete(
                record.id,
                completed_at=T0,
                size_bytes=1,
                size_compressed=1,
                checksum="x",
                manifest="m",
            )
        assert record.status is BackupStatus.PENDING
    else:
        failed = records.fail(record.id, "no space left", now=T0 + timedelta(seconds=3))
        assert failed.status is BackupStatus.FAILED
        assert failed.error_message == "no space left"
        assert failed.duration is None  # it never started


def test_a_failed_backup_cannot_fail_again_or_complete(records: BackupRecords) -> None:
    record = pending(records)
    records.start(record.id, 1, host=HOST, now=T0)
    records.fail(record.id, "pg_dump exited with 1", now=T0 + timedelta(seconds=30))
    assert record.duration == 30.0
    with pytest.raises(InvalidTransition, match="failed is final"):
        records.fail(record.id, "again")
    assert record.error_message == "pg_dump exited with 1"


def test_naive_times_are_refused(records: BackupRecords) -> None:
    record = pending(records)
    with pytest.raises(ValueError, match="timezone-aware"):
        records.start(record.id, 1, now=T0.replace(tzinfo=None))


def test_set_verified_only_on_completed_backups(records: BackupRecords) -> None:
    record = pending(records)
    with pytest.raises(InvalidTransition, match="only a completed backup"):
        records.set_verified(record.id, T0)
    completed(records, record)
    records.set_verified(record.id, T0 + timedelta(hours=1))
    assert (record.is_verified, record.verified_at) == (True, T0 + timedelta(hours=1))
    records.set_verified(record.id, T0 + timedelta(hours=2), verified=False)
    assert (record.is_verified, record.verified_at) == (False, T0 + timedelta(hours=2))


def physical_chain(records: BackupRecords, length: int) -> list[BackupRecord]:
    """``length`` completed physical backups, each incremental on the one before."""
    chain: list[BackupRecord] = []
    for n in range(length):
        record = pending(records, kind=BackupKind.INCREMENTAL, offset=timedelta(hours=n))
        records.start(record.id, os.getpid(), host=HOST, now=record.created_at)
        records.complete(
            record.id,
            completed_at=record.created_at + timedelta(seconds=90),
            size_bytes=1000,
            size_compressed=400,
            checksum="ab" * 32,
            manifest=f"manifests/{record.id}",
            parent_id=chain[-1].id if chain else None,
        )
        chain.append(record)
    return chain


def test_a_failed_verification_fails_every_backup_built_on_it(records: BackupRecords) -> None:
    # An incremental backup restores only on top of its whole chain: with its full
    # backup's chunks lost, its children were still good (status green, retention's
    # newest good backup, a Restore button), and none of them could be restored.
    full, child, grandchild, own_fault = physical_chain(records, 4)
    other = completed(records, pending(records, kind=BackupKind.INCREMENTAL))
    records.set_verified(child.id, T0 + timedelta(hours=5))  # a restore test passed
    records.set_verified(own_fault.id, T0 + timedelta(hours=6), verified=False, problem="own")
    when = T0 + timedelta(days=1)
    records.set_verified(full.id, when, verified=False, problem="damaged: 3 chunks lost")
    for record in (child, grandchild):
        assert (record.is_verified, record.verified_at) == (False, when)
        assert record.error_message == (
            f"cannot be restored: backup {full.id}, of the chain it is incremental on, "
            "failed verification"
        )
    assert own_fault.error_message == "own"  # known bad already: its own reason stays
    assert other.verified_at is None  # not of the chain


def test_a_backup_completed_on_a_parent_found_damaged_meanwhile_is_not_good(
    records: BackupRecords,
) -> None:
    (parent,) = physical_chain(records, 1)
    child = pending(records, kind=BackupKind.INCREMENTAL, offset=timedelta(hours=1))
    records.start(child.id, os.getpid(), host=HOST, now=child.created_at)
    records.set_verified(parent.id, T0 + timedelta(hours=2), verified=False, problem="lost")
    records.complete(
        child.id,
        completed_at=T0 + timedelta(hours=3),
        size_bytes=1000,
        size_compressed=400,
        checksum="ab" * 32,
        manifest=f"manifests/{child.id}",
        parent_id=parent.id,
    )
    assert (child.is_verified, child.verified_at) == (False, T0 + timedelta(hours=2))
    assert f"backup {parent.id}, of the chain" in (child.error_message or "")


# -- listing ----------------------------------------------------------------------------


def test_list_filters_and_orders_newest_first(records: BackupRecords) -> None:
    erp_full = pending(records, offset=timedelta(hours=1))
    erp_incr = pending(records, kind=BackupKind.INCREMENTAL, offset=timedelta(hours=2))
    crm_full = pending(records, database="crm", offset=timedelta(hours=3))
    files = pending(records, kind=BackupKind.FILES, database="uploads", offset=timedelta(0))
    completed(records, erp_full)
    records.fail(crm_full.id, "boom")

    def ids(found: list[BackupRecord]) -> list[str]:
        return [r.id for r in found]

    assert ids(records.list()) == [crm_full.id, erp_incr.id, erp_full.id, files.id]
    assert ids(records.list(database="erp")) == [erp_incr.id, erp_full.id]
    assert ids(records.list(kind=BackupKind.FULL)) == [crm_full.id, erp_full.id]
    assert ids(records.list(status=BackupStatus.FAILED)) == [crm_full.id]
    assert ids(records.list(database="erp", kind=BackupKind.FULL)) == [erp_full.id]
    assert ids(records.list(status=BackupStatus.PENDING, limit=1)) == [erp_incr.id]
    assert records.list(database="nowhere") == []
    with pytest.raises(ValueError, match="limit"):
        records.list(limit=0)


def test_records_made_in_the_same_second_list_by_id(records: BackupRecords) -> None:
    made = [pending(records) for _ in range(5)]
    assert [r.id for r in records.list()] == sorted((r.id for r in made), reverse=True)


# -- crash recovery -----------------------------------------------------------------------


def test_fail_abandoned_fails_dead_workers_and_spares_live_ones(records: BackupRecords) -> None:
    # Records without a job (written before jobs, or outside any job): their pid decides.
    dead = pending(records)
    records.start(dead.id, dead_pid(), host=HOST, now=T0)
    alive = pending(records)
    records.start(alive.id, os.getpid(), host=HOST, now=T0)
    elsewhere = pending(records)  # a pid on another machine means nothing here
    records.start(elsewhere.id, dead_pid(), host="other-host", now=T0)
    waiting = pending(records)  # no worker yet: nothing to check
    orphan = records.create_pending(  # its creator died before starting it
        kind=BackupKind.FULL,
        repository="local",
        triggered_by=TriggeredBy.CLI,
        retention_days=7,
        now=T0 + timedelta(seconds=1),
    )
    orphan.worker_pid, orphan.worker_host = dead_pid(), HOST  # as older versions wrote it

    failed = records.fail_abandoned(T0 + timedelta(minutes=1), host=HOST)

    assert [r.id for r in failed] == [dead.id, orphan.id]
    assert orphan.status is BackupStatus.FAILED
    assert orphan.duration is None
    assert dead.status is BackupStatus.FAILED
    assert dead.error_message == (
        f"process {dead.worker_pid} died during the backup (found at start-up)"
    )
    assert dead.completed_at == T0 + timedelta(minutes=1)
    assert alive.status is BackupStatus.IN_PROGRESS
    assert elsewhere.status is BackupStatus.IN_PROGRESS
    assert waiting.status is BackupStatus.PENDING
    # Idempotent: nothing more to find.
    assert records.fail_abandoned(T0 + timedelta(minutes=2), host=HOST) == []


def test_fail_abandoned_uses_the_injected_liveness_check(records: BackupRecords) -> None:
    record = pending(records)
    records.start(record.id, 12345, host=HOST, now=T0)
    asked: list[int] = []

    def is_alive(pid: int) -> bool:
        asked.append(pid)
        return False

    assert records.fail_abandoned(T0, is_alive=is_alive, host=HOST) == [record]
    assert asked == [12345]


# -- rebuilding from manifests --------------------------------------------------------------


def manifest_values(backup_id: str) -> ManifestValues:
    return ManifestValues(
        id=backup_id,
        backup_type=BackupKind.FULL,
        repository="local",
        manifest=f"manifests/{backup_id}",
        started_at=T0,
        completed_at=T0 + timedelta(minutes=1),
        database_name="erp",
        size_bytes=5000,
        size_compressed=2000,
        stored_new_bytes=100,
        checksum="ef" * 32,
        database_version="16.4",
        tool_version="0.1.0",
        retention_days=30,
    )


def test_upsert_from_manifest_inserts_then_is_idempotent(catalog: Catalog) -> None:
    values = manifest_values("20261128T083000Z-0badcafe")
    with catalog.begin() as session:
        record, created = BackupRecords(session).upsert_from_manifest(values)
        assert created is True
        first = record_to_api(record)
    with catalog.begin() as session:
        record, created = BackupRecords(session).upsert_from_manifest(values)
        assert created is False
        assert record_to_api(record) == first
    assert first["status"] == "completed"
    assert first["timestamp"] == "2026-11-28T08:30:00Z"
    assert first["duration"] == 60.0
    assert first["expiresAt"] == "2026-12-28T08:31:00Z"
    assert first["isVerified"] is False
    assert first["triggeredBy"] is None


def test_upsert_from_manifest_keeps_what_the_catalog_owns(records: BackupRecords) -> None:
    record = completed(records, pending(records))
    records.set_verified(record.id, T0 + timedelta(hours=1))
    values = replace(
        manifest_values(record.id), repository="offsite", size_bytes=999, retention_days=None
    )
    updated, created = records.upsert_from_manifest(values)
    assert created is False
    assert updated.size_bytes == 999
    assert (updated.is_verified, updated.verified_at) == (True, T0 + timedelta(hours=1))
    assert updated.repository == "local"
    assert updated.triggered_by is TriggeredBy.CLI
    assert updated.retention_days == 7  # the manifest did not say
    assert updated.worker_pid == os.getpid()


def test_a_manifest_proves_an_abandoned_backup_completed(records: BackupRecords) -> None:
    # The crash came after the manifest was written but before the record was updated.
    record = pending(records)
    records.start(record.id, dead_pid(), host=HOST, now=T0)
    records.fail_abandoned(T0 + timedelta(minutes=5), host=HOST)
    assert record.status is BackupStatus.FAILED
    updated, _ = records.upsert_from_manifest(manifest_values(record.id))
    assert updated.status is BackupStatus.COMPLETED
    assert updated.error_message is None
    assert updated.completed_at == T0 + timedelta(minutes=1)


def test_a_backup_verified_again_gives_its_chain_back(records: BackupRecords) -> None:
    # A restore test of the full backup failed for a passing reason (a disk full) and
    # passed again: every incremental built on it stayed 'failed verification' for good,
    # none a recovery point nor offered for restore, all restorable.
    full, child, own_fault, below_fault = physical_chain(records, 4)
    records.set_verified(full.id, T0 + timedelta(hours=5), verified=False, problem="disk full")
    records.set_verified(own_fault.id, T0 + timedelta(hours=6), verified=False, problem="own")
    # One completed meanwhile on a child failed for the chain's sake: failed, after it.
    late = pending(records, kind=BackupKind.INCREMENTAL, offset=timedelta(hours=7))
    records.start(late.id, os.getpid(), host=HOST, now=late.created_at)
    records.complete(
        late.id,
        completed_at=late.created_at + timedelta(seconds=90),
        size_bytes=1000,
        size_compressed=400,
        checksum="ab" * 32,
        manifest=f"manifests/{late.id}",
        parent_id=child.id,
    )
    assert late.verified_at is not None and not late.is_verified

    records.set_verified(full.id, T0 + timedelta(days=1))

    for record in (child, late):
        assert (record.is_verified, record.verified_at, record.error_message) == (
            False,
            None,
            None,
        )
    assert (own_fault.verified_at, own_fault.error_message) == (T0 + timedelta(hours=6), "own")
    # Below one that failed on its own: it restores only on top of that one.
    assert below_fault.verified_at is not None and not below_fault.is_verified


def test_a_rebuilt_catalog_fails_the_backups_built_on_a_damaged_one(
    records: BackupRecords,
) -> None:
    # catalog rebuild marks a backup repair found damaged again, oldest first: the
    # incrementals built on it were inserted after it, good, each a recovery point the
    # status, retention and the Restore button counted on, none restorable.
    full = "20261128T083000Z-0badcafe"
    child = "20261129T083000Z-0badcafe"
    records.upsert_from_manifest(replace(manifest_values(full), backup_type=BackupKind.INCREMENTAL))
    records.set_verified(full, T0 + timedelta(hours=2), verified=False, problem="3 chunks lost")
    record, _ = records.upsert_from_manifest(
        replace(manifest_values(child), backup_type=BackupKind.INCREMENTAL, parent_id=full)
    )
    assert (record.is_verified, record.verified_at) == (False, T0 + timedelta(hours=2))
    assert f"backup {full}, of the chain" in (record.error_message or "")
    # Rebuilt again: it stays failed.
    again, _ = records.upsert_from_manifest(
        replace(manifest_values(child), backup_type=BackupKind.INCREMENTAL, parent_id=full)
    )
    assert again.verified_at == T0 + timedelta(hours=2) and not again.is_verified
    assert again.error_message == record.error_message
