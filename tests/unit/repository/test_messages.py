"""Messages about damage name the backup and the object once, however often they are
passed on (an IntegrityError's context was appended again by whoever reported it)."""

from __future__ import annotations

import pytest

from respaldo.errors import IntegrityError
from respaldo.repository import (
    Repository,
    collect_garbage,
    rebuild_index,
    verify_backups,
    verify_repository,
)
from respaldo.storage.base import Storage
from tests.unit.repository.helpers import (
    flip_byte,
    names,
    open_repo,
    random_bytes,
    write_backup,
)

pytestmark = pytest.mark.unit


def _once(text: str, *parts: str) -> None:
    for part in parts:
        assert text.count(part) == 1, f"{part!r} appears {text.count(part)} times in {text!r}"


def test_an_integrity_errors_message_is_without_its_context() -> None:
    exc = IntegrityError("pack is too short", obj="packs/ab/abc", backup="b1")
    assert str(exc) == "pack is too short [backup b1] [object packs/ab/abc]"
    assert exc.message == "pack is too short"


def test_a_damaged_manifest_in_verify(storage: Storage, repo: Repository) -> None:
    write_backup(repo, "b1", {"dump": random_bytes(20_000, seed=1)})
    flip_byte(storage, "manifests/b1", 30)
    (problem,) = verify_backups(open_repo(storage), ["b1"]).problems
    _once(str(problem), "backup b1", "object manifests/b1")


def test_a_damaged_pack_header_in_verify_and_index_rebuild(
    storage: Storage, repo: Repository
) -> None:
    write_backup(repo, "b1", {"dump": random_bytes(20_000, seed=1)})
    pack = names(storage, "packs/")[0]
    data = storage.get(pack)
    storage.put(pack, data[:8])  # too short for a trailer
    report = verify_repository(open_repo(storage))
    assert report.problems
    for problem in report.problems:
        _once(str(problem), f"object {pack}")
    (problem,) = rebuild_index(open_repo(storage, load_index=False)).problems
    _once(str(problem), f"object {pack}")


def test_a_damaged_manifest_stops_collection_with_one_context(
    storage: Storage, repo: Repository
) -> None:
    write_backup(repo, "b1", {"dump": random_bytes(20_000, seed=1)})
    flip_byte(storage, "manifests/b1", 30)
    with pytest.raises(IntegrityError) as caught:
        collect_garbage(open_repo(storage))
    _once(str(caught.value), "[backup b1]", "[object manifests/b1]")
    assert str(caught.value).startswith("refusing to collect garbage: manifest is damaged")
