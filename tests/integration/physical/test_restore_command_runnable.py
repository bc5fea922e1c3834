"""A restore_command the server's user cannot run is refused before anything is written.

Without the check, the restored server's every fetch fails with "Permission denied" in
its log, and the error respaldo can give afterwards blames missing WAL.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sample.cluster import TempCluster

from tests.integration.physical.conftest import OS_USER, Archiving, chown_tree, free_port

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


def test_a_restore_recovers_with_a_config_and_program_under_a_path_with_a_percent(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    # PostgreSQL replaces %f, %p, %r and %% in restore_command before the shell sees it
    # (and 16 and later refuse any other "%x"): "…/100%fiables/respaldo.toml" reached
    # wal-fetch as "…/100<WAL file name>iables/respaldo.toml", so no WAL was fetched.
    record = archiving.backup()
    home = archiving.base / "Copias de seguridad 100%fiables"
    home.mkdir()
    config = home / "respaldo.toml"
    shutil.copy(archiving.config, config)
    program = home / "respaldo"
    shutil.copy(Path(sys.executable).with_name("respaldo"), program)
    program.chmod(0o755)
    chown_tree(home)
    moved = replace(archiving, config=config)
    rows = archiving.pg.scalar("SELECT count(*) FROM pg_catalog.pg_class", dbname="shop")
    restored, datadir, _ = moved.restore_started(
        record["id"], restored_servers, "--immediate", "--respaldo-command", str(program)
    )
    assert restored.scalar("SELECT pg_is_in_recovery()") is False
    assert restored.scalar("SELECT count(*) FROM pg_catalog.pg_class", dbname="shop") == rows
    auto = (datadir / "postgresql.auto.conf").read_text()
    assert "100%%fiables/respaldo.toml" in auto, auto
