"""What the CLI counts reads as English: "1 backup deleted", not "1 backups deleted".

A file set needs no PostgreSQL: its backups are real, quick, and counted as any other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from respaldo.cli.main import invoke
from respaldo.config import load_settings
from respaldo.operations.initialize import initialize
from tests.configs import local_config
from tests.integration.physical.conftest import FAST_KDF

pytestmark = pytest.mark.integration


def test_one_of_a_thing_is_said_in_the_singular(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "counts test passphrase")
    data = tmp_path / "planos"
    data.mkdir()
    (data / "a.txt").write_text("obra 1\n")
    config = local_config(
        tmp_path,
        f"""
[retention]
keep_until_expires = false
min_keep = 1
[[file_sets]]
name = "planos"
paths = ["{data}"]
""",
    )
    initialize(load_settings(config), kdf=FAST_KDF)

    def run(*args: str) -> str:
        capsys.readouterr()
        code = invoke(["--config", str(config), *args])
        out, err = capsys.readouterr()
        assert code == 0, out + err
        return out + err

    err = run("snapshot")
    # Before: "0 backups pinned" is right, "1 backups pinned" was not.
    assert "1 backup pinned" in err and "backups pinned" not in err, err
    assert "1 backup pinned, 0 failed" in run("audit")
    (pinned,) = re.findall(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$", err, re.M)
    run("unpin", pinned)
    err = run("verify", "--all")
    assert "ok: 1 backup, " in err and "1 pack checked" in err, err

    (data / "a.txt").write_text("obra 2\n")
    run("backup", "planos")
    err = run("prune", "--dry-run")
    assert "dry run: 1 of 2 backups would expire" in err, err
    err = run("prune")
    assert "1 backup deleted, 1 kept" in err, err
    assert "local: 1 manifest deleted; " in err, err
    err = run("prune")
    assert "0 backups deleted, 1 kept" in err and "0 manifests deleted" in err, err
