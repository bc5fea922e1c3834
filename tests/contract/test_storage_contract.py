"""The storage contract: what every backend promises (see :class:`respaldo.storage.Storage`).

Every test runs once per backend in ``conftest.BACKENDS`` and starts from an empty store.
Backend-specific behaviour (files on disk, permissions) is tested beside each backend, not
here.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from respaldo.errors import InvalidObjectName, ObjectNotFound, StorageError
from respaldo.storage.base import ObjectInfo, Storage

pytestmark = pytest.mark.contract

MIB = 1024 * 1024


def _data(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes that differ at every offset, so a wrong range shows."""
    return random.Random(seed).randbytes(size)


def _names(store: Storage, prefix: str = "") -> list[str]:
    return [info.name for info in store.list(prefix)]


# --- basics -------------------------------------------------------------------------------


def test_store_implements_the_protocol(store: Storage) -> None:
    assert isinstance(store, Storage)
    assert isinstance(store.location, str)
    assert store.location


def test_a_new_store_is_empty(store: Storage) -> None:
    assert list(store.list()) == []


def test_close_twice_is_harmless(store: Storage) -> None:
    store.close()
    store.close()


# --- put and get --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, MIB], ids=["empty", "1-byte", "1-MiB"])
def test_put_get_round_trip(store: Storage, size: int) -> None:
    data = _data(size)
    store.put("packs/ab/object", data)
    assert store.get("packs/ab/object") == data
    assert store.stat("packs/ab/object") == ObjectInfo("packs/ab/object", size)


@pytest.mark.parametrize(
    "name",
    [
        "config",
        "0",
        "_underscore",
        "a.b-c_d",
        "UPPER.lower",
        "x" * 200,
        "/".join(["s" * 200] * 5),
        "wal/0000000100000001/00000001/000000010000000100000002",
    ],
    ids=["word", "digit", "underscore", "punctuation", "case", "200-char", "1004-char", "deep"],
)
def test_valid_names_round_trip(store: Storage, name: str) -> None:
    store.put(name, name.encode())
    assert store.get(name) == name.encode()
    assert _names(store) == [name]


def test_names_are_case_sensitive(store: Storage) -> None:
    store.put("Config", b"upper")
    store.put("config", b"lower")
    assert store.get("Config") == b"upper"
    assert store.get("config") == b"lower"
    assert _names(store) == ["Config", "config"]


def test_overwrite_replaces_the_whole_object(store: Storage) -> None:
    store.put("config", _data(4096, seed=1))
    shorter = _data(10, seed=2)
    store.put("config", shorter)
    # A shorter value must not keep the tail of the longer one.
    assert store.get("config") == shorter
    assert store.stat("config").size == 10
    assert _names(store) == ["config"]


def test_putting_the_same_bytes_twice_leaves_one_object(store: Storage) -> None:
    store.put("keys/k1", b"key")
    store.put("keys/k1", b"key")
    assert list(store.list()) == [ObjectInfo("keys/k1", 3)]


def test_get_missing_raises_object_not_found_with_the_name(store: Storage) -> None:
    store.put("packs/ab/other", b"x")
    with pytest.raises(ObjectNotFound) as info:
        store.get("packs/ab/missing")
    assert info.value.name == "packs/ab/missing"
    assert "packs/ab/missing" in str(info.value)


# --- ranges -------------------------------------------------------------------------------

RANGE_DATA = bytes(range(100))


