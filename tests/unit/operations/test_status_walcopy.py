"""``walcopy:<db>:<repository>``: how long a mirror has lacked archived WAL that the
primary repository holds, with the clock in the test's hand. The repositories and the
catalog are real; the server's answers are given (read_server replaced)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from respaldo.operations import status, watchdog
from respaldo.operations.copy import replicate_wal
from respaldo.operations.status import StatusItem
from respaldo.operations.status_server import ServerReading
from respaldo.postgres.archiver import ArchiverState
from respaldo.repository.wal import ClusterRecord, put_wal, write_cluster
from tests.unit.operations.support import NOW, Installation

pytestmark = pytest.mark.unit
SYSTEM = "7312345678901234567"
MIN = timedelta(minutes=1)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Installation]:
    installation = Installation.create(
        tmp_path,
        extra="[databases.rpo]\nwal_copy_minutes = 10\n",  # crm's own limit
    )
    try:
        yield installation
    finally:
        installation.close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, datetime]]:
    """The last segment each server archived, and when: the last pair put in the list."""
    said: list[tuple[str, datetime]] = []

    def read(db: object, *, archiver: bool, slots: bool = False) -> ServerReading:
        last_wal, last_time = said[-1]
        state = ArchiverState(
            now=last_time,
            archived=1,
            last_wal=last_wal,
            last_time=last_time,
            failed=0,
            failed_wal=None,
            failed_time=None,
            waiting=0,
            oldest_waiting=None,
            unknown_why="",
            unarchived=0,
        )
        return ServerReading(version="16.4", archive_mode="on", archiver=state)

    monkeypatch.setattr(status, "read_server", read)
    return said


def _segment(n: int) -> str:
    return f"00000001{n:016X}"


def archive(setup: Installation, server: list[tuple[str, datetime]], n: int, at: datetime) -> None:
    """Segment ``n`` archived into the primary at ``at`` by both servers (one cluster)."""
    repo = setup.repository()
    for db in ("erp", "crm"):
        write_cluster(repo, ClusterRecord(db, SYSTEM, NOW, "wal-push"))
    put_wal(repo, SYSTEM, "00000001", _segment(n), f"segment {n}".encode())
    server.append((_segment(n), at))


def look(setup: Installation, at: datetime, database: str = "erp") -> StatusItem:
    report = status.compute_status(setup.ctx, at, wal_archived={"erp", "crm"})
    (item,) = [i for i in report.items if i.key == f"walcopy:{database}:second"]
    return item


def test_a_mirror_behind_for_longer_than_wal_copy_minutes_is_red_however_busy_the_server(
    setup: Installation, server: list[tuple[str, datetime]]
) -> None:
    archive(setup, server, 1, NOW - MIN)
    replicate_wal(setup.ctx)
    item = look(setup, NOW)
    assert (item.level, item.check, item.repository) == ("green", "walcopy", "second")
    assert _segment(1) in item.reason and item.limit_seconds == 30 * 60

    # Archived since the last copy: behind, within the limit.
    archive(setup, server, 2, NOW + MIN)
    item = look(setup, NOW + 2 * MIN)
    assert item.level == "green" and item.age_seconds == 60
    assert item.at == NOW + MIN and "second" in item.reason
    # A busy server archives a segment a minute: the newest is always fresh, but the
    # mirror has lacked segment 2 since it was archived; that is what counts.
    for minute in range(3, 32):
        archive(setup, server, minute, NOW + minute * MIN)
    item = look(setup, NOW + 32 * MIN)
    assert item.level == "red"
    assert item.age_seconds == 31 * 60 and item.at == NOW + MIN
    assert "31 min" in item.reason and "30 min" in item.reason
    # crm's own [databases.rpo] wal_copy_minutes.
    crm = look(setup, NOW + 32 * MIN, "crm")
    assert crm.level == "red" and crm.limit_seconds == 10 * 60

    # The next copy brings it up to date: green.
    replicate_wal(setup.ctx)
    assert look(setup, NOW + 33 * MIN).level == "green"
    # Copied up to segment 31 but not 32: behind since 32 was archived, not since before.
    archive(setup, server, 32, NOW + 34 * MIN)
    item = look(setup, NOW + 35 * MIN)
    assert (item.level, item.at) == ("green", NOW + 34 * MIN)


def test_the_watchdog_alerts_on_a_mirror_behind_and_a_look_after_a_restart_counts(
    setup: Installation, server: list[tuple[str, datetime]]
) -> None:
    archive(setup, server, 1, NOW)
    assert look(setup, NOW + MIN).level == "green"
    archive(setup, server, 2, NOW + 20 * MIN)
    # A new context (the service restarted): what the last look noted still counts.
    with setup.context() as restarted:
        result = watchdog.check(restarted, NOW + 31 * MIN, wal_archived=("erp", "crm"))
    (condition,) = [c for c in result.conditions if c.key == "walcopy:erp:second"]
    assert condition.action == "raised"
    message, args = watchdog.describe(
        next(i for i in result.report.items if i.key == "walcopy:erp:second")
    )
    assert message.format(**args) == (
        "archived WAL of erp has not reached second for 31 min (limit 30 min)"
    )


def test_no_item_with_wal_copy_off_or_without_the_server(
    setup: Installation, tmp_path: Path, server: list[tuple[str, datetime]]
) -> None:
    archive(setup, server, 1, NOW)
    report = status.compute_status(setup.ctx, NOW + 60 * MIN, wal_archived={"erp"}, servers=False)
    assert not [i for i in report.items if i.check == "walcopy"]
    (tmp_path / "off").mkdir()
    off = Installation.create(tmp_path / "off", extra='[schedules]\nwal_copy = "off"\n')
    try:
        archive(off, server, 1, NOW)
        report = status.compute_status(off.ctx, NOW + 60 * MIN, wal_archived={"erp"})
        assert [i.key for i in report.items if i.check == "archive"] == ["archive:erp"]
        assert not [i for i in report.items if i.check == "walcopy"]
    finally:
        off.close()


BACKUP_FILE = f"{_segment(2)}.00000028.backup"


def test_after_a_physical_backup_the_backup_file_archived_last_is_looked_for(
    setup: Installation, server: list[tuple[str, datetime]]
) -> None:
    # pg_stat_archiver names the backup history file until the next segment fills (hours
    # on a quiet database): the primary and the mirror are still asked for it.
    archive(setup, server, 1, NOW - MIN)
    replicate_wal(setup.ctx)
    server.append((BACKUP_FILE, NOW))
    report = status.compute_status(setup.ctx, NOW + MIN, wal_archived={"erp", "crm"})
    (archive_item,) = [i for i in report.items if i.key == "archive:erp"]
    assert archive_item.level == "red" and "not in the repository" in archive_item.reason
    put_wal(setup.repository(), SYSTEM, "00000001", BACKUP_FILE, b"START WAL LOCATION: 0/2000028")
    item = look(setup, NOW + MIN)
    assert (item.level, item.at) == ("green", NOW) and BACKUP_FILE in item.reason
    report = status.compute_status(setup.ctx, NOW + MIN, wal_archived={"erp", "crm"})
    (archive_item,) = [i for i in report.items if i.key == "archive:erp"]
    assert "not in the repository" not in archive_item.reason
    assert look(setup, NOW + 31 * MIN).level == "red"
    replicate_wal(setup.ctx)
    assert look(setup, NOW + 32 * MIN).level == "green"


def test_a_mirror_that_cannot_be_read_after_a_good_look_turns_red_after_wal_copy_minutes(
    setup: Installation, server: list[tuple[str, datetime]]
) -> None:
    archive(setup, server, 1, NOW - MIN)
    replicate_wal(setup.ctx)
    assert look(setup, NOW).level == "green"
    # The mirror goes away (a dead NAS, revoked credentials): nothing says it holds the
    # WAL archived from now on.
    mirror = setup.root / "second"
    mirror.rename(setup.root / "second-away")
    item = look(setup, NOW + MIN)
    assert item.level == "amber" and "second cannot be read" in item.reason
    assert look(setup, NOW + 31 * MIN).level == "amber"
    item = look(setup, NOW + 2 * 24 * 60 * MIN)
    assert item.level == "red" and "second cannot be read" in item.reason
    assert item.at == NOW + MIN and _segment(1) in item.reason
    assert "not known to hold archived WAL for" in item.reason
    # Back, holding what it held: green again, and the note is forgotten.
    (setup.root / "second-away").rename(mirror)
    assert look(setup, NOW + 2 * 24 * 60 * MIN + MIN).level == "green"
    archive(setup, server, 2, NOW + 3 * 24 * 60 * MIN)
    item = look(setup, NOW + 3 * 24 * 60 * MIN + MIN)
    assert (item.level, item.at) == ("green", NOW + 3 * 24 * 60 * MIN)
