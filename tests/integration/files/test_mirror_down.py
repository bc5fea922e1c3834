"""One mirror down while backing up: the backup stands (exit 0) and says, on stderr, that
its copy failed and why, whether one source was backed up ('backup') or every one
('snapshot', which said nothing of it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.cli.main import invoke
from tests.integration.files.test_files import PASSPHRASE, files_config


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    tree = tmp_path / "uploads"
    tree.mkdir()
    (tree / "a.txt").write_text("a" * 5000)
    mirror = f"""
[[repositories]]
name = "mirror"
url = "file://{tmp_path / "mirror"}"
"""
    config = files_config(tmp_path, [tree], extra="")
    config.write_text(config.read_text().replace("[[file_sets]]", mirror + "\n[[file_sets]]"))
    return config


@pytest.mark.parametrize("command", [["backup", "uploads"], ["snapshot"]], ids=" ".join)
def test_a_mirror_that_is_not_there_is_said_and_the_backup_stands(
    config: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # The mirror was never initialised: a disk not mounted, say.
    capsys.readouterr()
    code = invoke(["--config", str(config), *command])
    out, err = capsys.readouterr()
    assert code == 0, err
    backup_id = out.split()[-1]
    assert f"copy of {backup_id} to mirror failed: " in " ".join(err.split()), err
