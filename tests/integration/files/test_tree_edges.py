"""``files`` backups of awkward real trees: what a demanding user puts in a file set.

Each test builds the tree it needs in a temporary directory, backs it up with the real
CLI and, where the point is what comes back, restores it and compares.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from respaldo import reasons
from respaldo.config import load_settings
from respaldo.files import TreeTarStream
from respaldo.i18n import translations
from respaldo.operations.repositories import open_repository
from respaldo.operations.targets import MARKER
from respaldo.repository import BackupWriter
from tests.integration.cli import RunsCli
from tests.integration.files.test_files import files_config
from tests.integration.physical.conftest import OS_USER, chown_tree, server_respaldo
from tests.integration.synced import Synced, synced_before, traced, tree

pytestmark = pytest.mark.integration

PASSPHRASE = "awkward trees (test passphrase)"


@dataclass
class Site(RunsCli):
    base: Path
    config: Path
    tree: Path
    capsys: pytest.CaptureFixture[str]

    def backup(self) -> dict[str, Any]:
        code, out, err = self.run("backup", "uploads", "--json")
        assert code == 0, err
        record: dict[str, Any] = json.loads(out)
        return record

    def restore(self, backup_id: str) -> Path:
        """Restore into a new directory; returns where the tree came back."""
        target = Path(tempfile.mkdtemp(prefix="restored-", dir=self.base)) / "out"
        code, _, err = self.run("restore", backup_id, "--target-dir", str(target))
        assert code == 0, err
        return target / str(self.tree).lstrip("/")

    def statuses(self) -> list[str]:
        code, out, err = self.run("list", "--json")
        assert code == 0, err
        return [row["status"] for row in json.loads(out)]


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Site]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    # Not under tmp_path: the unprivileged user of some tests must be able to enter it.
    base = Path(tempfile.mkdtemp(prefix="respaldo-files-"))
    base.chmod(0o755)
    tree = base / "srv" / "uploads"
    tree.mkdir(parents=True)
    config = files_config(base, [tree])
    config.chmod(0o644)
    try:
        yield Site(base, config, tree, capsys)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_configured_path_that_is_a_symlink_is_backed_up_with_what_it_points_to(
    site: Site,
) -> None:
    # /srv/uploads -> /data/uploads: the usual way an upload directory is moved to a
    # bigger disk. Backing up the link alone would store no upload at all.
    real = site.base / "data" / "uploads"
    real.mkdir(parents=True)
    (real / "factura.pdf").write_bytes(b"%PDF factura")
    (real / "2024").mkdir()
    (real / "2024" / "foto.jpg").write_bytes(b"jpeg")
    site.tree.rmdir()
    site.tree.symlink_to(real)

    record = site.backup()
    restored = site.restore(record["id"])
    assert restored.is_dir() and not restored.is_symlink()
    assert (restored / "factura.pdf").read_bytes() == b"%PDF factura"
    assert (restored / "2024" / "foto.jpg").read_bytes() == b"jpeg"


def test_a_configured_path_that_is_a_dangling_symlink_fails_the_backup(site: Site) -> None:
    site.tree.rmdir()
    site.tree.symlink_to(site.base / "data" / "gone")
    code, _, err = site.run("backup", "uploads")
    assert code == 1
    assert "does not exist (a link to" in err
    assert site.statuses() == ["failed"]


def _run_as_unprivileged(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``respaldo`` as a user that is not root (what it runs as in a service)."""
    prefix = ["runuser", "-u", OS_USER, "--"] if os.geteuid() == 0 else []
    env = {**os.environ, "RESPALDO_PASSPHRASE": PASSPHRASE}
    return subprocess.run(
        [*prefix, server_respaldo(), "--config", str(site.config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_unreadable_files_and_directories_fail_the_backup(site: Site) -> None:
    (site.tree / "ok.pdf").write_bytes(b"fine")
    (site.tree / "secret.pdf").write_bytes(b"cannot be read")
    (site.tree / "locked").mkdir()
    (site.tree / "locked" / "inside.pdf").write_bytes(b"never listed")
    chown_tree(site.base)
    (site.tree / "secret.pdf").chmod(0o000)
    (site.tree / "locked").chmod(0o000)
    try:
        done = _run_as_unprivileged(site, "backup", "uploads")
    finally:
        (site.tree / "locked").chmod(0o755)
    # A backup that lacks files it was told to keep is not a good backup: it fails,
    # saying which paths it could not read, and nothing is recorded as completed.
    assert done.returncode == 1, done
    assert "secret.pdf" in done.stderr and "locked" in done.stderr, done.stderr
    assert "exclude" in done.stderr, done.stderr
    assert site.statuses() == ["failed"]


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (["--replace"], "--replace"),
        (["--no-owner"], "--no-owner"),
        (["--globals"], "--globals"),
        (["--jobs", "2"], "--jobs"),
        (["--os-user", "nobody"], "--os-user"),
        (["--work-dir", "/tmp"], "--work-dir"),
        (["--database", "erp"], "--database"),
    ],
)
def test_options_a_files_restore_does_not_take_are_refused(
    site: Site, given: list[str], named: str
) -> None:
    # --no-owner as root would still give every file its backed-up owner, --replace
    # would still refuse a non-empty directory: an option that is silently ignored
    # is a promise broken. It is refused before anything is read or written.
    (site.tree / "a.pdf").write_bytes(b"a")
    record = site.backup()
    target = site.base / "out"
    code, _, err = site.run("restore", record["id"], "--target-dir", str(target), *given)
    assert code == 1, err
    kind = "into a data directory" if named == "--os-user" else "of a logical backup"
    assert f"{named}: only applies to a restore {kind}" in err, err
    assert not target.exists()


def _locked_tree(site: Site) -> None:
    """A directory nobody may enter (0000) and a read-only one (0555), with files."""
    (site.tree / "locked").mkdir()
    (site.tree / "locked" / "inside.pdf").write_bytes(b"locked away")
    (site.tree / "ro").mkdir()
    (site.tree / "ro" / "kept.pdf").write_bytes(b"read only")
    (site.tree / "ro" / "kept.pdf").chmod(0o444)
    (site.tree / "ro").chmod(0o555)
    (site.tree / "locked").chmod(0o000)


def test_an_unprivileged_restore_gives_back_directories_it_cannot_enter(site: Site) -> None:
    _locked_tree(site)
    record = site.backup()  # as root, or as the owner: both can read the whole tree
    target = site.base / "out"
    chown_tree(site.base)
    done = _run_as_unprivileged(site, "restore", record["id"], "--target-dir", str(target))
    assert done.returncode == 0, done
    restored = target / str(site.tree).lstrip("/")
    assert (restored / "locked").stat().st_mode & 0o7777 == 0o000
    assert (restored / "ro").stat().st_mode & 0o7777 == 0o555
    (restored / "locked").chmod(0o700)  # for the checks, when not root
    assert (restored / "locked" / "inside.pdf").read_bytes() == b"locked away"
    assert (restored / "ro" / "kept.pdf").read_bytes() == b"read only"
    assert (restored / "ro" / "kept.pdf").stat().st_mtime_ns == (
        (site.tree / "ro" / "kept.pdf").stat().st_mtime_ns
    )


def test_a_restore_clears_a_killed_one_that_left_directories_it_cannot_enter(
    site: Site,
) -> None:
    (site.tree / "a.pdf").write_bytes(b"a")
    record = site.backup()
    # What a restore killed while it set the directories' modes leaves: its marker (its
    # process gone) and directories that its user can no longer enter or write.
    target = site.base / "out"
    left = target / "srv" / "old"
    left.mkdir(parents=True)
    (left / "partial.pdf").write_bytes(b"partial")
    (target / "respaldo-restore-incomplete").write_text(
        json.dumps({"backup": record["id"], "pid": os.getpid(), "start": 1, "host": os.uname()[1]})
    )
    chown_tree(site.base)
    left.chmod(0o000)
    (target / "srv").chmod(0o555)
    done = _run_as_unprivileged(site, "restore", record["id"], "--target-dir", str(target))
    assert done.returncode == 0, done
    assert "incomplete restore" in done.stderr
    assert sorted(p.name for p in target.iterdir()) == [str(site.tree).split("/")[1]]


def test_a_restore_reads_the_stream_to_its_end_and_checks_its_checksum(site: Site) -> None:
    # Every chunk is authenticated on its own; the stream's SHA-256 in the manifest is
    # the end-to-end check that they are the right ones in the right order. The tar
    # ends before the stream does (a reader stops at its end-of-archive blocks), so a
    # restore that stopped reading there never made that check.
    # A tar whose length is a whole number of tarfile's 10 KiB records: its reader's
    # last request for data ends exactly where the stream does.
    for blocks in range(100, 120):
        (site.tree / "a.pdf").write_bytes(os.urandom(blocks * tarfile.BLOCKSIZE))
        data = TreeTarStream([site.tree]).read()
        if len(data) % tarfile.RECORDSIZE == 0:
            break
    assert len(data) % tarfile.RECORDSIZE == 0
    repo = open_repository(load_settings(site.config))
    backup_id = "20261128T000000Z-0badc0de"
    with BackupWriter(repo, backup_id) as writer:
        info = writer.write_stream("files", io.BytesIO(data))
        # What a writer that got its bookkeeping wrong would record.
        writer._streams[-1] = dataclasses.replace(info, sha256=hashlib.sha256(b"x").hexdigest())
        writer.commit(kind="files", source="uploads", started_at=datetime.now(UTC))
    target = site.base / "out"
    code, _, err = site.run("restore", backup_id, "--target-dir", str(target))
    assert code != 0, err
    assert "does not match its checksum" in err, err
    assert not target.exists()


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (["{tree}/../uploads"], "'..'"),
        (["{tree}", "{tree}/2024"], "inside"),
        (["{tree}", "{tree}/"], "twice"),
    ],
)
def test_file_set_paths_that_could_not_be_restored_as_given_are_refused(
    site: Site, paths: list[str], message: str
) -> None:
    # A path with '..' went into the tar as it was written, and every restore of it
    # refused it as leaving the target: a completed backup that cannot be restored.
    # A path inside another was stored twice, and counted twice.
    (site.tree / "2024").mkdir()
    (site.tree / "2024" / "a.pdf").write_bytes(b"a")
    given = ", ".join(f'"{p.format(tree=site.tree)}"' for p in paths)
    text = site.config.read_text().replace(f'paths = ["{site.tree}"]', f"paths = [{given}]")
    site.config.write_text(text)
    code, _, err = site.run("backup", "uploads")
    assert code != 0
    assert message in err, err


