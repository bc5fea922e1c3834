"""Progress bars are for a person at a terminal: a backup from cron, whose stderr is a
pipe or a file, writes its result lines and nothing else, even where the environment
asks Rich for colours (``FORCE_COLOR``, set by CI runners and some service managers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.files.test_files import PASSPHRASE, files_config

RESPALDO = Path(sys.executable).parent / "respaldo"


@pytest.mark.parametrize("environment", [{}, {"FORCE_COLOR": "1"}], ids=["plain", "force-color"])
def test_a_backup_without_a_terminal_writes_no_progress_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    tree = tmp_path / "uploads"
    tree.mkdir()
    (tree / "a.bin").write_bytes(os.urandom(200_000))
    config = files_config(tmp_path, [tree])
    env = {**os.environ, "RESPALDO_PASSPHRASE": PASSPHRASE, **environment}
    env.pop("TTY_COMPATIBLE", None)
    done = subprocess.run(
        [str(RESPALDO), "--config", str(config), "backup", "uploads"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # No cursor movement, no carriage return redrawing a bar: lines a mail can show.
    assert "\x1b[" not in done.stderr and "\r" not in done.stderr, repr(done.stderr)
    assert done.stderr.startswith("backup of uploads completed: ")
