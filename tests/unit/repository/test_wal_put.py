"""Archiving a WAL file whose archived copy is damaged (:func:`put_wal`)."""

from __future__ import annotations

import pytest

from respaldo.repository import Repository
from respaldo.repository.wal import PutOutcome, get_wal, put_wal, wal_object
from tests.unit.repository.helpers import flip_byte, random_bytes

pytestmark = pytest.mark.unit

SYSTEM_ID = "7000000000000000001"
TIMELINE = "00000001"
SEGMENT = "000000010000000000000005"


def test_a_segment_pushed_again_over_its_damaged_copy_replaces_it(repo: Repository) -> None:
    """PostgreSQL archives a segment again when it did not see the first success (a
    crash before its .done file): before, a damaged copy in the archive made every push
    of that segment fail, and the server, retrying it for ever, archived nothing after it
    while pg_wal grew. The server's segment is the one good copy there is."""
    data = random_bytes(20_000, seed=5)
    assert put_wal(repo, SYSTEM_ID, TIMELINE, SEGMENT, data) is PutOutcome.STORED
    flip_byte(repo.storage, wal_object(SYSTEM_ID, TIMELINE, SEGMENT), 100)

    assert put_wal(repo, SYSTEM_ID, TIMELINE, SEGMENT, data) is PutOutcome.STORED

    assert get_wal(repo, SYSTEM_ID, TIMELINE, SEGMENT) == data
    assert put_wal(repo, SYSTEM_ID, TIMELINE, SEGMENT, data) is PutOutcome.SAME
    other = random_bytes(20_000, seed=6)
    assert put_wal(repo, SYSTEM_ID, TIMELINE, SEGMENT, other) is PutOutcome.DIFFERENT


def test_a_segment_found_again_is_made_durable_before_it_is_said_archived(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier push killed after its rename and before its last fsync left the
    segment readable but not safe from a power cut; the server removes its own copy once
    a second push says it is archived, so that push syncs the object it found."""
    data = random_bytes(20_000, seed=6)
    assert put_wal(repo, SYSTEM_ID, TIMELINE, SEGMENT, data) is PutOutcome.STORED
    synced: list[str] = []
    real = repo.storage.sync

    def sync(name: str) -> None:
        synced.append(name)
        real(name)

    monkeypatch.setattr(repo.storage, "sync", sync)
    assert put_wal(repo, SYSTEM_ID, TIMELINE, SEGMENT, data) is PutOutcome.SAME
    assert synced == [wal_object(SYSTEM_ID, TIMELINE, SEGMENT)]
    # Other content under the name: refused, nothing synced.
    assert put_wal(repo, SYSTEM_ID, TIMELINE, SEGMENT, data[::-1]) is PutOutcome.DIFFERENT
    assert synced == [wal_object(SYSTEM_ID, TIMELINE, SEGMENT)]
