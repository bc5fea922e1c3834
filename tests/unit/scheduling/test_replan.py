"""The schedule follows WAL archiving while ``respaldo serve`` runs: a database whose WAL
the primary repository starts to archive (``wal-push`` set up after the service started)
gets its physical backups, and the RPO watchdog watches them, without a restart. The
repository and the catalog are real."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from respaldo.repository.wal import ClusterRecord, write_cluster
from respaldo.scheduling.service import Service
from tests.unit.operations.support import NOW, PASSPHRASE, Installation

pytestmark = pytest.mark.unit


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Installation]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    installation = Installation.create(tmp_path, secondary=False)
    try:
        yield installation
    finally:
        installation.close()


def test_archiving_turned_on_while_serving_schedules_physical_backups_at_the_next_check(
    setup: Installation,
) -> None:
    service = Service.create(setup.ctx)
    service.start()
    try:
        assert "incremental:erp" not in service.next_run_times()
        # wal-push runs for the first time: the repository now holds erp's cluster record.
        write_cluster(
            setup.repository(), ClusterRecord("erp", "7312345678901234567", NOW, "wal-push")
        )
        service.watch()  # what the scheduler calls every [rpo] watchdog_minutes
        times = service.next_run_times()
        assert "incremental:erp" in times and "incremental:crm" not in times
        assert times["incremental:erp"] is not None
        assert times["incremental:erp"] > datetime.now(UTC)
        assert [e.name for e in service.schedule if e.name.startswith("incremental:")] == [
            "incremental:erp"
        ]
    finally:
        service.stop("test over")


def test_a_service_whose_repository_cannot_be_read_starts_and_schedules_it_when_it_answers(
    setup: Installation, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_cluster(setup.repository(), ClusterRecord("erp", "7312345678901234567", NOW, "wal-push"))
    # The primary repository is not there as the service starts (a mount not up yet, an
    # object store that does not answer): the service must still start, or nothing runs
    # and nothing is told (the watchdog is the service's).
    repo = tmp_path / "repo"
    aside = repo.with_name("repo.aside")
    repo.rename(aside)
    try:
        with caplog.at_level(logging.ERROR, logger="respaldo.scheduling.service"):
            service = Service.create(setup.ctx)
    finally:
        aside.rename(repo)
    assert any("repository" in r.getMessage() for r in caplog.records)
    names = {e.name for e in service.schedule}
    assert {"full:erp", "cleanup", "verify"} <= names and "incremental:erp" not in names
    service.start()
    try:
        service.watch()  # the repository answers again
        assert "incremental:erp" in service.next_run_times()
    finally:
        service.stop("test over")
