"""Private directories name their process; the sweep removes only those of dead ones."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from respaldo import privatedir
from respaldo.privatedir import private_dir, private_directory, process_start, sweep, this_process


def _dead_pid() -> tuple[int, int]:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start(child.pid)
    child.wait()  # reaped: the pid names no process any more
    assert start is not None
    return child.pid, start


def test_a_private_directory_is_0700_names_its_process_and_goes_away(tmp_path: Path) -> None:
    pid, start = this_process()
    with private_directory("spool", tmp_path) as path:
        assert path.parent == tmp_path
        assert path.name.startswith(f"respaldo-spool-{pid}-{start}-")
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        (path / "dump").write_bytes(b"x")
    assert not path.exists()


def test_the_sweep_removes_only_directories_of_processes_that_are_gone(tmp_path: Path) -> None:
    pid, start = this_process()
    dead_pid, dead_start = _dead_pid()
    mine = tmp_path / f"respaldo-pgpass-{pid}-{start}-abc"
    dead = tmp_path / f"respaldo-pgpass-{dead_pid}-{dead_start}-abc"
    reused = tmp_path / f"respaldo-spool-{pid}-{start + 1}-abc"  # same pid, another process
    foreign = tmp_path / "respaldo-pgcluster-abc"
    a_file = tmp_path / f"respaldo-spool-{dead_pid}-{dead_start}-file"
    for directory in (mine, dead, reused, foreign):
        directory.mkdir()
        (directory / "pgpass").write_text("*:*:*:*:secret\n")
    a_file.write_text("not ours to judge")
    assert sorted(sweep(tmp_path)) == sorted([dead, reused])
    assert mine.is_dir() and foreign.is_dir() and a_file.is_file()
    assert not dead.exists() and not reused.exists()


def test_the_first_private_dir_in_a_directory_sweeps_it(tmp_path: Path) -> None:
    dead_pid, dead_start = _dead_pid()
    left = tmp_path / f"respaldo-spool-{dead_pid}-{dead_start}-xyz"
    left.mkdir()
    made = private_dir("spool", tmp_path)
    assert not left.exists()
    assert made.is_dir()
    made.rmdir()


def test_a_process_that_goes_on_sweeps_again_what_later_dead_ones_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # respaldo serve runs for months: a command killed while it ran (its passfile, the
    # password in it) used to stay until another respaldo process started.
    first = private_dir("pgpass", tmp_path)
    dead_pid, dead_start = _dead_pid()
    left = tmp_path / f"respaldo-pgpass-{dead_pid}-{dead_start}-xyz"
    left.mkdir()
    (left / "pgpass").write_text("*:*:*:*:secret\n")
    second = private_dir("pgpass", tmp_path)  # within the hour: no sweep yet
    assert left.is_dir()
    monkeypatch.setattr(privatedir, "SWEEP_AGAIN_SECONDS", 0.0, raising=False)
    third = private_dir("pgpass", tmp_path)
    assert not left.exists()
    assert first.is_dir() and second.is_dir() and third.is_dir()  # this process's own


def test_purpose_is_one_lowercase_word(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        private_dir("../x", tmp_path)
