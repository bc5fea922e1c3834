"""LocalStorage behaviour that the contract suite cannot see: files, modes, disk errors."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from respaldo.errors import (
    InvalidObjectName,
    ObjectNotFound,
    PermanentStorageError,
    StorageError,
    TransientStorageError,
)
from respaldo.storage import local
from respaldo.storage.base import ObjectInfo
from respaldo.storage.local import LocalStorage
from respaldo.storage.retry import RetryingStorage

pytestmark = pytest.mark.unit


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> LocalStorage:
    return LocalStorage(root)


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Umask 0, so that only the mode the code asks for decides a file's permissions."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# --- layout and leftovers -----------------------------------------------------------------


def test_objects_are_files_below_the_root(store: LocalStorage, root: Path) -> None:
    store.put("packs/ab/ab01", b"pack")
    assert (root / "packs" / "ab" / "ab01").read_bytes() == b"pack"
    assert store.location == root.as_uri()


def test_put_leaves_no_temporary_file(store: LocalStorage, root: Path) -> None:
    store.put("packs/ab/ab01", b"one")
    store.put("packs/ab/ab01", b"two")
    store.put("config", b"c")
    assert _files(root) == ["config", "packs/ab/ab01"]


def test_crash_leftover_temporary_files_are_not_listed(store: LocalStorage, root: Path) -> None:
    store.put("packs/ab/ab01", b"pack")
    store.put("config", b"c")
    # What a crash between create and rename leaves behind.
    (root / "packs" / "ab" / ".tmp-ab02.0123456789ab").write_bytes(b"half a pa")
    (root / ".tmp-config.ba9876543210").write_bytes(b"")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x").write_bytes(b"x")

    assert list(store.list()) == [ObjectInfo("config", 1), ObjectInfo("packs/ab/ab01", 4)]
    assert [i.name for i in store.list("packs/ab/")] == ["packs/ab/ab01"]
    # The litter does not get in the way of the objects it shadows either.
    with pytest.raises(ObjectNotFound):
        store.get("packs/ab/ab02")
    store.put("packs/ab/ab02", b"whole pack")
    assert store.get("packs/ab/ab02") == b"whole pack"


def test_failed_put_removes_its_temporary_file(
    store: LocalStorage, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("config", b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "Input/output error", str(dst))

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(TransientStorageError, match="cannot write config"):
        store.put("config", b"new")
    assert _files(root) == ["config"]
    assert store.get("config") == b"old"


def test_nothing_is_written_outside_the_root_for_invalid_names(tmp_path: Path) -> None:
    root = tmp_path / "a" / "store"
    store = LocalStorage(root)
    for name in ("../escaped", "../../escaped", f"{tmp_path}/escaped", "x/../../escaped"):
        with pytest.raises(InvalidObjectName):
            store.put(name, b"x")
    assert _files(tmp_path) == []


# --- permissions ------------------------------------------------------------------------


@pytest.mark.usefixtures("permissive_umask")
def test_files_are_created_0600(store: LocalStorage, root: Path) -> None:
    store.put("keys/k1", b"wrapped key")
    store.put("config", b"")
    for path in (root / "keys" / "k1", root / "config"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.mark.usefixtures("permissive_umask")
def test_overwrite_makes_a_too_open_file_0600(store: LocalStorage, root: Path) -> None:
    root.mkdir()
    (root / "config").write_bytes(b"old")
    (root / "config").chmod(0o644)
    store.put("config", b"new")
    assert stat.S_IMODE((root / "config").stat().st_mode) == 0o600


# --- durability -------------------------------------------------------------------------


def test_new_directories_and_renames_are_fsynced(
    store: LocalStorage, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    real = local._fsync_dir

    def record(directory: Path) -> None:
        synced.append(directory)
        real(directory)

    monkeypatch.setattr(local, "_fsync_dir", record)
    store.put("packs/ab/ab01", b"pack")
    # The rename into packs/ab, and each new directory's entry in its parent.
    assert set(synced) >= {root / "packs" / "ab", root / "packs", root, tmp_path}

    synced.clear()
    store.delete("packs/ab/ab01")
    assert synced == [root / "packs" / "ab"]


def test_sync_fsyncs_an_object_found_and_its_directories_up_to_the_root(
    store: LocalStorage, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put killed after its rename and before its directory fsync leaves an object a
    later idempotent writer finds (a WAL file archived again): sync makes it durable."""
    store.put("wal/1/00000001/seg", b"segment")
    files: list[str] = []
    directories: list[Path] = []
    real_fsync, real_dir = os.fsync, local._fsync_dir

    def fsync(fd: int) -> None:
        files.append(str(Path(f"/proc/self/fd/{fd}").readlink()))
        real_fsync(fd)

    def fsync_dir(directory: Path) -> None:
        directories.append(directory)
        real_dir(directory)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(local, "_fsync_dir", fsync_dir)
    store.sync("wal/1/00000001/seg")
    assert str(root / "wal" / "1" / "00000001" / "seg") in files
    assert directories == [
        root / "wal" / "1" / "00000001",
        root / "wal" / "1",
        root / "wal",
        root,
    ]


