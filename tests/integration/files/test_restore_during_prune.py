"""A files restore keeps the backup it reads from a prune run meanwhile (a real prune,
in its own process, as the restore has read the manifest)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from respaldo.repository import Repository
from tests.integration.files.test_files import Files, _snapshot
from tests.integration.files.test_files import files as files  # the fixture

pytestmark = pytest.mark.integration


def test_a_files_restore_keeps_its_backup_from_a_prune_meanwhile(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    with files.config.open("a") as fh:
        fh.write("\n[retention]\nkeep_until_expires = false\nkeep_last = 1\nmin_keep = 1\n")
    older = files.backup()["id"]
    expected = _snapshot(files.tree / "config")
    (files.tree / "config" / "erp.ini").write_bytes(b"[erp]\nmode=test\n")
    newest = files.backup()["id"]
    load = Repository.load_manifest
    pruned: list[subprocess.CompletedProcess[str]] = []
    script = Path(sys.executable).with_name("respaldo")

    def load_then_prune(repo: Repository, backup_id: str):  # type: ignore[no-untyped-def]
        manifest = load(repo, backup_id)
        if backup_id == older and not pruned:
            pruned.append(
                subprocess.run(
                    [str(script), "--config", str(files.config), "prune", "--wait", "0"],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
            )
        return manifest

    monkeypatch.setattr(Repository, "load_manifest", load_then_prune)
    target = files.tmp / "restored"
    code, _, err = files.run("restore", older, "--target-dir", str(target))
    monkeypatch.setattr(Repository, "load_manifest", load)

    assert code == 0, err
    assert len(pruned) == 1
    out = pruned[0].stdout + pruned[0].stderr
    # Before: "1 backups deleted": the backup just restored was gone.
    assert "0 backups deleted, 2 kept" in out and "being restored" in out, out
    assert _snapshot(target / str(files.tree / "config").lstrip("/")) == expected
    ids = {p.name for p in (files.tmp / "repo" / "manifests").iterdir()}
    assert {older, newest} <= ids
