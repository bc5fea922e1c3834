"""A passphrase change killed -9 between any two of its steps loses no repository.

``respaldo key passwd`` changes every configured repository (a primary and its mirror
here): it writes the new key file into each, then removes the old ones. Killed after any
step, one passphrase, the old or the new, still opens every repository, and each backup
restores with it; killed before any old key was removed, the change run again completes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.errors import WrongPassphrase
from respaldo.operations.context import Context
from respaldo.operations.keys import change_passphrase
from respaldo.repository import Repository, iter_stream
from respaldo.storage.local import LocalStorage
from tests.unit.operations.support import FAST_KDF, PASSPHRASE, Installation, data_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHILD = Path(__file__).with_name("killed_passwd.py")
NEW = "the new passphrase of the killed change"
REPOSITORIES = ("repo", "second")


def _opens(root: Path, passphrase: str) -> Repository | None:
    try:
        return Repository.open(LocalStorage(root), passphrase)
    except WrongPassphrase:
        return None


def _killed_after(inst: Installation, steps: int) -> None:
    env = {**os.environ, "RESPALDO_PASSPHRASE": PASSPHRASE, "RESPALDO_NEW_PASSPHRASE": NEW}
    root = str(Path(__file__).parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(inst.config), str(steps)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline() == "step\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_a_passphrase_change_killed_after_any_step_leaves_one_passphrase_for_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steps: int
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    inst = Installation.create(tmp_path)
    backup_id = inst.backup(timedelta(days=1))
    inst.replicate()
    inst.close()

    _killed_after(inst, steps)

    opening = [
        passphrase
        for passphrase in (PASSPHRASE, NEW)
        if all(_opens(tmp_path / name, passphrase) is not None for name in REPOSITORIES)
    ]
    assert opening, "neither passphrase opens every repository"
    for name in REPOSITORIES:
        repo = _opens(tmp_path / name, opening[0])
        assert repo is not None
        restored = b"".join(iter_stream(repo, repo.load_manifest(backup_id), "dump"))
        assert restored == data_for(backup_id)

    if opening[0] == NEW:
        # Killed while removing the old keys: the new passphrase opens everything, and
        # the old one's key files left are removed by id (what the docs say to do).
        assert _opens(tmp_path / "second", PASSPHRASE) is not None
        return
    # Killed before any old key was removed: run again, the change completes.
    with Context.open(load_settings(inst.config), catalog=False) as ctx:
        change_passphrase(ctx, NEW, kdf=FAST_KDF)
    for name in REPOSITORIES:
        assert _opens(tmp_path / name, NEW) is not None
        assert _opens(tmp_path / name, PASSPHRASE) is None
