"""The application layer's session: repositories opened once, on demand, and closed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from respaldo.config import Settings
from respaldo.errors import ConfigError, PermanentStorageError
from respaldo.operations.repositories import open_repository
from respaldo.repository import Repository
from respaldo.repository.locks import reading_lease
from tests.unit.operations.support import Installation

pytestmark = pytest.mark.unit


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Installation]:
    installation = Installation.create(tmp_path)
    yield installation
    installation.close()


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Repository]:
    """Every repository the context opens, in order."""
    repos: list[Repository] = []

    def spy(settings: Settings, name: str | None = None) -> Repository:
        repo = open_repository(settings, name)
        repos.append(repo)
        return repo

    monkeypatch.setattr("respaldo.operations.context.open_repository", spy)
    return repos


def test_a_repository_is_opened_once_and_only_when_asked(
    inst: Installation, opened: list[Repository]
) -> None:
    with inst.context() as ctx:
        assert opened == []  # nothing opened before an operation needs it
        primary = ctx.repository()
        assert ctx.repository() is primary
        assert ctx.repository("local") is primary  # the primary by name is the same one
        second = ctx.repository("second")
        assert second is not primary
        assert ctx.repository("second") is second
    assert opened == [primary, second]


def test_close_closes_every_opened_repository_then_the_catalog(
    inst: Installation, opened: list[Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[object] = []
    monkeypatch.setattr(Repository, "close", lambda self: closed.append(self))
    ctx = inst.context()
    primary, second = ctx.repository(), ctx.repository("second")
    ctx.close()
    assert closed == [primary, second]
    ctx.close()  # twice is harmless, and closes nothing again
    assert closed == [primary, second]


def test_an_unknown_repository_opens_nothing(inst: Installation, opened: list[Repository]) -> None:
    with inst.context() as ctx, pytest.raises(ConfigError):
        ctx.repository("nowhere")
    assert opened == []


def test_opened_repositories_compress_at_the_configured_levels(
    inst: Installation, opened: list[Repository]
) -> None:
    with inst.context() as ctx:
        sealer = ctx.repository().sealer
        assert (sealer.compression_level, sealer.compressible_level) == (1, 0)
    inst.config.write_text(
        "compression_level = 2\ncompressible_level = 9\n" + inst.config.read_text()
    )
    with inst.context() as ctx:
        sealer = ctx.repository().sealer
        assert (sealer.compression_level, sealer.compressible_level) == (2, 9)


def test_a_mirror_whose_disk_is_unmounted_is_missing_not_made_again_in_its_mount_point(
    inst: Installation,
) -> None:
    # A long-lived context (respaldo serve) keeps the mirror open. Its disk unmounted
    # leaves the mount point, an empty directory: a read lock taken then made locks/ in
    # it (on the disk holding the mount point), and the mirror was half made, not missing.
    with inst.context() as ctx:
        mirror = ctx.repository("second")
        mount_point = inst.root / "second"
        mount_point.rename(inst.root / "second-disk")
        mount_point.mkdir()
        with (
            pytest.raises(PermanentStorageError, match="not there any more"),
            reading_lease(mirror, "verify"),
        ):
            pass
        assert list(mount_point.iterdir()) == []
