"""``files`` backups of real directory trees through the real CLI, and safe restores."""

from __future__ import annotations

import io
import json
import os
import pwd
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from respaldo.config import load_settings
from respaldo.domain import JobKind, JobStatus
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.initialize import initialize
from respaldo.operations.repositories import open_repository
from respaldo.repository import BackupWriter
from respaldo.scheduling.service import Service
from tests.integration.cli import RunsCli
from tests.integration.physical.conftest import FAST_KDF
from tests.integration.stalled_restore import kill_stalled_restore

pytestmark = pytest.mark.integration

PASSPHRASE = "files backups (test passphrase)"


@dataclass
class Files(RunsCli):
    tmp: Path
    config: Path
    tree: Path
    capsys: pytest.CaptureFixture[str]

    def backup(self) -> dict[str, Any]:
        code, out, err = self.run("backup", "uploads", "--json")
        assert code == 0, err
        record: dict[str, Any] = json.loads(out)
        return record


def _write(path: Path, data: bytes, mode: int, mtime_ns: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Files]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    tree = tmp_path / "srv" / "erp"
    base_ns = 1_700_000_000_123_456_789
    _write(tree / "uploads" / "factura-001.pdf", os.urandom(300_000), 0o640, base_ns)
    _write(tree / "uploads" / "plano.dwg", os.urandom(70_000), 0o664, base_ns + 1_000)
    _write(tree / "uploads" / "2024" / "foto.jpg", os.urandom(150_000), 0o600, base_ns + 2)
    _write(tree / "uploads" / "notas.txt", b"hola\n" * 1000, 0o644, base_ns + 3)
    _write(tree / "uploads" / "scratch.tmp", b"temporary", 0o644, base_ns)
    _write(tree / "uploads" / "cache" / "thumb.png", b"x" * 5000, 0o644, base_ns)
    _write(tree / "config" / "erp.ini", b"[erp]\nmode=prod\n", 0o600, base_ns + 5)
    _write(tree / "config" / "run.sh", b"#!/bin/sh\necho ok\n", 0o755, base_ns + 6)
    (tree / "uploads" / "ultimo").symlink_to("2024/foto.jpg")
    (tree / "uploads" / "2024").chmod(0o2775)
    os.utime(tree / "uploads" / "2024", ns=(base_ns, base_ns))
    if os.geteuid() == 0:
        other = pwd.getpwnam("postgres")
        os.chown(tree / "uploads" / "plano.dwg", other.pw_uid, other.pw_gid)
    config = files_config(
        tmp_path, [tree / "uploads", tree / "config"], 'exclude = ["*.tmp", "cache"]\n'
    )
    yield Files(tmp_path, config, tree, capsys)


def files_config(base: Path, paths: list[Path], extra: str = "") -> Path:
    """``base/respaldo.toml`` of a small local repository, a SQLite catalog and the file
    set ``uploads`` of ``paths`` (``extra``: more keys of it); the repository made."""
    config = base / "respaldo.toml"
    listed = ", ".join(f'"{p}"' for p in paths)
    config.write_text(
        f"""
cache_dir = "{base / "cache"}"
pack_size = 65536

[catalog]
url = "sqlite:///{base / "catalog.db"}"

[chunker]
min_size = 1024
avg_size = 4096
max_size = 16384

[[repositories]]
name = "local"
url = "file://{base / "repo"}"

[[file_sets]]
name = "uploads"
paths = [{listed}]
{extra}"""
    )
    initialize(load_settings(config), kdf=FAST_KDF)
    return config


def _snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Relative path -> (kind, mode, uid, gid, mtime_ns, content or link target)."""
    out: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            what: Any = ("link", str(path.readlink()))
        elif stat.S_ISDIR(st.st_mode):
            what = ("dir", None)
        else:
            what = ("file", path.read_bytes())
        # Times to the microsecond: what a float in a pax header carries back.
        mtime = None if what[0] == "link" else st.st_mtime_ns // 1000
        out[str(path.relative_to(root))] = (
            what[0],
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            mtime,
            what[1],
        )
    return out


def test_round_trip_keeps_contents_modes_owners_and_times(files: Files) -> None:
    record = files.backup()
    assert record["backupType"] == "files"
    assert record["databaseName"] == "uploads"
    target = files.tmp / "restored"
    code, _, err = files.run("restore", record["id"], "--target-dir", str(target))
    assert code == 0, err
    restored_tree = target / str(files.tree).lstrip("/")
    expected = {
        k: v
        for k, v in _snapshot(files.tree).items()
        if not k.endswith(".tmp") and "cache" not in k
    }
    assert _snapshot(restored_tree) == expected
    assert not (restored_tree / "uploads" / "scratch.tmp").exists()
    assert not (restored_tree / "uploads" / "cache").exists()
    assert "excluded" not in err


def test_unchanged_files_add_nothing(files: Files) -> None:
    first = files.backup()
    second = files.backup()
    # Only the manifest is new: every chunk, list chunks included, was there already.
    assert second["storedNewBytes"] < 2000, second
    (files.tree / "uploads" / "notas.txt").write_bytes(b"adios\n" * 1000)
    third = files.backup()
    assert third["storedNewBytes"] < first["storedNewBytes"] / 5, (first, third)


def test_backup_type_and_sources_are_checked(files: Files) -> None:
    code, _, err = files.run("backup", "uploads", "--type", "incremental")
    assert code == 1
    assert "is a file set" in err
    code, _, err = files.run("backup", "nothing")
    assert code == 1
    assert "neither a configured database nor a file set" in err


def test_restore_refuses_a_non_empty_target(files: Files) -> None:
    record = files.backup()
    target = files.tmp / "busy"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    code, _, err = files.run("restore", record["id"], "--target-dir", str(target))
    assert code == 1
    assert "is not empty" in err
    assert [p.name for p in target.iterdir()] == ["mine.txt"]


@pytest.mark.parametrize(
    ("option", "said"),
    [("--target-database", "not a logical one"), ("--target-datadir", "not a physical one")],
)
def test_a_files_backup_restored_as_another_kind_says_which_target_it_takes(
    files: Files, option: str, said: str
) -> None:
    record = files.backup()
    target = files.tmp / "restored"
    code, _, err = files.run(
        "restore", record["id"], option, "restored" if "database" in option else str(target)
    )
    assert code == 1
    assert f"is a files backup, {said}" in err, err
    assert "--target-dir" in err, err  # the hint names the target this backup takes
    assert not target.exists()


def _malicious_backup(files: Files, members: list[tuple[tarfile.TarInfo, bytes]]) -> str:
    """A files backup whose tar was not made by respaldo (written with the repository API)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    repo = open_repository(load_settings(files.config))
    backup_id = "20261128T000000Z-0badc0de"
    with BackupWriter(repo, backup_id) as writer:
        writer.write_stream("files", io.BytesIO(buf.getvalue()))
        writer.commit(kind="files", source="uploads", started_at=datetime.now(UTC))
    return backup_id