# --- disk errors --------------------------------------------------------------------------
# Tests run as root, whom chmod does not stop; a file standing where a directory must be
# provokes a real error from the kernel instead.


@pytest.mark.parametrize("name", ["a/b", "a/b/c"])
def test_put_below_a_file_is_a_clear_permanent_error(
    store: LocalStorage, root: Path, name: str
) -> None:
    store.put("a", b"a file")
    with pytest.raises(PermanentStorageError) as info:
        store.put(name, b"x")
    error = info.value
    assert error.name == name
    # Names the path in the way, not the temporary file the kernel complained about.
    assert str(error) == f"cannot write {name}: {root / 'a'} is a file, not a directory"
    assert "'x/'" in error.hint
    assert isinstance(error.__cause__, OSError)
    assert _files(root) == ["a"]
    assert store.get("a") == b"a file"


def test_put_over_a_directory_is_a_clear_permanent_error(store: LocalStorage, root: Path) -> None:
    store.put("d/e", b"below")
    with pytest.raises(PermanentStorageError) as info:
        store.put("d", b"x")
    assert str(info.value) == f"cannot write d: {root / 'd'} is a directory"
    assert info.value.hint
    assert _files(root) == ["d/e"]  # and no temporary file left beside it
    assert store.get("d/e") == b"below"


def test_root_below_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"not a directory")
    store = LocalStorage(tmp_path / "file" / "store")
    with pytest.raises(PermanentStorageError) as info:
        store.put("config", b"x")
    assert str(info.value) == f"cannot write config: {tmp_path / 'file'} is a file, not a directory"
    with pytest.raises(ObjectNotFound):
        store.get("config")
    with pytest.raises(ObjectNotFound):
        store.stat("config")
    with pytest.raises(ObjectNotFound):
        store.delete("config")
    assert list(store.list()) == []


def test_permanent_disk_errors_are_not_retried(store: LocalStorage) -> None:
    store.put("a", b"a file")
    sleeps: list[float] = []
    retrying = RetryingStorage(store, attempts=5, sleep=sleeps.append)
    with pytest.raises(PermanentStorageError):
        retrying.put("a/b", b"x")
    assert sleeps == []


def test_a_missing_root_is_an_empty_store(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "not-yet")
    assert list(store.list()) == []
    assert list(store.list("packs/")) == []
    with pytest.raises(ObjectNotFound):
        store.get("config")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.EACCES, PermanentStorageError),
        (errno.EIO, TransientStorageError),
    ],
)
def test_list_reports_unreadable_directories(
    store: LocalStorage,
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    expected: type[StorageError],
) -> None:
    store.put("packs/ab/ab01", b"1")
    store.put("packs/cd/cd01", b"2")
    real_scandir = os.scandir
    unreadable = root / "packs" / "cd"

    def scandir(path: str) -> object:
        if Path(path) == unreadable:
            raise OSError(code, os.strerror(code), path)
        return real_scandir(path)

    # os.walk looks scandir up in the os module at each call.
    monkeypatch.setattr(os, "scandir", scandir)
    # A listing that silently skipped packs/cd would let a check or an index rebuild
    # believe those packs do not exist.
    with pytest.raises(expected, match=r"cannot list packs/: "):
        store.list("packs/")
    assert [i.name for i in store.list("packs/ab/")] == ["packs/ab/ab01"]


@pytest.mark.parametrize("code", [errno.EINVAL, errno.EOPNOTSUPP])
def test_a_file_system_that_cannot_sync_directories_still_stores(
    store: LocalStorage,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    code: int,
) -> None:
    """SMB/CIFS mounts (Linux before 4.17 and its backports) and some FUSE file systems
    answer fsync on a directory with EINVAL or EOPNOTSUPP: every write of a repository
    on a NAS share failed ("Invalid argument", retried as if transient). The objects'
    own fsync still counts; only the directory's, which such a file system cannot do,
    is passed over, with one warning."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(local, "_warned_no_sync", set())  # warned once per process
    store.put("packs/ab/one", b"one")
    spool = store.open_spool("packs/")
    spool.write([b"two"])
    spool.commit("packs/cd/two")
    store.delete("packs/ab/one")
    assert [info.name for info in store.list()] == ["packs/cd/two"]
    assert store.get("packs/cd/two") == b"two"
    assert sum("cannot sync directories" in r.getMessage() for r in caplog.records) == 1


def test_a_directory_sync_that_fails_otherwise_still_fails_the_write(
    store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(StorageError, match="Input/output error"):
        store.put("packs/ab/one", b"one")
