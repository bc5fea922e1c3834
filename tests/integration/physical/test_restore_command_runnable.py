"""A restore_command the server's user cannot run is refused before anything is written.

Without the check, the restored server's every fetch fails with "Permission denied" in
its log, and the error respaldo can give afterwards blames missing WAL.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.integration.physical.conftest import OS_USER, Archiving, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="only root restores for another OS user"),
]


def test_an_unrunnable_respaldo_command_is_refused_before_restoring(
    archiving: Archiving, tmp_path: Path
) -> None:
    record = archiving.backup()
    # pytest's temporary directory is private to root: the server's user cannot run this.
    private = tmp_path / "private" / "respaldo"
    private.parent.mkdir()
    shutil.copy(Path(sys.executable).with_name("respaldo"), private)
    private.chmod(0o755)
    datadir = archiving.new_datadir()
    run = archiving.run(
        "restore",
        record["id"],
        "--target-datadir",
        str(datadir),
        "--immediate",
        "--start",
        "--port",
        str(free_port()),
        "--respaldo-command",
        str(private),
    )
    assert run.code == 1, str(run)
    assert f"restore_command is not executable by {OS_USER}" in run.err
    assert "make install" in run.err
    assert "Traceback" not in run.err
    assert not datadir.exists()
