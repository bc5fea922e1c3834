"""A files restore keeps the backup it reads from a prune run meanwhile (a real prune,
in its own process, as the restore has read the manifest)."""

from __future__ import annotations

import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from tests.integration.files.test_files import Files, _snapshot
from tests.integration.files.test_files import files as files  # the fixture
from tests.manifest_hook import after_manifest_read

pytestmark = pytest.mark.integration


def test_a_files_restore_keeps_its_backup_from_a_prune_meanwhile(files: Files) -> None:
    with files.config.open("a") as fh:
        fh.write("\n[retention]\nkeep_until_expires = false\nkeep_last = 1\nmin_keep = 1\n")
    older = files.backup()["id"]
    expected = _snapshot(files.tree / "config")
    (files.tree / "config" / "erp.ini").write_bytes(b"[erp]\nmode=test\n")
    newest = files.backup()["id"]
    script = Path(sys.executable).with_name("respaldo")
    prune = partial(
        subprocess.run,
        [str(script), "--config", str(files.config), "prune", "--wait", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    target = files.tmp / "restored"
    with after_manifest_read(older, prune) as pruned:
        code, _, err = files.run("restore", older, "--target-dir", str(target))

    assert code == 0, err
    assert len(pruned) == 1
    out = pruned[0].stdout + pruned[0].stderr
    # Before: "1 backups deleted": the backup just restored was gone.
    assert "0 backups deleted, 2 kept" in out and "being restored" in out, out
    assert _snapshot(target / str(files.tree / "config").lstrip("/")) == expected
    ids = {p.name for p in (files.tmp / "repo" / "manifests").iterdir()}
    assert {older, newest} <= ids