@pytest.mark.parametrize(
    "attack",
    ["dotdot", "absolute", "through-link", "hardlink"],
)
def test_path_traversal_is_refused(files: Files, attack: str) -> None:
    ok = tarfile.TarInfo("ok.txt")
    members: list[tuple[tarfile.TarInfo, bytes]] = [(ok, b"fine")]
    if attack == "dotdot":
        members.append((tarfile.TarInfo("a/../../escaped.txt"), b"evil"))
    elif attack == "absolute":
        members.append((tarfile.TarInfo(str(files.tmp / "escaped.txt")), b"evil"))
    elif attack == "through-link":
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE
        link.linkname = str(files.tmp)
        members += [(link, b""), (tarfile.TarInfo("link/escaped.txt"), b"evil")]
    else:
        hard = tarfile.TarInfo("hard")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "../escaped.txt"
        members.append((hard, b""))
    backup_id = _malicious_backup(files, members)
    target = files.tmp / "target"
    code, _, err = files.run("restore", backup_id, "--target-dir", str(target))
    assert code == 1, err
    assert "refusing to extract" in err
    assert not (files.tmp / "escaped.txt").exists()
    assert not target.exists()  # made by the restore, removed with what it held


def test_a_killed_restore_leaves_no_truncated_file_and_the_next_one_finishes(
    files: Files,
) -> None:
    big = files.tree / "uploads" / "escaneo.tif"
    _write(big, os.urandom(1_500_000), 0o640, 1_700_000_000_000_000_000)
    record = files.backup()
    target = files.tmp / "restored"
    kill_stalled_restore(files.config, [record["id"], "--target-dir", str(target)], 700_000)

    # Every file under its final name is whole; the one cut short is not among them.
    marker = target / "respaldo-restore-incomplete"
    assert marker.is_file()
    restored_big = target / str(big)[1:]
    assert not restored_big.exists()
    for path in target.rglob("*"):
        if path.is_file() and not path.is_symlink() and path != marker:
            if path.name.startswith(".respaldo-part-"):
                continue
            original = Path("/") / path.relative_to(target)
            assert path.read_bytes() == original.read_bytes(), path

    # The next restore into the same directory says what it found, and finishes.
    code, _, err = files.run("restore", record["id"], "--target-dir", str(target))
    assert code == 0, err
    assert "incomplete restore" in err
    assert not marker.exists()
    assert [p for p in target.rglob(".respaldo-part-*")] == []
    expected = {
        k: v
        for k, v in _snapshot(files.tree).items()
        if not k.endswith(".tmp") and "cache" not in k
    }
    assert _snapshot(target / str(files.tree)[1:]) == expected


def test_the_service_backs_up_and_restore_tests_a_file_set_on_its_schedules(
    files: Files,
) -> None:
    with Context.open(load_settings(files.config)) as ctx:
        service = Service.create(ctx)
        schedule = {entry.name: entry for entry in service.schedule}
        service.fire(schedule["files:uploads"])
        service.fire(schedule["restore_test:uploads"])
        ran = {j.kind: j for j in jobs.list_jobs(ctx)}
    assert ran[JobKind.BACKUP].status is JobStatus.COMPLETED, ran[JobKind.BACKUP].error
    assert ran[JobKind.DRILL].status is JobStatus.COMPLETED, ran[JobKind.DRILL].error
    code, out, err = files.run("list", "--json")
    assert code == 0, err
    (record,) = json.loads(out)
    assert (record["databaseName"], record["backupType"], record["status"]) == (
        "uploads",
        "files",
        "completed",
    )
    assert record["isVerified"] is True  # the restore test passed
