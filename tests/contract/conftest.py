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
from tests.servers.s3 import S3Endpoint

StoreFactory = Callable[[pytest.FixtureRequest, Path], Storage]


def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return MemoryStorage(request.node.name)


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    # A root that does not exist yet: the first put must create it.
    return LocalStorage(tmp_path / "store")


def _s3(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    # A real SeaweedFS server started once per session (tests/servers/s3.py); each test
    # gets a prefix of its own in the shared bucket, so it starts empty. A server that
    # fails to start fails these tests: it is never a skip.
    server: S3Endpoint = request.getfixturevalue("s3_server")
    return server.storage()


def _s3_moto(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    server: S3Endpoint = request.getfixturevalue("moto_server")
    return server.storage()


def _locked(server: S3Endpoint) -> Storage:
    # A versioned bucket with Object Lock, everything written locked (COMPLIANCE: not even
    # the admin can remove a version): deletes leave delete markers, and every promise of
    # the contract must still hold. SeaweedFS enforces locks; moto also insists, as AWS
    # does, on the Content-MD5 of locked uploads.
    return server.storage(
        bucket=server.locked_bucket, object_lock_mode="COMPLIANCE", object_lock_days=1
    )


def _s3_locked(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return _locked(request.getfixturevalue("s3_server"))


def _s3_moto_locked(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return _locked(request.getfixturevalue("moto_server"))


BACKENDS: dict[str, StoreFactory] = {
    "memory": _memory,
    "local": _local,
    "s3": _s3,
    "s3-moto": _s3_moto,
    "s3-locked": _s3_locked,
    "s3-moto-locked": _s3_moto_locked,
}


@pytest.fixture(params=list(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """An empty store of each backend in turn."""
    backend = BACKENDS[request.param]
    instance = backend(request, tmp_path)
    yield instance
    instance.close()
