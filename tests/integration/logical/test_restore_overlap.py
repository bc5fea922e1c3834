"""A restore's fixed costs overlap: the database's properties are read from the dump while
the staging database is being created (docs/benchmarks.md, "Restore profile (session 4)"),
and a failure to read them still leaves nothing behind."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sample.cluster import TempCluster

import respaldo.operations.restore as restore_module
from respaldo.errors import RestoreError
from respaldo.operations.restore_props import read_database_properties
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases, staging_databases, table_checksums

pytestmark = pytest.mark.integration

# Only reached when the two steps run one after the other (the failure being tested for).
NEVER = 120


def test_properties_are_read_while_the_staging_database_is_created(
    respaldo: Respaldo, pg: TempCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_id = respaldo.backup()["id"]
    created = threading.Event()
    real_read = read_database_properties
    real_create = restore_module.create_empty_database

    def read(*args: Any, **kwargs: Any) -> Any:
        # Done one after the other, the staging database is created only after this
        # returns: the wait then runs out and the restore fails.
        assert created.wait(NEVER), "the properties were read before the database was made"
        return real_read(*args, **kwargs)

    def create(*args: Any, **kwargs: Any) -> None:
        real_create(*args, **kwargs)
        created.set()

    monkeypatch.setattr(restore_module, "read_database_properties", read)
    monkeypatch.setattr(restore_module, "create_empty_database", create)
    respaldo.restore(backup_id, "overlapped")
    assert table_checksums(pg, "overlapped") == table_checksums(pg, respaldo.dbname)
    assert staging_databases(pg) == set()


def test_properties_that_cannot_be_read_leave_nothing_behind(
    respaldo: Respaldo, pg: TempCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    backup_id = respaldo.backup()["id"]
    before = databases(pg)
    created = threading.Event()
    real_create = restore_module.create_empty_database

    def read(*args: Any, **kwargs: Any) -> Any:
        assert created.wait(NEVER)
        raise RestoreError("the properties cannot be read", hint="nothing was changed")

    def create(*args: Any, **kwargs: Any) -> None:
        real_create(*args, **kwargs)
        created.set()

    monkeypatch.setattr(restore_module, "read_database_properties", read)
    monkeypatch.setattr(restore_module, "create_empty_database", create)
    run = respaldo.run("restore", backup_id, "--target-database", "never_made")
    assert run.code != 0
    assert "the properties cannot be read" in run.err
    assert "Traceback" not in run.err
    assert databases(pg) == before
    assert staging_databases(pg) == set()
