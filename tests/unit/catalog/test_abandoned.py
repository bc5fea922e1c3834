"""Finding abandoned records without changing them, and sparing some when failing them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from respaldo.catalog import BackupRecords, Catalog
from respaldo.domain import BackupKind, BackupStatus, TriggeredBy

from .support import T0

pytestmark = pytest.mark.unit

HOST = "test-host"
DEAD = 4242


def _is_alive(pid: int) -> bool:
    return pid != DEAD


def _started(records: BackupRecords, pid: int) -> str:
    record = records.create_pending(
        kind=BackupKind.FULL,
        repository="local",
        triggered_by=TriggeredBy.CLI,
        retention_days=7,
        database_name="erp",
        now=T0,
    )
    records.start(record.id, pid, host=HOST, now=T0)
    return record.id


def test_abandoned_finds_without_changing(catalog: Catalog) -> None:
    with catalog.begin() as session:
        records = BackupRecords(session)
        gone = _started(records, DEAD)
        alive = _started(records, 1)
    with catalog.begin() as session:
        found = BackupRecords(session).abandoned(
            T0 + timedelta(minutes=1), host=HOST, is_alive=_is_alive
        )
        assert [(r.id, reason) for r, reason in found] == [
            (gone, f"process {DEAD} died during the backup (found at start-up)")
        ]
    with catalog.begin() as session:
        records = BackupRecords(session)
        assert records.get(gone).status is BackupStatus.IN_PROGRESS
        assert records.get(alive).status is BackupStatus.IN_PROGRESS


def test_fail_abandoned_spares_what_it_is_told_to(catalog: Catalog) -> None:
    with catalog.begin() as session:
        records = BackupRecords(session)
        spared = _started(records, DEAD)
        failed = _started(records, DEAD)
    with catalog.begin() as session:
        done = BackupRecords(session).fail_abandoned(
            T0 + timedelta(minutes=1), host=HOST, is_alive=_is_alive, spare=[spared]
        )
        assert [r.id for r in done] == [failed]
    with catalog.begin() as session:
        records = BackupRecords(session)
        assert records.get(spared).status is BackupStatus.IN_PROGRESS
        assert records.get(failed).status is BackupStatus.FAILED
