"""Fixtures of the repository tests.

``storage`` runs a test once over each in-process backend (memory and a local directory);
``memory_storage``/``mem_repo`` are for tests whose subject is not the backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from respaldo.repository import Repository
from respaldo.storage.base import Storage
from respaldo.storage.local import LocalStorage
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import init_repo


@pytest.fixture(params=["memory", "local"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """An empty store of each backend in turn."""
    store: Storage
    if request.param == "memory":
        store = MemoryStorage(request.node.name)
    else:
        # A root that does not exist yet, as for a first 'respaldo init'.
        store = LocalStorage(tmp_path / "repo")
    yield store
    store.close()


@pytest.fixture
def memory_storage(request: pytest.FixtureRequest) -> MemoryStorage:
    return MemoryStorage(request.node.name)


@pytest.fixture
def repo(storage: Storage) -> Repository:
    """A new, empty repository on each backend in turn."""
    return init_repo(storage)


@pytest.fixture
def mem_repo(memory_storage: MemoryStorage) -> Repository:
    """A new, empty repository in memory."""
    return init_repo(memory_storage)
