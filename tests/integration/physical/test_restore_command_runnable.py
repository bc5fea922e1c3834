"""A restore_command the server's user cannot run is refused before anything is written.

Without the check, the restored server's every fetch fails with "Permission denied" in
its log, and the error respaldo can give afterwards blames missing WAL.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from sample.cluster import TempCluster

from respaldo.errors import RecoveryFailed
from respaldo.postgres.datadir import RECOVERY_LOG, Owner, wait_for_recovery
from tests.integration.cli import secret_file
from tests.integration.physical.conftest import (
    OS_USER,
    PASSPHRASE,
    Archiving,
    chown_tree,
    free_port,
)

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
    datadir, err = _refused_restore(archiving, record["id"], "--respaldo-command", str(private))
    assert f"restore_command is not executable by {OS_USER}" in err
    assert "make install" in err
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


def _refused_restore(archiving: Archiving, backup_id: str, *extra: str) -> tuple[Path, str]:
    """Restore ``backup_id`` with ``--start`` under ``archiving``'s config; the restore must
    fail (exit 1, no traceback). Returns the target data directory and stderr."""
    datadir = archiving.new_datadir()
    run = archiving.run(
        "restore",
        backup_id,
        "--target-datadir",
        str(datadir),
        "--immediate",
        "--start",
        "--port",
        str(free_port()),
        *extra,
    )
    assert run.code == 1, str(run)
    assert "Traceback" not in run.err
    return datadir, run.err


def _restore_with(archiving: Archiving, config: Path, backup_id: str) -> tuple[Path, str]:
    datadir, err = _refused_restore(replace(archiving, config=config), backup_id)
    assert not datadir.exists(), "the restore wrote before refusing"
    return datadir, err


def test_a_config_or_passphrase_file_the_server_cannot_read_is_refused_before_restoring(
    archiving: Archiving, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The disaster-recovery runbook on a new machine: the config put back by root, 0600
    # in a root-only directory, and its passphrase_file lost with the old machine while
    # the passphrase is given through the environment. Before, both restores wrote the
    # data directory and started a server whose every restore_command failed, and the
    # error blamed the recovery target or missing WAL.
    record = archiving.backup()
    text = archiving.config.read_text()
    private = tmp_path / "respaldo.toml"  # pytest's tmp_path: closed to the server's user
    private.write_text(text)
    _, err = _restore_with(archiving, private, record["id"])
    assert f"restore_command cannot work as {OS_USER}: the config file {private}: cannot" in err
    # The same words as a respaldo that cannot read its own files (respaldo.readable).
    assert (
        f"wal-fetch') runs as OS user {OS_USER}, which must be able to read the config file "
        f"{private}: chmod o+x /"
    ) in err

    passphrase_file = str(archiving.settings().passphrase_file)
    assert passphrase_file in text
    shared = Path(tempfile.mkdtemp(prefix="config-", dir=archiving.base))
    chown_tree(shared)
    lost = shared / "lost-passphrase"
    reachable = shared / "respaldo.toml"
    reachable.write_text(text.replace(passphrase_file, str(lost)))
    reachable.chmod(0o644)
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    _, err = _restore_with(archiving, reachable, record["id"])
    assert f"passphrase_file {lost} does not exist" in err
    assert "RESPALDO_PASSPHRASE" in err


def test_a_restore_command_that_fails_is_named_as_the_cause(
    archiving: Archiving, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A passphrase_file left from before a passphrase change: the restore opens the
    # repository with RESPALDO_PASSPHRASE (the environment wins), the server's
    # restore_command with the file, which is refused. The hint blamed the recovery target
    # or missing WAL.
    record = archiving.backup()
    text = archiving.config.read_text()
    passphrase_file = str(archiving.settings().passphrase_file)
    shared = Path(tempfile.mkdtemp(prefix="config-", dir=archiving.base))
    stale = secret_file(shared / "stale-passphrase", "a passphrase from before key passwd")
    chown_tree(shared)
    config = shared / "respaldo.toml"
    config.write_text(text.replace(passphrase_file, str(stale)))
    config.chmod(0o644)
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    datadir, err = _refused_restore(replace(archiving, config=config), record["id"])
    assert "stopped during recovery: its restore_command failed (respaldo: error: " in err
    assert "wrong passphrase" in err
    assert "usual causes" not in err

    # The server's first fetch fails, so it can start and stop between two of the
    # restore's looks at postmaster.pid; the restore waited out a minute's grace then
    # (62 s of CI for this test). Its start banner in the log tells it had started:
    # looked at once more (no time left), the stopped server is named as stopped, not
    # as "still recovering".
    owner = Owner.lookup(OS_USER) if os.geteuid() == 0 else None
    with pytest.raises(RecoveryFailed, match="stopped during recovery: its restore_command"):
        wait_for_recovery(
            datadir,
            bindir=archiving.pg.bindir,
            owner=owner,
            log_file=datadir / RECOVERY_LOG,
            timeout=0,
        )
