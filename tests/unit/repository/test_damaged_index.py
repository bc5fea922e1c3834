"""One damaged index file: read around it, and say that 'respaldo index rebuild' fixes it.

The index is an accelerator; the pack headers say the same. A damaged index file must not
stop a restore of backups whose chunks other index files describe, nor of backups whose
chunks only it described (their packs' headers still do), and verification must report it
as a problem found, not fail to open the repository.
"""

from __future__ import annotations

import logging

import pytest

from respaldo.errors import IntegrityError
from respaldo.repository import Repository, rebuild_index, verify_repository
from respaldo.repository.gc import collect_garbage
from respaldo.repository.verify import verify_subset
from respaldo.storage.base import Storage
from tests.unit.repository.helpers import (
    flip_byte,
    names,
    open_repo,
    random_bytes,
    read_stream,
    snapshot,
    write_backup,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def damaged(storage: Storage, repo: Repository) -> tuple[dict[str, bytes], str]:
    """Two backups, each described by index files of its own; b2's are damaged."""
    datas = {"b1": random_bytes(40_000, seed=1), "b2": random_bytes(40_000, seed=2)}
    write_backup(repo, "b1", {"dump": datas["b1"]})
    before = set(names(storage, "index/"))
    write_backup(repo, "b2", {"dump": datas["b2"]})
    (of_b2,) = set(names(storage, "index/")) - before
    flip_byte(storage, of_b2, 40)
    return datas, of_b2


def test_a_damaged_index_file_is_named_once_and_the_rest_loads(
    storage: Storage,
    damaged: tuple[dict[str, bytes], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    datas, bad = damaged
    with caplog.at_level(logging.WARNING):
        reopened = open_repo(storage)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert bad in warnings[0]
    assert "respaldo index rebuild" in warnings[0]
    assert set(reopened.damaged_index_files) == {bad}
    # Backups whose chunks other index files describe restore as ever...
    assert read_stream(reopened, reopened.load_manifest("b1")) == datas["b1"]
    # ...and so do those whose chunks only the damaged file described: the headers of
    # the packs no loaded index file describes still say where every chunk is.
    assert read_stream(reopened, reopened.load_manifest("b2")) == datas["b2"]


def test_verify_reports_the_damaged_file_as_a_problem_and_checks_every_backup(
    storage: Storage, damaged: tuple[dict[str, bytes], str]
) -> None:
    _, bad = damaged
    before = snapshot(storage)
    report = verify_repository(open_repo(storage))
    assert [(p.obj, "index file is damaged" in p.message) for p in report.problems] == [(bad, True)]
    assert report.backups == 2
    assert snapshot(storage) == before  # reading around it wrote nothing


def test_a_chunk_only_a_damaged_index_knew_and_no_pack_holds_says_rebuild(
    storage: Storage, damaged: tuple[dict[str, bytes], str]
) -> None:
    """When even the pack headers do not have it, the message says which chunk is missing
    and that the index is damaged, and the hint says what fixes what can be fixed."""
    _, bad = damaged
    reopened = open_repo(storage)
    b2 = reopened.load_manifest("b2")
    b1_packs = reopened.index.packs()
    for name in names(storage, "packs/"):
        if name.rsplit("/", 1)[-1] not in b1_packs:
            storage.delete(name)
    with pytest.raises(IntegrityError) as info:
        read_stream(open_repo(storage), b2)
    assert "not in the index" in str(info.value)
    assert bad in str(info.value)
    assert "respaldo index rebuild" in info.value.hint


def test_index_rebuild_replaces_the_damaged_file(
    storage: Storage, damaged: tuple[dict[str, bytes], str]
) -> None:
    datas, bad = damaged
    reopened = open_repo(storage)
    report = rebuild_index(reopened)
    assert report.problems == []
    assert bad not in names(storage, "index/")
    fresh = open_repo(storage)
    assert fresh.damaged_index_files == {}
    assert verify_repository(fresh).ok
    for backup_id, data in datas.items():
        assert read_stream(fresh, fresh.load_manifest(backup_id)) == data


def test_garbage_collection_refuses_while_an_index_file_is_damaged(
    storage: Storage, damaged: tuple[dict[str, bytes], str]
) -> None:
    """Collection must know every pack: the packs only the damaged file described would
    look unindexed to it, and be deleted."""
    _, bad = damaged
    before = snapshot(storage)
    with pytest.raises(IntegrityError, match="index file is damaged") as info:
        collect_garbage(open_repo(storage))
    assert info.value.obj == bad
    assert "respaldo index rebuild" in info.value.hint
    assert snapshot(storage) == before


def test_a_subset_verification_names_the_damaged_file(
    storage: Storage, damaged: tuple[dict[str, bytes], str]
) -> None:
    """A rolling check slices the chunks of the index: those only the damaged file
    described would silently never be checked."""
    _, bad = damaged
    report = verify_subset(open_repo(storage), 1, 1)
    assert [p.obj for p in report.problems] == [bad]


def test_a_backup_does_not_deduplicate_against_what_only_pack_headers_describe(
    storage: Storage, damaged: tuple[dict[str, bytes], str]
) -> None:
    """Packs no index file describes may be collected: readers may use their headers,
    writers store the chunks again (and index them)."""
    datas, _ = damaged
    reopened = open_repo(storage)
    assert read_stream(reopened, reopened.load_manifest("b2")) == datas["b2"]
    _, stats = write_backup(reopened, "b3", {"dump": datas["b2"]})
    assert stats.new_chunks == stats.chunks
    fresh = open_repo(storage)
    assert read_stream(fresh, fresh.load_manifest("b3")) == datas["b2"]
