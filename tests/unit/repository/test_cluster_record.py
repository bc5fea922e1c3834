"""The cluster record (``clusters/<database>``): the switch to ``wal_level = minimal``
kept beside the system identifier, and the record without it as older versions wrote it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from respaldo.repository import Repository
from respaldo.repository.wal import ClusterRecord, read_cluster, write_cluster

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 6, 22, 30, tzinfo=UTC)


def test_a_record_without_a_switch_is_as_older_versions_wrote_it() -> None:
    record = ClusterRecord("erp", "7716323556378723743", AT, "wal-push")
    assert json.loads(record.to_bytes()) == {
        "version": 1,
        "database": "erp",
        "system_identifier": "7716323556378723743",
        "recorded_at": AT.isoformat(),
        "recorded_by": "wal-push",
    }
    assert ClusterRecord.from_bytes(record.to_bytes()) == record


def test_the_switch_to_minimal_is_kept_through_the_repository(repo: Repository) -> None:
    record = ClusterRecord("erp", "7716323556378723743", AT, "wal-push", minimal_wal="0/40000A0")
    write_cluster(repo, record)
    assert read_cluster(repo, "erp") == record
