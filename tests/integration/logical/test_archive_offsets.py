"""A dump written to a pipe gets the data offsets pg_dump writes into a file, so that
``restore --jobs`` runs pg_restore's workers on a seekable archive as pg_restore -j of a
pg_dump -Fc file would (docs/benchmarks.md, "Restore profile (session 4)").

On every major: pg_dump 17 and later write archive version 1.16, whose table of contents
has one more field (an entry's relkind); an archive not read here restores by the slow
path (docs/benchmarks.md, "Session 22")."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from sample.cluster import TempCluster

import respaldo.operations.restore_parallel as restore_module
from respaldo.postgres import pg_restore
from respaldo.postgres.archive_offsets import (
    custom_from_directory,
    entries_without_offsets,
    set_offsets,
)
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import staging_databases, table_checksums
from tests.integration.majors import ON_EVERY_MAJOR

pytestmark = pytest.mark.integration

HEADER = 64
"""Bytes at the start of an archive that hold its creation time (and what precedes it)."""


def _dump(pg: TempCluster, dbname: str, *, to_file: Path | None = None) -> bytes:
    argv = [str(pg.bindir / "pg_dump"), "-Fc", "-Z0", "--no-password", "-d", dbname]
    if to_file is not None:
        subprocess.run([*argv, "-f", str(to_file)], env=pg.libpq_env(dbname), check=True)
        return to_file.read_bytes()
    # Through a pipe, as respaldo runs pg_dump: no offsets.
    return subprocess.run(argv, env=pg.libpq_env(dbname), capture_output=True, check=True).stdout


@ON_EVERY_MAJOR
def test_a_piped_dump_gets_the_offsets_of_a_dump_written_to_a_file(
    pg: TempCluster, erp_db: str, tmp_path: Path
) -> None:
    piped = tmp_path / "piped.dump"
    piped.write_bytes(_dump(pg, erp_db))
    as_file = _dump(pg, erp_db, to_file=tmp_path / "file.dump")
    unset = entries_without_offsets(piped)
    assert unset > 0  # table data and large objects
    assert entries_without_offsets(tmp_path / "file.dump") == 0

    assert set_offsets(piped) == unset
    patched = piped.read_bytes()
    assert len(patched) == len(as_file)
    # Byte for byte what pg_dump writes into a file, but for the creation time.
    assert [
        i for i, (a, b) in enumerate(zip(patched, as_file, strict=True)) if a != b and i >= HEADER
    ] == []
    assert entries_without_offsets(piped) == 0
    assert set_offsets(piped) == 0  # set already: left alone
    assert piped.read_bytes() == patched


@pytest.mark.parametrize("cut", [1, 1000, -1])
def test_an_archive_not_understood_is_left_as_it_was(
    pg: TempCluster, erp_db: str, tmp_path: Path, cut: int
) -> None:
    whole = _dump(pg, erp_db)
    path = tmp_path / "cut.dump"
    # 1: the magic only; 1000: cut inside the table of contents; -1: the last byte gone
    path.write_bytes(whole[:cut])
    before = path.read_bytes()
    assert set_offsets(path) == 0
    assert path.read_bytes() == before


def test_an_archive_of_a_later_version_is_left_as_it_was(
    pg: TempCluster, erp_db: str, tmp_path: Path
) -> None:
    """A version this module has not read (a pg_dump newer than 18) may lay its table of
    contents out otherwise: it is not guessed at (the restore takes the slow path)."""
    whole = bytearray(_dump(pg, erp_db))
    assert whole[:5] == b"PGDMP"
    whole[6] = 17  # the minor version: 1.17
    path = tmp_path / "later.dump"
    path.write_bytes(whole)
    assert set_offsets(path) == 0
    assert path.read_bytes() == whole
    with pytest.raises(ValueError, match=r"archive version 1\.17"):
        entries_without_offsets(path)


def _unset(source: Path) -> int | str:
    try:
        return entries_without_offsets(source)
    except ValueError as exc:
        return f"not read: {exc}"


@ON_EVERY_MAJOR
def test_a_parallel_restore_runs_its_workers_on_an_archive_with_offsets(
    respaldo: Respaldo, pg: TempCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_id = respaldo.backup()["id"]
    seen: list[tuple[str | None, int | str]] = []
    real = pg_restore

    def spy(*args: Any, **kwargs: Any) -> Any:
        source, listed = kwargs.get("source"), kwargs.get("use_list")
        # The workers' own indexes (early-*.list) read no data: offsets do not matter.
        if source is not None and (listed is None or not listed.name.startswith("early-")):
            seen.append((listed.name if listed else None, _unset(Path(source))))
        return real(*args, **kwargs)

    monkeypatch.setattr(restore_module, "pg_restore", spy)
    respaldo.restore(backup_id, "parallel_copy", "--jobs", "2")
    # Loaded by the workers as the dump arrived; the last pg_restore restores the rest
    # (its list) from a spool with every offset set. Without a table of contents read,
    # it would be one pg_restore --jobs of the whole spool, once all of it had arrived.
    assert seen == [("rest.list", 0)]
    assert table_checksums(pg, "parallel_copy") == table_checksums(pg, respaldo.dbname)
    assert staging_databases(pg) == set()


@ON_EVERY_MAJOR
def test_a_directory_dump_table_of_contents_reads_as_a_custom_archive(
    pg: TempCluster, erp_db: str, tmp_path: Path
) -> None:
    """What a directory-format backup's restore workers are fed starts with its
    ``toc.dat`` made into a custom-format table of contents: pg_restore lists the same
    entries from it, read from a pipe."""
    out = tmp_path / "dir"
    argv = [str(pg.bindir / "pg_dump"), "-Fd", "-Z0", "--no-password", "-d", erp_db]
    subprocess.run([*argv, "-f", str(out)], env=pg.libpq_env(erp_db), check=True)
    converted = custom_from_directory((out / "toc.dat").read_bytes())
    assert converted is not None
    head, toc = converted
    with_data = [e for e in toc.entries if e.file is not None]
    assert {e.kind for e in with_data} >= {"TABLE DATA", "BLOBS"}
    assert all((out / str(e.file)).is_file() for e in with_data)
    # Each table's data names its table (the restore weighs its rows by that name).
    named = {f"{e.namespace}.{e.tag}" for e in toc.entries if e.kind == "TABLE DATA"}
    assert {"finanzas.facturas", "docs.fotos"} <= named

    def listing(*source: str, stdin: bytes | None = None) -> list[str]:
        done = subprocess.run(
            [str(pg.bindir / "pg_restore"), "--list", *source],
            input=stdin,
            capture_output=True,
            check=True,
        )
        # The header says which format it read; the entries must be the same.
        return [
            line
            for line in done.stdout.decode().splitlines()
            if line and not line.startswith((";     Format:", "; Archive created at"))
        ]

    assert listing(stdin=head) == listing(str(out))
    assert custom_from_directory(head) is None  # a custom archive is no toc.dat
