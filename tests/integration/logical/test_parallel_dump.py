"""Parallel logical backups (``dump_jobs``/``backup --jobs``): pg_dump's directory format,
a stream per file, restored with ``pg_restore --jobs`` through the same verification."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sample.cluster import TempCluster

import respaldo.operations.restore_parallel as restore_module
from respaldo.postgres.archive_offsets import custom_from_directory
from respaldo.repository.packs import pack_name
from respaldo.repository.reader import read_list
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import (
    databases,
    flip_byte,
    schema_dump,
    script_child,
    staging_databases,
    table_checksums,
)
from tests.integration.logical.test_roundtrip import assert_same_database
from tests.integration.majors import ON_EVERY_MAJOR

pytestmark = pytest.mark.integration

STOPPED = Path(__file__).with_name("stopped_pardump.py")


def parallel(respaldo: Respaldo, jobs: int = 2) -> Path:
    """Add the database ``erp_par`` (the same database, dumped by ``jobs`` workers) to the
    config; returns its spool directory."""
    spool = respaldo.tmp / "spool"
    spool.mkdir(exist_ok=True)
    erp = respaldo.settings().database("erp")
    password_file = erp.password_file
    respaldo.config.write_text(
        respaldo.config.read_text()
        + f"""
[[databases]]
name = "erp_par"
dsn = "{erp.dsn}"
password_file = "{password_file}"
dump_jobs = {jobs}
dump_spool_dir = "{spool}"
"""
    )
    return spool


def backup_dumped_as(respaldo: Respaldo, dumped: str) -> str:
    """A backup of the sample database: one pg_dump (``custom`` format), or two pg_dump
    workers (``directory`` format, ``backup --jobs 2`` of :func:`parallel`'s
    ``erp_par``); returns its id."""
    if dumped == "custom":
        return str(respaldo.backup()["id"])
    parallel(respaldo)
    return str(respaldo.backup("erp_par")["id"])


@ON_EVERY_MAJOR
def test_a_parallel_backup_restores_like_a_serial_one(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = parallel(respaldo)
    serial_id = respaldo.backup()["id"]
    record = respaldo.backup("erp_par")
    assert list(spool.iterdir()) == []  # every file stored and deleted, the spool gone
    manifest = respaldo.repository().load_manifest(record["id"])
    assert manifest.meta["dump_format"] == "directory"
    names = [s.name for s in manifest.streams]
    assert "dump/toc.dat" in names
    assert sum(1 for n in names if re.fullmatch(r"dump/\d+\.dat", n)) > 20  # a file a table
    assert manifest.meta["row_counts"]

    serial_db = f"{new_dbname}_s"
    respaldo.restore(serial_id, serial_db)
    work = respaldo.tmp / "work"
    work.mkdir()
    # Its workers are planned from toc.dat read as a custom archive (pg_dump 17 and 18
    # write version 1.16): unread, every file would wait for one pg_restore at the end.
    converted: list[bool] = []
    real = custom_from_directory

    def spy(toc_dat: bytes) -> Any:
        result = real(toc_dat)
        converted.append(result is not None)
        return result

    monkeypatch.setattr(restore_module, "custom_from_directory", spy)
    run = respaldo.restore(record["id"], new_dbname, "--jobs", "2", "--work-dir", str(work))
    assert converted == [True]
    assert "tables' row counts checked" in run.err
    assert list(work.iterdir()) == []
    assert_same_database(pg, respaldo.dbname, new_dbname)
    assert schema_dump(pg, new_dbname) == schema_dump(pg, serial_db)
    assert table_checksums(pg, new_dbname) == table_checksums(pg, serial_db)
    assert staging_databases(pg) == set()

    # What reads only the table of contents: ls, and one table back.
    listed = respaldo.run("ls", record["id"])
    assert listed.code == 0, str(listed)
    assert "facturas" in listed.out
    one = f"{new_dbname}_t"
    respaldo.restore(record["id"], one, "--table", "finanzas.facturas")
    facturas = table_checksums(pg, one)["finanzas.facturas"]
    assert facturas == table_checksums(pg, respaldo.dbname)["finanzas.facturas"]


def _chunks(run_err: str) -> tuple[int, int]:
    match = re.search(r"\((\d+) of (\d+) chunks new\)", run_err)
    assert match, run_err
    return int(match.group(1)), int(match.group(2))


def test_a_second_parallel_backup_after_little_change_stores_little(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    parallel(respaldo)
    first = respaldo.run("backup", "erp_par")
    assert first.code == 0, str(first)
    new, total = _chunks(first.err)
    assert new > total // 2
    pg.execute(
        "UPDATE finanzas.facturas SET total = total + 1"
        " WHERE id IN (SELECT id FROM finanzas.facturas ORDER BY id LIMIT 3)",
        dbname=respaldo.dbname,
    )
    second = respaldo.run("backup", "erp_par")
    assert second.code == 0, str(second)
    new, total = _chunks(second.err)
    assert new < total // 10, second.err


def test_bad_jobs_are_refused_before_anything_is_recorded(respaldo: Respaldo) -> None:
    for bad in ("0", "-1", "65"):
        run = respaldo.run("backup", "erp", "--jobs", bad)
        assert run.code != 0
        assert "--jobs: must be between 1 and 64" in run.err, run.err
    run = respaldo.run("backup", "erp", "--jobs", "2", "--type", "incremental")
    assert run.code != 0
    assert "--jobs: is for logical (full) backups" in run.err, run.err
    assert respaldo.records() == []
    assert respaldo.repository().backup_ids() == []


@pytest.mark.parametrize("mode", ["fail", "wait"])
def test_a_failed_or_killed_parallel_backup_leaves_no_manifest_and_no_spool(
    respaldo: Respaldo, mode: str
) -> None:
    spool = parallel(respaldo)
    with script_child(STOPPED, str(respaldo.config), "erp_par", mode) as child:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "stored\n", (line, child.communicate())
        if mode == "wait":
            assert len(list(spool.iterdir())) == 1  # the dump's files are waiting there
            child.send_signal(signal.SIGKILL)
        _out, err = child.communicate(timeout=120)
    assert respaldo.repository().backup_ids() == []
    if mode == "fail":
        assert child.returncode == 1
        assert "injected failure after the first file" in err
        assert list(spool.iterdir()) == []
        (record,) = respaldo.records()
        assert record.status == "failed"
    else:
        assert child.returncode == -signal.SIGKILL
    # The next backup sweeps the spool a killed one left, and leaves none of its own.
    respaldo.backup("erp_par")
    assert list(spool.iterdir()) == []


def test_a_damaged_table_file_fails_the_restore_and_changes_nothing(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    parallel(respaldo)
    backup_id = respaldo.backup("erp_par")["id"]
    repo = respaldo.repository()
    manifest = repo.load_manifest(backup_id)
    biggest = max((s for s in manifest.streams if s.name.endswith(".dat")), key=lambda s: s.size)
    entries = read_list(repo, biggest.lists[0])
    location = repo.index.get(entries[len(entries) // 2][0])
    assert location is not None
    pack = pack_name(location.pack_id)
    flip_byte(respaldo.repo_dir / pack, location.offset + location.length // 2)
    before = databases(pg)
    work = respaldo.tmp / "work"
    work.mkdir()
    run = respaldo.run(
        "restore",
        backup_id,
        "--target-database",
        new_dbname,
        "--jobs",
        "2",
        "--work-dir",
        str(work),
    )
    assert run.code != 0
    assert pack in run.err and f"of stream '{biggest.name}'" in run.err, run.err
    assert databases(pg) == before
    assert staging_databases(pg) == set()
    assert list(work.iterdir()) == []  # no plaintext file of the dump left behind


def test_a_drill_restores_and_verifies_a_parallel_backup(respaldo: Respaldo) -> None:
    parallel(respaldo)
    backup_id = respaldo.backup("erp_par")["id"]
    run = respaldo.run("drill", backup_id, "--json")
    assert run.code == 0, str(run)
    result = json.loads(run.out)
    assert result["passed"] is True, result
    assert respaldo.run("show", backup_id, "--json").json()["isVerified"] is True


_READ = re.compile(r"into \S+: ([\d.]+) (B|KiB|MiB|GiB)")
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def _bytes_read(run_err: str) -> float:
    match = _READ.search(run_err)
    assert match, run_err
    return float(match.group(1)) * _UNITS[match.group(2)]


def test_one_table_of_a_parallel_backup_reads_only_its_files(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    parallel(respaldo)
    backup_id = respaldo.backup("erp_par")["id"]
    manifest = respaldo.repository().load_manifest(backup_id)
    dump = sum(s.size for s in manifest.streams if s.name.startswith("dump/"))
    run = respaldo.restore(backup_id, new_dbname, "--table", "core.empleados")
    assert _bytes_read(run.err) < dump / 10, (run.err, dump)
    expected = table_checksums(pg, respaldo.dbname)["core.empleados"]
    assert table_checksums(pg, new_dbname)["core.empleados"] == expected


def test_a_full_dump_spool_fails_the_backup_with_a_hint(respaldo: Respaldo) -> None:
    # pg_dump's workers write their files into dump_spool_dir: a full disk there failed
    # the backup with pg_dump's 'could not write to output file: No space left on device'
    # and no hint at all.
    spool = parallel(respaldo)
    assert os.geteuid() == 0, "the small spool is a tmpfs: run the suite as root"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(spool)], check=True)
    try:
        run = respaldo.run("backup", "erp_par")
        assert run.code == 1, str(run)
        assert len(run.err_lines) == 2, run.err
        error, hint = run.err_lines
        assert error.startswith("respaldo: error: pg_dump exited with status 1"), run.err
        assert "No space left on device" in error, run.err
        assert hint.startswith("respaldo: hint: the disk pg_dump writes its files to is full")
        assert "dump_spool_dir" in hint, run.err
        assert [r.status for r in respaldo.records()][-1] == "failed"
        assert list(spool.iterdir()) == []
    finally:
        subprocess.run(["umount", str(spool)], check=True)