# What each range is: (offset, length), and the bytes of RANGE_DATA it reads.
RANGES: dict[str, tuple[int, int | None, bytes]] = {
    "whole": (0, None, RANGE_DATA),
    "offset-only": (10, None, RANGE_DATA[10:]),
    "inside": (10, 5, RANGE_DATA[10:15]),
    "first-byte": (0, 1, RANGE_DATA[:1]),
    "last-byte": (99, 1, RANGE_DATA[99:]),
    "ends-at-end": (90, 10, RANGE_DATA[90:]),
    "exact-length": (0, 100, RANGE_DATA),
    "offset-at-end": (100, None, b""),
    "offset-at-end-with-length": (100, 5, b""),
    "runs-past-end": (95, 50, RANGE_DATA[95:]),
    "length-past-end": (0, 1000, RANGE_DATA),
    "offset-past-end": (500, None, b""),
    "offset-past-end-with-length": (500, 5, b""),
    "length-0": (0, 0, b""),
    "length-0-inside": (50, 0, b""),
    "length-0-at-end": (100, 0, b""),
}


def test_get_range(store: Storage) -> None:
    # Every range of one object: an object per range showed nothing more, reading changes
    # nothing.
    store.put("packs/ab/pack", RANGE_DATA)
    for what, (offset, length, expected) in RANGES.items():
        assert store.get("packs/ab/pack", offset, length) == expected, what


def test_get_range_by_keyword(store: Storage) -> None:
    store.put("pack", RANGE_DATA)
    assert store.get("pack", offset=3, length=4) == RANGE_DATA[3:7]
    assert store.get("pack", length=2) == RANGE_DATA[:2]


def test_get_range_of_large_object(store: Storage) -> None:
    data = _data(MIB)
    store.put("pack", data)
    assert store.get("pack", MIB - 7, 100) == data[MIB - 7 :]
    assert store.get("pack", 123_457, 65_536) == data[123_457 : 123_457 + 65_536]


def test_negative_range_raises_value_error(store: Storage) -> None:
    store.put("pack", RANGE_DATA)
    offset: int
    length: int | None
    for offset, length in [(-1, None), (-1, 5), (0, -1), (5, -3)]:
        with pytest.raises(ValueError, match="negative"):
            store.get("pack", offset, length)
            pytest.fail(f"the range {offset}, {length} was read")