@pytest.fixture
def scratch(site: Site, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory drills make their scratch directories in, for this test."""
    where = site.base / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def test_a_drill_restores_a_files_backup_and_checks_what_came_back(
    site: Site, scratch: Path
) -> None:
    _locked_tree(site)
    (site.tree / "a.pdf").write_bytes(os.urandom(30_000))
    (site.tree / "link").symlink_to("a.pdf")
    record = site.backup()
    code, out, err = site.run("drill", "uploads", "--json")  # the file set: its newest
    assert code == 0, err
    result = json.loads(out)
    assert result["backupId"] == record["id"] and result["passed"], result
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["restore"]["ok"] and checks["contents"]["ok"], checks
    assert "3 files, 3 directories, 1 link," in checks["contents"]["detail"]
    assert list(scratch.iterdir()) == []  # the scratch tree is gone, 0000 directory too
    code, out, _ = site.run("list", "--json")
    assert json.loads(out)[0]["isVerified"] is True


def test_a_drill_of_a_files_backup_that_cannot_be_restored_fails(site: Site, scratch: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("srv/ok.txt"))
        tar.addfile(tarfile.TarInfo("srv/../../escaped.txt"))
    repo = open_repository(load_settings(site.config))
    backup_id = "20261128T000000Z-0badc0de"
    with BackupWriter(repo, backup_id) as writer:
        writer.write_stream("files", io.BytesIO(buf.getvalue()))
        writer.commit(kind="files", source="uploads", started_at=datetime.now(UTC))
    code, out, err = site.run("drill", backup_id, "--json")
    assert code == 3, err
    result = json.loads(out)
    assert not result["passed"]
    failed = [c for c in result["checks"] if not c["ok"]]
    assert failed[0]["name"] == "restore" and "refusing to extract" in failed[0]["detail"]
    assert list(scratch.iterdir()) == []


def test_a_drill_of_a_files_backup_refuses_amcheck(site: Site, scratch: Path) -> None:
    (site.tree / "a.pdf").write_bytes(b"a")
    record = site.backup()
    code, _, err = site.run("drill", record["id"], "--amcheck")
    assert code == 1
    assert "--amcheck: only applies to" in err, err


def test_a_configured_path_that_cannot_be_reached_fails_the_backup_saying_so(site: Site) -> None:
    (site.tree / "a.pdf").write_bytes(b"a")
    chown_tree(site.base)
    # respaldo's user may not enter the directory the configured path is in.
    if os.geteuid() == 0:
        os.chown(site.base / "srv", 0, 0)
        (site.base / "srv").chmod(0o700)
    else:
        (site.base / "srv").chmod(0o000)
    try:
        done = _run_as_unprivileged(site, "backup", "uploads")
    finally:
        (site.base / "srv").chmod(0o755)
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr, done.stderr
    assert f"file set path {site.tree} cannot be read: Permission denied" in done.stderr
    assert "hint:" in done.stderr


def test_a_restore_into_a_directory_it_cannot_create_says_so(site: Site) -> None:
    (site.tree / "a.pdf").write_bytes(b"a")
    record = site.backup()
    chown_tree(site.base)
    parent = site.base / "readonly"
    parent.mkdir()
    parent.chmod(0o555)
    target = parent / "out"
    done = _run_as_unprivileged(site, "restore", record["id"], "--target-dir", str(target))
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr, done.stderr
    assert f"cannot create {target}: Permission denied" in done.stderr, done.stderr
    assert not target.exists()


SMALL_DISK = """
import os, resource, signal, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # ignored signals stay ignored across exec
os.execv(sys.argv[1], sys.argv[1:])
"""
"""Runs a program whose files may not grow past 1 MiB (a full disk, a quota): writing
more fails with EFBIG instead of killing it."""


def test_a_restore_that_runs_out_of_room_removes_what_it_wrote_and_says_so(site: Site) -> None:
    (site.tree / "small.pdf").write_bytes(b"s" * 1000)
    (site.tree / "big.tif").write_bytes(os.urandom(2 * 1024 * 1024))
    record = site.backup()
    target = site.base / "out"
    restore = [server_respaldo(), "--config", str(site.config), "restore", record["id"]]
    done = subprocess.run(
        [sys.executable, "-c", SMALL_DISK, *restore, "--target-dir", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "RESPALDO_PASSPHRASE": PASSPHRASE},
    )
    assert done.returncode == 1, done
    assert f"cannot write into {target}: File too large" in done.stderr, done.stderr
    assert "nothing of it was kept" in done.stderr, done.stderr
    assert not target.exists()


def test_a_restore_into_a_symlink_names_the_directory_to_give_instead(site: Site) -> None:
    (site.tree / "a.pdf").write_bytes(b"a")
    record = site.backup()
    real = site.base / "data" / "restore"
    real.mkdir(parents=True)
    link = site.base / "restore"
    link.symlink_to(real)
    code, _, err = site.run("restore", record["id"], "--target-dir", str(link))
    assert code == 1
    assert f"{link} is a symbolic link (to {real})" in err, err
    assert f"give the directory itself ({real})" in err, err
    assert list(real.iterdir()) == []


def test_respaldos_own_repository_cache_and_catalog_inside_the_tree_are_left_out(
    site: Site,
) -> None:
    # paths = ["/srv"] with the repository in /srv/backups: backing it up into itself
    # made each backup hold every earlier one (the repository grew with its own square).
    (site.tree / "a.pdf").write_bytes(os.urandom(200_000))
    text = site.config.read_text().replace(f'paths = ["{site.tree}"]', f'paths = ["{site.base}"]')
    site.config.write_text(text)
    first = site.backup()
    second = site.backup()
    assert second["storedNewBytes"] < 20_000, second  # not the first backup's packs again
    _, err = site.ok("backup", "uploads")
    assert f"{site.base / 'repo'}: respaldo's own repository local, left out" in err, err
    assert f"{site.base / 'cache'}: respaldo's own cache, left out" in err, err
    assert f"{site.base / 'catalog.db'}: respaldo's own catalog, left out" in err, err
    restored = Path(tempfile.mkdtemp(prefix="restored-", dir=site.base)) / "out"
    site.ok("restore", first["id"], "--target-dir", str(restored))
    tree = restored / str(site.base).lstrip("/")
    assert (tree / "srv" / "uploads" / "a.pdf").is_file()
    assert not (tree / "repo").exists() and not (tree / "cache").exists()
    assert not (tree / "catalog.db").exists()


def test_a_restore_that_cannot_give_files_their_owners_fails(site: Site) -> None:
    # Root without the right to change owners (a container that dropped CAP_CHOWN, a
    # share that maps root to nobody): every file came back as root's, and the restore
    # said it had restored them.
    if os.geteuid() != 0:
        pytest.skip("owners are restored only by root")
    (site.tree / "a.pdf").write_bytes(b"a")
    chown_tree(site.tree)  # the server's user's, not root's
    record = site.backup()
    target = site.base / "out"
    no_chown = ["setpriv", "--bounding-set", "-chown", "--inh-caps", "-chown", "--"]
    restore = [server_respaldo(), "--config", str(site.config), "restore", record["id"]]
    done = subprocess.run(
        [*no_chown, *restore, "--target-dir", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "RESPALDO_PASSPHRASE": PASSPHRASE},
    )
    assert done.returncode == 1, done
    assert f"its owner {OS_USER}:" in done.stderr, done.stderr
    assert "Operation not permitted" in done.stderr, done.stderr
    assert not target.exists()


def _restored_traced(site: Site, backup_id: str, **trace: Any) -> tuple[Path, Synced]:
    """``backup_id`` restored by the real CLI under strace (tests/integration/synced.py,
    ``trace`` its options) into a new directory: that directory, and what was put on disk
    before the marker's removal (the restore complete)."""
    target = site.base / "restored"
    log = site.base / "strace.log"
    respaldo = str(Path(sys.executable).with_name("respaldo"))
    restore = [respaldo, "--config", str(site.config), "restore", backup_id]
    done = traced([*restore, "--target-dir", str(target)], log, **trace)
    assert done.returncode == 0, done.stderr
    return target, synced_before(log, f'/{MARKER}"')


def test_a_restore_has_every_file_and_directory_on_disk_before_it_is_complete(
    site: Site,
) -> None:
    # A power cut cannot be played: what the real CLI asked the kernel is watched instead.
    # Without the fsyncs, the marker's removal (itself fsynced) could reach the disk
    # before the files did, and a power cut left a tree without the marker whose files
    # were empty or short: a restore that looks complete and is not.
    (site.tree / "2024" / "obra-17").mkdir(parents=True)
    (site.tree / "2024" / "obra-17" / "plano.dwg").write_bytes(os.urandom(70_000))
    (site.tree / "2024" / "vacio").mkdir()
    (site.tree / "factura.pdf").write_bytes(os.urandom(3_000))
    (site.tree / "empty.txt").write_bytes(b"")
    (site.tree / "ultimo").symlink_to("factura.pdf")
    target, synced = _restored_traced(site, site.backup()["id"], timeout=120)
    written = tree(target) - {str(target / MARKER)}
    assert str(target / str(site.tree).lstrip("/") / "2024" / "obra-17" / "plano.dwg") in written
    assert synced.missing(written) == []


def test_where_the_file_system_cannot_be_synced_whole_each_file_is(site: Site) -> None:
    # The walk a restore falls back on without syncfs(2) (not Linux, an old kernel):
    # every regular file and directory fsynced, links not followed, nothing skipped.
    (site.tree / "a" / "b").mkdir(parents=True)
    (site.tree / "a" / "b" / "plano.dwg").write_bytes(os.urandom(5_000))
    (site.tree / "a" / "vacio.txt").write_bytes(b"")
    (site.tree / "a" / "fuera").symlink_to("/etc")
    log = site.base / "strace.log"
    walk = (
        "from pathlib import Path; from respaldo.operations.targets import _fsync_tree; "
        f"_fsync_tree(Path({str(site.tree)!r}))"
    )
    done = traced([sys.executable, "-c", walk], log)
    assert done.returncode == 0, done.stderr
    synced = synced_before(log, None)
    assert not synced.filesystems
    assert synced.missing(tree(site.tree)) == []
    assert not any(path.startswith("/etc") for path in synced.files)


def _backed_up_from_a_share(site: Site, mount: Path) -> dict[str, Any]:
    """A share (a 1 MB tmpfs) mounted on ``mount`` with a file on it, backed up, then
    unmounted as a share that did not come back: the backup's record."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        (mount / "plano-obra-17.dwg").write_bytes(os.urandom(2_000))
        return site.backup()
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("below", ["obras", ""], ids=["inside", "configured"])
def test_a_share_that_is_not_mounted_fails_the_backup_not_an_empty_one(
    site: Site, below: str
) -> None:
    # A share mounted in the tree (or on the configured path) that did not come back
    # leaves its empty mount point: the backup completed without its files, the size
    # check was red for that one backup only, and retention, counting the empty
    # backups good, expired every backup that held them.
    mount = site.tree / below if below else site.tree
    if below:
        (site.tree / "factura.pdf").write_bytes(b"pdf")
        mount.mkdir()
    first = _backed_up_from_a_share(site, mount)
    code, _, err = site.run("backup", "uploads")
    assert code == 1
    assert f"{mount} is an empty directory, where backup {first['id']} found a file" in err
    assert "its share or disk is not mounted" in err and "hint:" in err
    assert site.statuses() == ["failed", "completed"]
    # The failure's page and alerts in Spanish read it in Spanish.
    error = err.split("respaldo: error: ", 1)[1].splitlines()[0]
    spanish = reasons.reason(error, translations("es").gettext)
    assert f"{mount} es un directorio vacío, donde el backup {first['id']}" in spanish
    # Emptied for good: removed (or holding files again), the backup goes on.
    if below:
        mount.rmdir()
    else:
        (mount / "nuevo.txt").write_bytes(b"x")
    site.backup()
    assert site.statuses() == ["completed", "failed", "completed"]


def test_a_link_to_a_directory_outside_the_file_set_is_a_warning(site: Site) -> None:
    # The upload directory moved to a bigger disk and linked back below the configured
    # path: the link is stored, never followed, and every backup and restore test passed
    # without a single upload, saying nothing.
    bigger = site.base / "data" / "uploads"
    (bigger / "2024").mkdir(parents=True)
    (bigger / "2024" / "factura.pdf").write_bytes(b"pdf")
    (site.tree / "releases" / "v5").mkdir(parents=True)
    (site.tree / "uploads").symlink_to(bigger)
    (site.tree / "current").symlink_to(site.tree / "releases" / "v5")  # inside: stored
    (site.tree / "hosts").symlink_to("/etc/hosts")  # a file: nothing of a tree missing
    (site.tree / "roto").symlink_to(site.base / "nowhere")  # dangling: stored as written
    code, out, err = site.run("backup", "uploads", "--json")
    assert code == 0, err
    warning = (
        f"{site.tree / 'uploads'} is a link to the directory {bigger}, outside the file set: "
        "its files are not backed up"
    )
    assert warning in err
    repo = open_repository(load_settings(site.config))
    assert repo.load_manifest(json.loads(out)["id"]).meta["warnings"] == [warning]
    # Excluded, it is said no more.
    site.config.write_text(
        site.config.read_text().replace('paths = ["', 'exclude = ["/uploads"]\npaths = ["')
    )
    code, _, err = site.run("backup", "uploads")
    assert code == 0, err
    assert "outside the file set" not in err


def test_prune_keeps_the_last_backup_before_the_size_fell_and_stayed_down(site: Site) -> None:
    # A share left empty, tables emptied by mistake: the backups after it are "good" and
    # small, the size check was red for the first of them only (the next one is compared
    # with it), and retention expired the last backup holding the data once its rules
    # had enough newer ones.
    site.config.write_text(
        site.config.read_text()
        + "\n[retention]\nkeep_until_expires = false\nkeep_last = 2\nmin_keep = 1\n"
    )
    (site.tree / "obra-17").mkdir()
    (site.tree / "obra-17" / "planos.dwg").write_bytes(os.urandom(300_000))
    full = site.backup()
    shutil.rmtree(site.tree / "obra-17")
    small = [site.backup() for _ in range(3)]
    out, _ = site.ok("prune", "--dry-run")
    assert full["id"] in out and "last before the size fell to 1% of it" in out, out
    site.ok("prune")
    code, out, err = site.run("list", "--json")
    assert code == 0, err
    kept = {row["id"] for row in json.loads(out)}
    assert kept == {full["id"], small[1]["id"], small[2]["id"]}
    # Once a backup is that large again, it goes the way of the others.
    (site.tree / "obra-17.dwg").write_bytes(os.urandom(300_000))
    again = site.backup()
    site.ok("prune")
    code, out, err = site.run("list", "--json")
    assert {row["id"] for row in json.loads(out)} == {small[2]["id"], again["id"]}


@pytest.mark.parametrize("how", ["excluded", "removed"])
def test_a_share_left_out_of_the_file_set_on_purpose_does_not_fail_the_backup(
    site: Site, how: str
) -> None:
    # A share taken out of the file set (excluded, or its configured path removed) and
    # unmounted, its mount point kept (an fstab entry, a share to come back later): the
    # backup failed forever, naming a directory it no longer backs up, until the mount
    # point was removed; only what the file set still reaches is judged.
    scans = site.base / "mnt" / "scans"
    scans.mkdir(parents=True)
    mount = site.tree / "obras" if how == "excluded" else scans
    mount.mkdir(exist_ok=True)
    (site.tree / "factura.pdf").write_bytes(b"pdf")
    site.config.write_text(
        site.config.read_text().replace(f'"{site.tree}"', f'"{site.tree}", "{scans}"')
    )
    _backed_up_from_a_share(site, mount)
    if how == "excluded":
        site.config.write_text(
            site.config.read_text().replace('paths = ["', 'exclude = ["/obras"]\npaths = ["')
        )
    else:
        site.config.write_text(site.config.read_text().replace(f', "{scans}"', ""))
    site.backup()
    assert site.statuses() == ["completed", "completed"]


@pytest.mark.parametrize("error", ["EPERM", "ENOSYS"])
def test_a_restore_where_syncfs_is_refused_fsyncs_each_file_instead(site: Site, error: str) -> None:
    # syncfs(2) refused (a container's or a service's seccomp filter answers EPERM, an
    # old kernel ENOSYS): not a disk error. The restore failed, saying it could not
    # write the target to disk, and removed the whole tree it had just restored.
    (site.tree / "2024").mkdir()
    (site.tree / "2024" / "plano.dwg").write_bytes(os.urandom(20_000))
    (site.tree / "factura.pdf").write_bytes(os.urandom(3_000))
    target, synced = _restored_traced(site, site.backup()["id"], refuse=f"syncfs:{error}")
    assert not synced.filesystems
    written = tree(target) - {str(target / MARKER)}
    assert str(target / str(site.tree).lstrip("/") / "2024" / "plano.dwg") in written
    assert synced.missing(written) == []


def test_a_configured_link_to_a_disk_that_did_not_mount_fails_the_backup(site: Site) -> None:
    # paths = ["/srv/uploads"], a link to where the uploads' disk is mounted: the disk
    # that did not mount left its empty mount point, and the backup, which follows the
    # link, completed with none of the uploads (the link was never judged).
    disk = site.base / "mnt" / "uploads-disk"
    disk.mkdir(parents=True)
    site.tree.rmdir()
    site.tree.symlink_to(disk)
    first = _backed_up_from_a_share(site, disk)
    code, _, err = site.run("backup", "uploads")
    assert code == 1
    assert f"{site.tree} is an empty directory, where backup {first['id']} found a" in err
    assert site.statuses() == ["failed", "completed"]


def test_a_configured_link_to_a_directory_of_another_disk_may_be_emptied(site: Site) -> None:
    # The link leads to a plain directory of a disk mounted above it (/data/uploads, the
    # disk on /data): no mount point, so emptied on purpose it is backed up empty.
    data = site.base / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(data)], check=True)
    try:
        (data / "uploads").mkdir()
        (data / "uploads" / "borrador.txt").write_bytes(b"x")
        site.tree.rmdir()
        site.tree.symlink_to(data / "uploads")
        site.backup()
        (data / "uploads" / "borrador.txt").unlink()
        site.backup()
    finally:
        subprocess.run(["umount", str(data)], check=True)
    assert site.statuses() == ["completed", "completed"]
