"""``wal-push`` of a segment whose first page carries an earlier timeline than its name.

Only the first segment of a new timeline is such a segment: at a promotion PostgreSQL
starts it as a copy of the parent's segment up to the switch point. Any other one (a
timeline-1 segment copied under its timeline-2 name by hand or by a faulty script) would
make a later recovery following timeline 2 read timeline-1 pages after timeline-2 ones;
PostgreSQL takes that for the end of the WAL and promotes without what came after. The
archived ``<timeline>.history`` file (archived before the timeline's segments when
archiving was on at the promotion) tells which segment holds the switch point and from
which timeline it branched; when it is not archived, the one beside the segment (in
``pg_wal``) does, and is archived first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.errors import InvalidWalFile, WalRefused
from respaldo.operations.initialize import initialize
from respaldo.operations.wal import open_wal_repository, push_wal
from respaldo.repository.wal import get_wal, list_wal
from tests.unit.operations.support import FAST_KDF
from tests.unit.operations.test_wal_push_light import PASSPHRASE, SYSID, _config
from tests.unit.postgres.support import SEGMENT_SIZE, control_file, make_segment

pytestmark = pytest.mark.unit


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    path = _config(tmp_path)
    initialize(load_settings(path), kdf=FAST_KDF)
    (tmp_path / "global").mkdir()
    (tmp_path / "global" / "pg_control").write_bytes(control_file(SYSID))
    return path


def _file(root: Path, name: str, data: bytes) -> Path:
    path = root / "pg_wal" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def _segment(root: Path, name_timeline: int, header_timeline: int, segno: int) -> Path:
    name = f"{name_timeline:08X}{segno // 4096:08X}{segno % 4096:08X}"
    return _file(root, name, make_segment(SYSID, header_timeline, segno))


def _history(root: Path, timeline: int, text: str) -> Path:
    return _file(root, f"{timeline:08X}.history", text.encode())


def _lsn(segno: int, offset: int = 0) -> str:
    lsn = segno * SEGMENT_SIZE + offset
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def _archived(config: Path) -> list[str]:
    return [n.rsplit("/", 1)[-1] for n in list_wal(open_wal_repository(load_settings(config)))]


def test_the_first_segment_of_a_new_timeline_is_archived(config: Path, tmp_path: Path) -> None:
    settings = load_settings(config)
    push_wal(settings, _history(tmp_path, 2, f"1\t{_lsn(3, 0x2A0)}\tno recovery target\n"))
    switched = _segment(tmp_path, 2, 1, 3)
    push_wal(settings, switched)
    repo = open_wal_repository(settings)
    assert get_wal(repo, str(SYSID), "00000002", switched.name) == switched.read_bytes()


def test_a_grandchild_timeline_switching_in_its_parents_first_segment_is_archived(
    config: Path, tmp_path: Path
) -> None:
    # Timeline 2 began in segment 3 and timeline 3 in the same segment: timeline 3's copy
    # of it starts with timeline 1's first page.
    settings = load_settings(config)
    history = f"1\t{_lsn(3, 0x2A0)}\tno recovery target\n2\t{_lsn(3, 0x9000)}\tpromoted\n"
    push_wal(settings, _history(tmp_path, 3, history))
    push_wal(settings, _segment(tmp_path, 3, 1, 3))
    assert "000000030000000000000003" in _archived(config)


@pytest.mark.parametrize(
    ("header_timeline", "segno", "history", "why"),
    [
        # A timeline-1 segment after the switch point, copied under its timeline-2 name.
        (1, 5, f"1\t{_lsn(3, 0x2A0)}\tno recovery target\n", "does not hold the switch point"),
        # One before it: timeline 2 never had it.
        (1, 2, f"1\t{_lsn(3, 0x2A0)}\tno recovery target\n", "does not hold the switch point"),
        # The switch point is at the segment's start: PostgreSQL starts a fresh segment.
        (1, 3, f"1\t{_lsn(3)}\tno recovery target\n", "does not hold the switch point"),
        # The switch segment, but its pages are of another timeline than the parent's.
        (2, 3, f"1\t{_lsn(3, 0x2A0)}\tno recovery target\n2\t{_lsn(3, 0x900)}\tx\n", None),
    ],
)
def test_another_segment_with_an_earlier_timeline_is_refused(
    config: Path,
    tmp_path: Path,
    header_timeline: int,
    segno: int,
    history: str,
    why: str | None,
) -> None:
    settings = load_settings(config)
    name_timeline = history.count("\n") + 1
    push_wal(settings, _history(tmp_path, name_timeline, history))
    before = _archived(config)
    copied = _segment(tmp_path, name_timeline, header_timeline, segno)
    with pytest.raises(WalRefused, match=f"timeline {header_timeline}") as refused:
        push_wal(settings, copied)
    if why is not None:
        assert why in str(refused.value)
    assert refused.value.hint
    assert _archived(config) == before  # nothing stored


def test_an_earlier_timeline_without_any_history_file_is_refused(
    config: Path, tmp_path: Path
) -> None:
    settings = load_settings(config)
    push_wal(settings, _segment(tmp_path, 1, 1, 2))  # the cluster is known
    with pytest.raises(WalRefused, match=r"00000002\.history is neither archived nor") as refused:
        push_wal(settings, _segment(tmp_path, 2, 1, 3))
    assert "respaldo wal-push" in str(refused.value.hint)
    assert "00000002.history" in str(refused.value.hint)
    assert _archived(config) == ["000000010000000000000002"]


def test_the_history_file_beside_the_first_segment_is_archived_first(
    config: Path, tmp_path: Path
) -> None:
    # Archiving was off at the promotion (a restored copy without --keep-archiving):
    # PostgreSQL never queued 00000002.history, but it is in pg_wal beside the segment.
    settings = load_settings(config)
    history = _history(tmp_path, 2, f"1\t{_lsn(3, 0x2A0)}\tno recovery target\n")
    switched = _segment(tmp_path, 2, 1, 3)
    result = push_wal(settings, switched)
    assert result.file == switched.name
    repo = open_wal_repository(settings)
    assert get_wal(repo, str(SYSID), "00000002", history.name) == history.read_bytes()
    assert get_wal(repo, str(SYSID), "00000002", switched.name) == switched.read_bytes()
    # The server's own push of the history file, if it comes later, is the same content.
    push_wal(settings, history)


@pytest.mark.parametrize(
    ("segno", "history"),
    [
        # The history file beside it does not put the switch point in this segment.
        (5, f"1\t{_lsn(3, 0x2A0)}\tno recovery target\n"),
        # Nor can a history file that is not one tell anything.
        (3, "not a history file\n"),
    ],
)
def test_a_history_file_beside_that_does_not_vouch_for_the_segment_stores_nothing(
    config: Path, tmp_path: Path, segno: int, history: str
) -> None:
    settings = load_settings(config)
    push_wal(settings, _segment(tmp_path, 1, 1, 2))  # the cluster is known
    _history(tmp_path, 2, history)
    with pytest.raises((WalRefused, InvalidWalFile), match=r"00000002\.history"):
        push_wal(settings, _segment(tmp_path, 2, 1, segno))
    assert _archived(config) == ["000000010000000000000002"]


def test_a_later_segment_of_a_timeline_whose_history_is_not_archived_archives_it_first(
    config: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A copy restored without --keep-archiving ran a while before archiving was turned
    # on: the server recycled timeline 2's first segment, every segment left starts with
    # timeline-2 pages, and 00000002.history is only in pg_wal. Recovery follows a
    # timeline only if its history file is archived.
    settings = load_settings(config)
    history = _history(tmp_path, 2, f"1\t{_lsn(3, 0x2A0)}\tno recovery target\n")
    later = _segment(tmp_path, 2, 2, 9)
    with caplog.at_level("WARNING", logger="respaldo.operations.wal"):
        push_wal(settings, later)
    repo = open_wal_repository(settings)
    assert get_wal(repo, str(SYSID), "00000002", history.name) == history.read_bytes()
    assert get_wal(repo, str(SYSID), "00000002", later.name) == later.read_bytes()
    assert any(
        r.levelname == "WARNING" and "00000002.history" in r.getMessage() for r in caplog.records
    )


def test_a_later_segment_of_a_timeline_without_any_history_file_is_refused(
    config: Path, tmp_path: Path
) -> None:
    settings = load_settings(config)
    push_wal(settings, _segment(tmp_path, 1, 1, 2))  # the cluster is known
    with pytest.raises(WalRefused, match=r"00000002\.history is neither archived nor") as refused:
        push_wal(settings, _segment(tmp_path, 2, 2, 9))
    assert "respaldo wal-push" in str(refused.value.hint)
    assert "00000002.history" in str(refused.value.hint)
    assert _archived(config) == ["000000010000000000000002"]


def test_a_timeline_1_segment_needs_no_history_file(config: Path, tmp_path: Path) -> None:
    settings = load_settings(config)
    push_wal(settings, _segment(tmp_path, 1, 1, 2))
    assert _archived(config) == ["000000010000000000000002"]


def test_one_repository_asks_for_a_timelines_history_file_once(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The --async pusher keeps one repository open: one stat per timeline, not per segment.
    settings = load_settings(config)
    repo = open_wal_repository(settings)
    push_wal(settings, _history(tmp_path, 2, f"1\t{_lsn(3, 0x2A0)}\tno recovery target\n"))
    stats: list[str] = []
    real_stat = repo.storage.stat

    def counting_stat(name: str) -> object:
        stats.append(name)
        return real_stat(name)

    monkeypatch.setattr(repo.storage, "stat", counting_stat)
    for segno in (9, 10, 11):
        push_wal(settings, _segment(tmp_path, 2, 2, segno), repo=repo)
    assert stats == [f"wal/{SYSID}/00000002/00000002.history"]
    assert len(_archived(config)) == 4
