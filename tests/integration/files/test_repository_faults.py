"""Reading a repository that cannot be written, or whose index is damaged, through the CLI.

A repository on read-only media (a read-only mount, S3 credentials that may only read) must
still verify and restore: readers then go without their lease, and say that keeping
garbage collection away is the operator's job. One damaged index file is a problem that
``verify --all`` reports (exit 3), not a failure to open, and restores read around it.

Files backups keep these tests free of PostgreSQL. The local read-only store is a tmpfs
mounted over the repository directory and remounted read-only (root ignores file modes,
so ``chmod`` would prove nothing); as another user, ``chmod -R a-w`` does the same job.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.operations.initialize import initialize
from respaldo.operations.repositories import init_repositories
from tests.integration.cli import RunsCli, secret_file
from tests.integration.physical.conftest import FAST_KDF
from tests.servers.s3 import S3Endpoint, new_prefix

pytestmark = pytest.mark.integration

PASSPHRASE = "read-only repository (test passphrase)"
GC_WARNING = "garbage collection"


@dataclass
class Site(RunsCli):
    tmp: Path
    config: Path
    tree: Path
    capsys: pytest.CaptureFixture[str]
    backed_up: dict[str, dict[Path, bytes]] = field(default_factory=dict)

    def backup(self) -> str:
        out, _ = self.ok("backup", "docs", "--json")
        backup_id: str = json.loads(out)["id"]
        self.backed_up[backup_id] = _files(self.tree)
        return backup_id

    def restores_exactly(self, backup_id: str) -> str:
        """Restore into a new directory, compare with what was backed up; returns stderr."""
        target = self.tmp / f"restored-{backup_id}"
        code, _, err = self.run("restore", backup_id, "--target-dir", str(target))
        assert code == 0, err
        assert _files(target / str(self.tree).lstrip("/")) == self.backed_up[backup_id]
        return err


def _files(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _config(tmp: Path, name: str, tree: Path, repository: str) -> Path:
    config = tmp / name
    config.write_text(
        f"""
cache_dir = "{tmp / "cache"}"
pack_size = 65536
[catalog]
url = "sqlite:///{tmp / "catalog.db"}"
[chunker]
min_size = 1024
avg_size = 4096
max_size = 16384
[[repositories]]
name = "main"
{repository}
[[file_sets]]
name = "docs"
paths = ["{tree}"]
""",
        encoding="utf-8",
    )
    return config


def _tree(tmp: Path) -> Path:
    tree = tmp / "srv" / "docs"
    tree.mkdir(parents=True)
    for i in range(3):
        (tree / f"doc-{i}.bin").write_bytes(os.urandom(40_000))
    (tree / "notes.txt").write_bytes(b"hola\n" * 2000)
    return tree


def _site(tmp: Path, repository: str, capsys: pytest.CaptureFixture[str]) -> Site:
    tree = _tree(tmp)
    config = _config(tmp, "respaldo.toml", tree, repository)
    initialize(load_settings(config), kdf=FAST_KDF)
    return Site(tmp, config, tree, capsys)


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)


# --- a read-only local store -------------------------------------------------------------


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A directory for the repository and a function that makes it read-only."""
    root = tmp_path / "repo"
    root.mkdir()
    if os.geteuid() != 0:

        def chmod_read_only() -> None:
            for path in [root, *root.rglob("*")]:
                path.chmod(path.stat().st_mode & ~0o222)

        yield root, chmod_read_only
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(root)], check=True)
    try:

        def remount_read_only() -> None:
            subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)

        yield root, remount_read_only
    finally:
        subprocess.run(["umount", str(root)], check=True)


