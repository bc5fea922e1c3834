"""What wal-fetch finds wrong with the location of a CREATE TABLESPACE record."""

from __future__ import annotations

from pathlib import Path

from respaldo.operations.wal import _tablespace_problem
from respaldo.postgres.wal_records import CreatedTablespace


def test_a_missing_or_empty_directory_and_one_made_in_place_are_let_through(
    tmp_path: Path,
) -> None:
    datadir = tmp_path / "data"
    (tmp_path / "empty").mkdir()
    assert _tablespace_problem(CreatedTablespace(16400, str(tmp_path / "missing")), datadir) is None
    assert _tablespace_problem(CreatedTablespace(16400, str(tmp_path / "empty")), datadir) is None
    assert _tablespace_problem(CreatedTablespace(16400, ""), datadir) is None


def test_a_directory_in_use_and_a_location_not_read_are_refused(tmp_path: Path) -> None:
    datadir = tmp_path / "data"
    used = tmp_path / "used"
    (used / "PG_15_202209061").mkdir(parents=True)
    problem = _tablespace_problem(CreatedTablespace(16400, str(used)), datadir)
    assert problem is not None and "holds files already" in problem
    # The restored server's own tablespace, the segment fetched again: let through.
    (datadir / "pg_tblspc").mkdir(parents=True)
    (datadir / "pg_tblspc" / "16400").symlink_to(used)
    assert _tablespace_problem(CreatedTablespace(16400, str(used)), datadir) is None
    unfinished = _tablespace_problem(CreatedTablespace(None, None, unfinished=True), datadir)
    assert unfinished is not None and "cannot read yet" in unfinished
    unread = _tablespace_problem(CreatedTablespace(None, None), datadir)
    assert unread is not None and "could not read" in unread
