"""A copy of the key kept outside the repository: ``respaldo key export`` and ``key import``.

Without a key file nothing in a repository can be decrypted, and the passphrase alone
cannot make one again. Every repository keeps its key files beside the data, so one
accident or attacker that takes ``keys/`` from the primary and the bucket (a lifecycle
rule on the wrong prefix, a cleanup script, someone with the credentials and no Object
Lock) loses every backup. The key file is protected by the passphrase (argon2id), so a
copy of it can be kept anywhere the passphrase is not: exported once, imported on a fresh
machine after the loss, the backups restore.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.cli.main import invoke
from respaldo.repository import ChunkerParams, Repository, iter_stream
from respaldo.storage.local import LocalStorage
from tests.unit.operations.support import (
    FAST_KDF,
    PASSPHRASE,
    Installation,
    data_for,
    write_config,
)

pytestmark = pytest.mark.unit


def _run(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = invoke(["--config", str(config), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def inst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Installation:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    return Installation.create(tmp_path)


def test_an_exported_key_brings_back_repositories_whose_keys_were_all_lost(
    inst: Installation, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    backup_id = inst.backup(timedelta(days=1))
    inst.replicate()
    inst.close()
    exported = tmp_path / "elsewhere" / "respaldo-key.json"
    exported.parent.mkdir()
    code, _, err = _run(capsys, inst.config, "key", "export", "--output", str(exported))
    assert code == 0, err
    assert exported.stat().st_mode & 0o777 == 0o600
    assert PASSPHRASE not in exported.read_text()
    # Every key file gone, everywhere; and a fresh machine: no local cache either.
    for name in ("repo", "second"):
        shutil.rmtree(inst.root / name / "keys")
    shutil.rmtree(inst.root / "cache")
    code, _, err = _run(capsys, inst.config, "key", "list")
    assert code != 0 and "no key files" in err
    assert "respaldo key import" in err  # the hint names the way back

    code, _, err = _run(capsys, inst.config, "key", "import", str(exported))
    assert code == 0, err
    code, _, err = _run(capsys, inst.config, "key", "import", str(exported), "-r", "second")
    assert code == 0, err
    for name in ("repo", "second"):
        repo = Repository.open(LocalStorage(inst.root / name), PASSPHRASE)
        restored = b"".join(iter_stream(repo, repo.load_manifest(backup_id), "dump"))
        assert restored == data_for(backup_id)


def test_a_new_machine_with_the_repository_and_the_exported_key_alone(
    inst: Installation, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # docs/disaster-recovery.md on a new machine: no catalog, no cache, and the key files
    # gone from the repository. `key import` needs no catalog, so it comes before
    # `catalog rebuild` (which needs the key).
    backup_id = inst.backup(timedelta(days=1))
    inst.close()
    exported = tmp_path / "respaldo-key.json"
    assert _run(capsys, inst.config, "key", "export", "--output", str(exported))[0] == 0
    shutil.rmtree(inst.root / "repo" / "keys")
    shutil.rmtree(inst.root / "cache")
    (inst.root / "catalog.db").unlink()
    code, _, err = _run(capsys, inst.config, "catalog", "rebuild", "--repository", "local")
    assert code != 0 and "key import" in err  # the hint names the way back
    code, _, err = _run(capsys, inst.config, "key", "import", str(exported))
    assert code == 0, err
    code, _, err = _run(capsys, inst.config, "catalog", "rebuild", "--repository", "local")
    assert code == 0, err
    code, out, err = _run(capsys, inst.config, "list", "--json")
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)] == [backup_id]
    code, _, err = _run(capsys, inst.config, "verify", "--all", "--repository", "local")
    assert code == 0, err


def test_export_to_standard_output(inst: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, inst.config, "key", "export")
    assert code == 0, err
    doc = json.loads(out)
    assert (inst.root / "repo" / "keys" / doc["id"]).read_text() == out


def test_import_refuses_a_wrong_passphrase_and_writes_nothing(
    inst: Installation,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exported = tmp_path / "key.json"
    assert _run(capsys, inst.config, "key", "export", "-o", str(exported))[0] == 0
    shutil.rmtree(inst.root / "repo" / "keys")
    before = _snapshot(inst.root / "repo")
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "not the passphrase at all")
    code, _, err = _run(capsys, inst.config, "key", "import", str(exported))
    assert code == 1
    assert "passphrase" in err and "not the passphrase" not in err
    assert _snapshot(inst.root / "repo") == before


def test_import_refuses_a_key_of_another_repository_and_writes_nothing(
    inst: Installation, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Another repository, same passphrase: its key opens, but not this repository's data.
    other = Repository.init(
        LocalStorage(tmp_path / "other"),
        PASSPHRASE,
        chunker=ChunkerParams(256, 1024, 4096),
        kdf=FAST_KDF,
    )
    (stranger,) = (tmp_path / "other" / "keys").iterdir()
    inst.backup(timedelta(days=1))
    inst.close()
    shutil.rmtree(inst.root / "repo" / "keys")
    before = _snapshot(inst.root / "repo")
    code, _, err = _run(capsys, inst.config, "key", "import", str(stranger))
    assert code == 1
    assert other.id in err
    assert _snapshot(inst.root / "repo") == before


def test_keys_and_config_lost_together_come_back_from_the_exported_key(
    inst: Installation, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    backup_id = inst.backup(timedelta(days=1))
    inst.close()
    exported = tmp_path / "key.json"
    assert _run(capsys, inst.config, "key", "export", "-o", str(exported))[0] == 0
    shutil.rmtree(inst.root / "repo" / "keys")
    (inst.root / "repo" / "config").unlink()
    shutil.rmtree(inst.root / "cache")
    code, _, err = _run(capsys, inst.config, "key", "import", str(exported))
    assert code == 0, err
    assert "restore-config" in err
    code, _, err = _run(
        capsys, inst.config, "repository", "restore-config", "--repository", "local"
    )
    assert code == 0, err
    repo = Repository.open(LocalStorage(inst.root / "repo"), PASSPHRASE)
    restored = b"".join(iter_stream(repo, repo.load_manifest(backup_id), "dump"))
    assert restored == data_for(backup_id)


def test_init_says_to_keep_a_copy_of_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    config = write_config(tmp_path, secondary=False)
    code, _, err = _run(capsys, config, "init")
    assert code == 0, err
    assert "respaldo key export" in err
    code, _, err = _run(capsys, config, "init")  # nothing new made: nothing to say
    assert code == 0, err
    assert "key export" not in err