def test_a_read_only_local_repository_verifies_and_restores(
    read_only_dir: tuple[Path, Callable[[], None]],
    tmp_path: Path,
    passphrase: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, make_read_only = read_only_dir
    site = _site(tmp_path, f'url = "file://{root}"', capsys)
    backup_id = site.backup()
    make_read_only()
    with pytest.raises(OSError):
        (root / "probe").write_bytes(b"")  # the store really refuses writes
    before = _files(root)

    _, err = site.ok("verify", "--all")
    assert err.count(GC_WARNING) == 1, err
    assert "read-only" in err
    err = site.restores_exactly(backup_id)
    assert err.count(GC_WARNING) == 1, err
    assert _files(root) == before


def test_a_writable_repository_is_read_under_a_lease_without_a_warning(
    tmp_path: Path, passphrase: None, capsys: pytest.CaptureFixture[str]
) -> None:
    site = _site(tmp_path, f'url = "file://{tmp_path / "repo"}"', capsys)
    backup_id = site.backup()
    _, err = site.ok("verify", backup_id)
    assert GC_WARNING not in err
    assert GC_WARNING not in site.restores_exactly(backup_id)


# --- S3 credentials that may only read -----------------------------------------------------


def test_s3_credentials_that_cannot_write_still_verify_and_restore(
    s3_server: S3Endpoint,
    tmp_path: Path,
    passphrase: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = new_prefix()

    def s3(key_id: str, secret: str, file: str) -> str:
        return f"""url = "s3://{s3_server.bucket}/{prefix}"
endpoint_url = "{s3_server.endpoint_url}"
region = "us-east-1"
access_key_id = "{key_id}"
secret_access_key_file = "{secret_file(tmp_path / file, secret)}"
"""

    site = _site(tmp_path, s3(s3_server.access_key_id, s3_server.secret_access_key, "a"), capsys)
    backup_id = site.backup()
    site.config = _config(
        tmp_path,
        "reader.toml",
        site.tree,
        s3(s3_server.reader_key_id, s3_server.reader_secret, "r"),
    )
    client = s3_server.client()
    before = client.list_objects_v2(Bucket=s3_server.bucket, Prefix=prefix)["Contents"]

    _, err = site.ok("verify", "--all")
    assert err.count(GC_WARNING) == 1, err
    assert "AccessDenied" in err
    err = site.restores_exactly(backup_id)
    assert err.count(GC_WARNING) == 1, err
    assert s3_server.reader_secret not in err
    after = client.list_objects_v2(Bucket=s3_server.bucket, Prefix=prefix)["Contents"]
    assert after == before


# --- a damaged index file ----------------------------------------------------------------


def test_a_damaged_index_file_makes_verify_exit_3_and_restores_read_around_it(
    tmp_path: Path, passphrase: None, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    site = _site(tmp_path, f'url = "file://{repo}"', capsys)
    first = site.backup()
    before = set((repo / "index").iterdir())
    (site.tree / "new.bin").write_bytes(os.urandom(30_000))
    second = site.backup()
    (damaged,) = set((repo / "index").iterdir()) - before
    data = bytearray(damaged.read_bytes())
    data[40] ^= 0xFF
    damaged.write_bytes(bytes(data))

    code, _, err = site.run("verify", "--all")
    assert code == 3, err
    assert f"index/{damaged.name}" in err
    assert "index file is damaged" in err
    for backup_id in (first, second):
        site.restores_exactly(backup_id)
    code, _, err = site.run("index", "rebuild")
    assert code == 0, err
    site.ok("verify", "--all")


# --- a lost or damaged repository config --------------------------------------------------


def test_a_lost_config_stops_init_and_is_restored_from_the_key_files(
    tmp_path: Path, passphrase: None, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    site = _site(tmp_path, f'url = "file://{repo}"', capsys)
    backup_id = site.backup()
    original = (repo / "config").read_bytes()
    (repo / "config").unlink()
    before = _files(repo)

    for command in (("init",), ("verify", "--all"), ("index", "rebuild")):
        code, _, err = site.run(*command)
        assert code == 1, (command, err)
        assert "config is missing" in err, err
        assert "respaldo repository restore-config" in err
        assert _files(repo) == before  # init created nothing, rebuild deleted nothing

    _, err = site.ok("repository", "restore-config")
    assert "config restored from key file keys/" in err
    assert json.loads((repo / "config").read_bytes()) == json.loads(original)
    site.ok("verify", "--all")
    site.restores_exactly(backup_id)


def test_a_damaged_config_id_is_named_and_restored_from_a_mirror(
    tmp_path: Path, passphrase: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """One changed digit of the id: not 'wrong passphrase'. The repository is of the first
    format (key files without a copy of config): a mirror's config brings it back."""
    repo = tmp_path / "repo"
    site = _site(
        tmp_path,
        f'url = "file://{repo}"\n[[repositories]]\nname = "mirror"\n'
        f'url = "file://{tmp_path / "mirror"}"',
        capsys,
    )
    backup_id = site.backup()
    config = json.loads((repo / "config").read_bytes())
    for key_file in (repo / "keys").iterdir():  # as written before key files carried config
        doc = json.loads(key_file.read_bytes())
        del doc["config"], doc["checksum"]
        key_file.write_text(json.dumps(doc))
    del config["mac"]
    good_id = config["id"]
    config["id"] = ("1" if good_id[0] != "1" else "2") + good_id[1:]
    (repo / "config").write_text(json.dumps(config))
    shutil.rmtree(tmp_path / "cache")  # nor a local cache to recognise the id by

    code, _, err = site.run("verify", backup_id, "--repository", "main")
    assert code == 1
    assert "wrong passphrase" in err and "restore-config" in err  # both causes named

    _, err = site.ok("repository", "restore-config", "--from-mirror", "mirror")
    assert "config restored from mirror mirror" in err
    assert json.loads((repo / "config").read_bytes())["id"] == good_id
    site.ok("verify", backup_id, "--repository", "main")


def test_restore_config_refuses_an_intact_config(
    tmp_path: Path, passphrase: None, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    site = _site(tmp_path, f'url = "file://{repo}"', capsys)
    before = _files(repo)
    code, _, err = site.run("repository", "restore-config")
    assert code == 1
    assert "intact" in err
    assert _files(repo) == before


def test_init_stops_before_creating_anything_when_a_mirror_lost_its_config(
    tmp_path: Path, passphrase: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The primary exists; of two secondaries, the first is new and the second lost its
    config: the first must not be created either (init is all or nothing here)."""
    lost = tmp_path / "lost"
    site = _site(tmp_path, f'url = "file://{lost}"', capsys)
    (lost / "config").unlink()
    before = _files(lost)
    site.config = _config(
        tmp_path,
        "three.toml",
        site.tree,
        f'url = "file://{tmp_path / "primary"}"\n'
        f'[[repositories]]\nname = "new"\nurl = "file://{tmp_path / "new"}"\n'
        f'[[repositories]]\nname = "lost"\nurl = "file://{lost}"',
    )
    init_repositories(
        load_settings(
            _config(tmp_path, "one.toml", site.tree, f'url = "file://{tmp_path / "primary"}"')
        ),
        kdf=FAST_KDF,
    )
    code, _, err = site.run("init")
    assert code == 1
    assert "config is missing" in err and str(lost) in err
    assert not (tmp_path / "new").exists()
    assert _files(lost) == before