def test_range_of_missing_object_raises_object_not_found(store: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        store.get("pack", 10, 5)


# --- stat -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 4097])
def test_stat_reports_the_size(store: Storage, size: int) -> None:
    store.put("index/i1", _data(size))
    assert store.stat("index/i1") == ObjectInfo("index/i1", size)


def test_sync_keeps_an_object_and_refuses_a_missing_one(store: Storage) -> None:
    store.put("wal/1/00000001/a", b"segment")
    store.sync("wal/1/00000001/a")
    assert store.get("wal/1/00000001/a") == b"segment"
    with pytest.raises(ObjectNotFound) as info:
        store.sync("wal/1/00000001/b")
    assert info.value.name == "wal/1/00000001/b"


def test_stat_missing_raises_object_not_found(store: Storage) -> None:
    store.put("index/i1", b"x")
    with pytest.raises(ObjectNotFound) as info:
        store.stat("index/i2")
    assert info.value.name == "index/i2"


# A name that is only a prefix of other names ("packs/ab" when "packs/ab/x" exists) is not an
# object; nor is a name below an object ("config/x" when "config" exists). File-system
# backends see directories and files there, and must still answer "not found".


def test_a_prefix_of_other_names_is_not_an_object(store: Storage) -> None:
    store.put("packs/ab/x", b"x")
    for name in ("packs", "packs/ab"):
        with pytest.raises(ObjectNotFound):
            store.get(name)
        with pytest.raises(ObjectNotFound):
            store.stat(name)
        with pytest.raises(ObjectNotFound):
            store.sync(name)
        with pytest.raises(ObjectNotFound):
            store.delete(name)
    assert store.get("packs/ab/x") == b"x"


def test_a_name_below_an_object_is_not_an_object(store: Storage) -> None:
    store.put("config", b"c")
    for name in ("config/x", "config/x/y"):
        with pytest.raises(ObjectNotFound):
            store.get(name)
        with pytest.raises(ObjectNotFound):
            store.stat(name)
        with pytest.raises(ObjectNotFound):
            store.delete(name)
    assert store.get("config") == b"c"


# --- list -------------------------------------------------------------------------------

LAYOUT = {
    "config": b"{}",
    "index/0001": b"i" * 11,
    "keys/k1": b"k" * 7,
    "manifests/b1": b"m" * 5,
    "packs/ab/ab01": b"1" * 3,
    "packs/ab/ab02": b"2" * 4,
    "packs/ac/ac01": b"3" * 5,
    "packs/b0/b001": b"",
    "packsx": b"px",
    "wal/00000001/0000000100000000/000000010000000000000001": b"w" * 9,
    # '-' < '.' < '/' < '0' in ASCII: a per-directory walk that does not sort the full names
    # at the end puts these in the wrong order.
    "a-b": b"1",
    "a.b": b"2",
    "a/b": b"3",
    "a0": b"4",
    "aB": b"5",
    "a_": b"6",
}


@pytest.fixture
def populated(store: Storage) -> Storage:
    names = list(LAYOUT)
    random.Random(42).shuffle(names)
    for name in names:
        store.put(name, LAYOUT[name])
    return store


def test_list_empty_prefix_lists_everything_sorted_with_sizes(populated: Storage) -> None:
    expected = [ObjectInfo(name, len(LAYOUT[name])) for name in sorted(LAYOUT)]
    assert list(populated.list()) == expected
    assert list(populated.list("")) == expected


def test_list_order_is_lexicographic_by_full_name(populated: Storage) -> None:
    assert _names(populated, "a") == ["a-b", "a.b", "a/b", "a0", "aB", "a_"]


# What each prefix is: the prefix, and the names listed under it.
PREFIXES: dict[str, tuple[str, list[str]]] = {
    "directory": ("packs/ab/", ["packs/ab/ab01", "packs/ab/ab02"]),
    "directory-without-slash": ("packs/ab", ["packs/ab/ab01", "packs/ab/ab02"]),
    "partial-segment": ("packs/a", ["packs/ab/ab01", "packs/ab/ab02", "packs/ac/ac01"]),
    "top-directory": (
        "packs/",
        ["packs/ab/ab01", "packs/ab/ab02", "packs/ac/ac01", "packs/b0/b001"],
    ),
    "top-partial": (
        "packs",
        ["packs/ab/ab01", "packs/ab/ab02", "packs/ac/ac01", "packs/b0/b001", "packsx"],
    ),
    "partial-leaf": ("packs/ab/ab0", ["packs/ab/ab01", "packs/ab/ab02"]),
    "exact-name": ("packs/ab/ab01", ["packs/ab/ab01"]),
    "exact-top-name": ("config", ["config"]),
    "nested": ("wal/", ["wal/00000001/0000000100000000/000000010000000000000001"]),
    "nested-directory": (
        "wal/00000001/",
        ["wal/00000001/0000000100000000/000000010000000000000001"],
    ),
    "nested-partial": (
        "wal/00000001/00000001",
        ["wal/00000001/0000000100000000/000000010000000000000001"],
    ),
    "directory-beside-similar-names": ("a/", ["a/b"]),
    "dot-partial": ("a.", ["a.b"]),
}


def test_list_by_prefix(populated: Storage) -> None:
    # Every prefix on one populated store: a store per prefix (16 objects put each time,
    # on every backend) showed nothing more, listing changes nothing.
    for what, (prefix, expected) in PREFIXES.items():
        assert _names(populated, prefix) == expected, what


def test_list_prefix_matching_nothing_is_empty(populated: Storage) -> None:
    for prefix in ["nothing", "packs/zz/", "packs/zz", "config/", "config/x", "packs/ab/ab01/"]:
        assert list(populated.list(prefix)) == [], prefix


def test_list_reports_sizes(populated: Storage) -> None:
    assert list(populated.list("packs/ab/")) == [
        ObjectInfo("packs/ab/ab01", 3),
        ObjectInfo("packs/ab/ab02", 4),
    ]


# --- delete -------------------------------------------------------------------------------


def test_delete_then_get_raises_object_not_found(populated: Storage) -> None:
    populated.delete("packs/ab/ab01")
    with pytest.raises(ObjectNotFound):
        populated.get("packs/ab/ab01")
    with pytest.raises(ObjectNotFound):
        populated.stat("packs/ab/ab01")
    assert "packs/ab/ab01" not in _names(populated)
    # Nothing else went with it.
    assert _names(populated) == sorted(set(LAYOUT) - {"packs/ab/ab01"})
    assert populated.get("packs/ab/ab02") == LAYOUT["packs/ab/ab02"]


def test_delete_missing_raises_object_not_found(store: Storage) -> None:
    store.put("keys/k1", b"k")
    with pytest.raises(ObjectNotFound) as info:
        store.delete("keys/k2")
    assert info.value.name == "keys/k2"
    assert _names(store) == ["keys/k1"]


def test_delete_twice_raises_object_not_found_the_second_time(store: Storage) -> None:
    store.put("keys/k1", b"k")
    store.delete("keys/k1")
    with pytest.raises(ObjectNotFound):
        store.delete("keys/k1")


def test_put_after_delete_creates_the_object_again(store: Storage) -> None:
    store.put("locks/l1", b"old")
    store.delete("locks/l1")
    store.put("locks/l1", b"new")
    assert store.get("locks/l1") == b"new"


def test_deleting_every_object_under_a_prefix_empties_its_listing(store: Storage) -> None:
    store.put("packs/ab/ab01", b"1")
    store.put("packs/ab/ab02", b"2")
    store.delete("packs/ab/ab01")
    store.delete("packs/ab/ab02")
    assert list(store.list("packs/")) == []
    assert list(store.list()) == []
    store.put("packs/ab/ab03", b"3")
    assert _names(store) == ["packs/ab/ab03"]


# --- invalid names ------------------------------------------------------------------------

# Several are near misses of the objects that exist ("obj", "dir/obj"), so that a backend
# that forgot to validate and normalised the path instead would find them.
INVALID_NAMES = {
    "empty": "",
    "dot-dot": "..",
    "dot-dot-parent": "../obj",
    "dot-dot-inside": "dir/../obj",
    "dot-dot-last": "dir/..",
    "dot": ".",
    "dot-segment": "./obj",
    "dot-inside": "dir/./obj",
    "absolute": "/obj",
    "absolute-nested": "/dir/obj",
    "root": "/",
    "trailing-slash": "obj/",
    "double-slash": "dir//obj",
    "hidden": ".obj",
    "hidden-nested": "dir/.obj",
    "tmp-like": ".tmp-obj",
    "backslash": "dir\\obj",
    "leading-backslash": "\\obj",
    "space-inside": "o bj",
    "leading-space": " obj",
    "trailing-space": "obj ",
    "trailing-newline": "obj\n",
    "nul": "ob\x00j",
    "tab": "o\tbj",
    "non-ascii": "objé",
    "colon": "c:obj",
    "star": "obj*",
    "leading-dash": "-obj",
    "segment-over-200": "o" * 201,
    "name-over-1024": "/".join(["n" * 200] * 5) + "/nnnnnnnnnnnnnnnnnnnnnnnnnnn",
}


@pytest.fixture
def guarded(store: Storage) -> Storage:
    store.put("obj", b"object")
    store.put("dir/obj", b"nested")
    return store


def _after_invalid_name(store: Storage) -> None:
    assert list(store.list()) == [ObjectInfo("dir/obj", 6), ObjectInfo("obj", 6)]
    assert store.get("obj") == b"object"
    assert store.get("dir/obj") == b"nested"


OPERATIONS: dict[str, Callable[[Storage, str], object]] = {
    "put": lambda store, name: store.put(name, b"written"),
    "get": lambda store, name: store.get(name),
    "get-range": lambda store, name: store.get(name, 1, 2),
    "stat": lambda store, name: store.stat(name),
    "sync": lambda store, name: store.sync(name),
    "delete": lambda store, name: store.delete(name),
}


@pytest.mark.parametrize("name", list(INVALID_NAMES.values()), ids=list(INVALID_NAMES))
def test_invalid_names_are_rejected(guarded: Storage, name: str) -> None:
    # Every operation in turn on one store, then one look at it: a store of its own per
    # operation (five times the tests, each with its own client, objects and look on the
    # S3 backends) showed nothing more. The look still sees what any of them changed: only
    # a put or a delete can change the store, and none of the five writes "object" or
    # "nested" back.
    for operation, call in OPERATIONS.items():
        with pytest.raises(InvalidObjectName):
            call(guarded, name)
            pytest.fail(f"{operation} accepted {name!r}")
    _after_invalid_name(guarded)


def test_invalid_name_error_carries_the_name_and_a_hint(store: Storage) -> None:
    with pytest.raises(InvalidObjectName) as info:
        store.put("../escape", b"x")
    assert info.value.name == "../escape"
    assert "../escape" in str(info.value)
    assert info.value.hint


# A list prefix may be empty or end in "/", so those two are valid there.
INVALID_PREFIXES = {
    key: value for key, value in INVALID_NAMES.items() if key not in ("empty", "trailing-slash")
} | {"dot-dot-slash": "../", "dot-slash": "./", "double-trailing-slash": "dir//"}


def test_invalid_list_prefixes_are_rejected_at_the_call(guarded: Storage) -> None:
    # At the call, not at the first next(): a caller that never iterates must still hear.
    # Every prefix on one store, then one look at it (a store per prefix showed nothing
    # more: a list that changed the store would still be seen).
    for what, prefix in INVALID_PREFIXES.items():
        with pytest.raises(InvalidObjectName):
            guarded.list(prefix)
            pytest.fail(f"list accepted the prefix {what} ({prefix!r})")
    _after_invalid_name(guarded)


# --- concurrency --------------------------------------------------------------------------

THREADS = 8


def test_concurrent_puts_of_distinct_names_all_land(store: Storage) -> None:
    per_thread = 16
    barrier = threading.Barrier(THREADS, timeout=60)

    def worker(thread: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            # Half in a directory of the thread's own, half in one directory that every
            # thread creates at the same moment.
            store.put(f"own/t{thread}/o{i:02d}", _data(100 + i, seed=thread * 1000 + i))
            store.put(f"shared/new/t{thread}-o{i:02d}", _data(100 + i, seed=-thread * 1000 - i))

    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(worker, t) for t in range(THREADS)]:
            future.result()

    expected = {
        f"own/t{t}/o{i:02d}": _data(100 + i, seed=t * 1000 + i)
        for t in range(THREADS)
        for i in range(per_thread)
    } | {
        f"shared/new/t{t}-o{i:02d}": _data(100 + i, seed=-t * 1000 - i)
        for t in range(THREADS)
        for i in range(per_thread)
    }
    assert _names(store) == sorted(expected)
    for name, data in expected.items():
        assert store.get(name) == data


def test_concurrent_puts_of_one_name_never_tear(store: Storage) -> None:
    size = 256 * 1024
    rounds = 4
    # Every value is one repeated byte, and values differ in length, so a torn or mixed
    # read is both the wrong length and not uniform.
    values = [bytes([0x41 + t]) * (size + t * 4099) for t in range(THREADS)]
    store.put("config", values[0])
    barrier = threading.Barrier(THREADS + 2, timeout=60)
    writing = threading.Event()
    writing.set()
    seen: list[bytes] = []
    # Writers finish only after each reader has read once: on a loaded machine a fast
    # store's writers could otherwise be done before a reader was ever scheduled.
    read_once = [threading.Event() for _ in range(2)]

    def writer(thread: int) -> None:
        barrier.wait()
        for round_ in range(rounds):
            store.put("config", values[thread])
            if round_ == 0:
                for event in read_once:
                    assert event.wait(60), "a reader never read"

    def reader(number: int) -> None:
        barrier.wait()
        while writing.is_set():
            data = store.get("config")
            info = store.stat("config")
            assert data in values, f"torn read: {len(data)} bytes"
            assert info.size in {len(v) for v in values}
            seen.append(data[:1])
            read_once[number].set()

    with ThreadPoolExecutor(THREADS + 2) as pool:
        readers = [pool.submit(reader, n) for n in range(2)]
        writers = [pool.submit(writer, t) for t in range(THREADS)]
        try:
            for future in writers:
                future.result()
        finally:
            writing.clear()
        for future in readers:
            future.result()

    assert seen, "the readers never ran"
    assert store.get("config") in values
    assert list(store.list()) == [ObjectInfo("config", len(store.get("config")))]


# --- spools: objects written in pieces (open_spool) --------------------------------------


def test_a_spool_is_no_object_until_committed(store: Storage) -> None:
    pieces = [_data(1000, seed=1), b"", _data(70_000, seed=2), _data(3, seed=3)]
    spool = store.open_spool("packs/")
    spool.write(pieces[:2])
    spool.write(pieces[2:])
    assert spool.size == 71_003
    assert _names(store) == []
    spool.commit("packs/ab/spooled")
    assert store.get("packs/ab/spooled") == b"".join(pieces)
    assert store.stat("packs/ab/spooled") == ObjectInfo("packs/ab/spooled", 71_003)
    assert _names(store) == ["packs/ab/spooled"]


def test_a_spool_of_nothing_commits_an_empty_object(store: Storage) -> None:
    spool = store.open_spool("packs/")
    spool.commit("packs/ab/empty")
    assert store.get("packs/ab/empty") == b""


def test_a_committed_spool_replaces_the_object(store: Storage) -> None:
    store.put("packs/ab/x", b"old bytes, longer than the new ones")
    spool = store.open_spool("packs/")
    spool.write([b"new"])
    spool.commit("packs/ab/x")
    assert store.get("packs/ab/x") == b"new"


def test_a_discarded_spool_leaves_nothing(store: Storage) -> None:
    spool = store.open_spool("packs/")
    spool.write([_data(MIB)])
    spool.discard()
    spool.discard()  # harmless twice
    assert _names(store) == []


def test_a_spool_cannot_be_written_or_committed_after_it_ended(store: Storage) -> None:
    spool = store.open_spool("packs/")
    spool.write([b"x"])
    spool.commit("packs/ab/x")
    with pytest.raises(StorageError):
        spool.commit("packs/ab/y")
    discarded = store.open_spool("packs/")
    discarded.discard()
    with pytest.raises(StorageError):
        discarded.write([b"y"])
    assert _names(store) == ["packs/ab/x"]


def test_a_spool_commit_validates_the_name(store: Storage) -> None:
    spool = store.open_spool("packs/")
    spool.write([b"x"])
    with pytest.raises(InvalidObjectName):
        spool.commit("packs/../x")
    spool.discard()
    assert _names(store) == []


def test_concurrent_spools_of_distinct_names_all_land(store: Storage) -> None:
    barrier = threading.Barrier(4, timeout=60)

    def worker(thread: int) -> None:
        spool = store.open_spool("packs/")
        barrier.wait()
        for i in range(8):
            spool.write([_data(4096, seed=thread * 100 + i)])
        spool.commit(f"packs/t{thread}/spooled")

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(worker, t) for t in range(4)]:
            future.result()
    for t in range(4):
        expected = b"".join(_data(4096, seed=t * 100 + i) for i in range(8))
        assert store.get(f"packs/t{t}/spooled") == expected
