"""Fixtures of the operation tests: the repository passphrase in the environment, and
writes that skip the disk flush for the tests that opt in."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import Pool

from tests.unit.operations.support import PASSPHRASE


@pytest.fixture(autouse=True)
def passphrase(monkeypatch: pytest.MonkeyPatch, clean_env: object) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)


def _sqlite_unsynced(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous = OFF")


@pytest.fixture
def no_disk_sync(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No fsync of the local repositories' files and directories, and none of the SQLite
    catalog's commits, for tests that build histories of weeks of backups (the prune
    tests): flushing each pack, directory and transaction to a loaded machine's disk cost
    a third of their time, and what they check (which backups are kept, what is deleted
    and reclaimed) does not depend on it. What was written is still all there for every
    read; only a power cut could tell. The flushes themselves are checked by
    tests/unit/storage (test_local*.py) and, for real, by the fault scenarios."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    sa.event.listen(Pool, "connect", _sqlite_unsynced)
    try:
        yield
    finally:
        sa.event.remove(Pool, "connect", _sqlite_unsynced)
