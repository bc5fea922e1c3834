"""Backends the storage contract suite runs over.

Each entry of :data:`BACKENDS` turns the test's request and a fresh temporary directory into
an empty store; the ``store`` fixture is parametrised over the entries, so every test of
``test_storage_contract.py`` runs once per backend. To add a backend, write a factory and
add it to the mapping: nothing in the tests changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from respaldo.storage.base import Storage
from respaldo.storage.local import LocalStorage
from respaldo.storage.memory import MemoryStorage

StoreFactory = Callable[[pytest.FixtureRequest, Path], Storage]


def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return MemoryStorage(request.node.name)


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    # A root that does not exist yet: the first put must create it.
    return LocalStorage(tmp_path / "store")


# S3 goes here. Its factory will ask for the session fixture that starts the real
# S3-compatible server (``request.getfixturevalue(...)``, defined in a conftest that both
# suites can see) and return an S3 store on a fresh bucket, or on a prefix unique to the
# test, so that every test starts empty:
#
#     def _s3(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
#         server = request.getfixturevalue("s3_server")
#         return S3Storage(bucket=..., prefix=f"contract/{uuid4().hex}/", endpoint_url=...)
#
#     BACKENDS["s3"] = _s3
#
# A server that fails to start must fail these tests, not skip them.
BACKENDS: dict[str, StoreFactory] = {
    "memory": _memory,
    "local": _local,
}


@pytest.fixture(params=list(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """An empty store of each backend in turn."""
    backend = BACKENDS[request.param]
    instance = backend(request, tmp_path)
    yield instance
    instance.close()
