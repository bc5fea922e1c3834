"""``respaldo key add`` that cannot write the mirror's key adds the new passphrase nowhere.

It wrote the key into the primary, then failed on the mirror (a read-only mount, a full
disk) with only the mirror's write error: the new passphrase opened the primary and not
the offsite mirror, with nothing saying so. An operator who then configured it (the
primary accepted it), and let the old passphrase go, found in a disaster that the mirror
opened only with the old one. The key added before the failure is removed again.

The mirror is a read-only bind mount of its directory (mounting needs root, as the suite
runs).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from respaldo.cli.main import invoke
from respaldo.errors import WrongPassphrase
from respaldo.repository import Repository
from respaldo.storage.local import LocalStorage
from tests.unit.operations.support import PASSPHRASE, Installation, fast_new_keys

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NEW = "a brand new passphrase"


def _opens(root: Path, passphrase: str) -> bool:
    try:
        Repository.open(LocalStorage(root), passphrase, load_index=False).close()
    except WrongPassphrase:
        return False
    return True


@pytest.fixture
def read_only_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Installation]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("RESPALDO_NEW_PASSPHRASE", NEW)
    fast_new_keys(monkeypatch)
    inst = Installation.create(tmp_path)
    mirror = str(tmp_path / "second")
    assert os.geteuid() == 0, "the read-only mirror is a bind mount: run the suite as root"
    subprocess.run(["mount", "--bind", mirror, mirror], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", mirror, mirror], check=True)
        yield inst
    finally:
        subprocess.run(["umount", mirror], check=True)


def test_key_add_that_cannot_write_the_mirror_adds_the_key_nowhere(
    read_only_mirror: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    root = read_only_mirror.root
    before = sorted(p.name for p in (root / "repo" / "keys").iterdir())

    capsys.readouterr()
    code = invoke(["--config", str(read_only_mirror.config), "key", "add"])
    err = capsys.readouterr().err

    assert code == 1, err
    said = " ".join(err.split())
    assert "cannot add the key to repository second" in said, err
    assert "Read-only file system" in said, err
    assert "nothing was changed: the new passphrase opens no repository" in said, err
    assert NEW not in err and PASSPHRASE not in err
    assert sorted(p.name for p in (root / "repo" / "keys").iterdir()) == before
    for name in ("repo", "second"):
        assert not _opens(root / name, NEW), name
        assert _opens(root / name, PASSPHRASE), name
