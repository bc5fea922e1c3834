"""``restore --jobs N`` loads the tables' data into the staging database while the dump
still arrives (operations/restore_parallel.py), and a dump that turns out bad at its end
still leaves nothing behind: no staging database, no target, no spool."""

from __future__ import annotations

import contextlib
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sample.cluster import TempCluster

import respaldo.operations.restore as restore_module
from respaldo import postgres
from respaldo.errors import IntegrityError, RestoreError
from respaldo.operations import restore_parallel
from respaldo.operations.restore_feed import Arrivals, FileFeed
from respaldo.operations.restore_parallel import RowCheck
from respaldo.postgres import commands
from respaldo.postgres import server as postgres_server
from respaldo.postgres.archive_offsets import TocEntry
from respaldo.postgres.commands import RunningCommand
from respaldo.postgres.server import SHORT_LOCK_WAIT
from respaldo.repository import Manifest
from respaldo.repository.packs import pack_name
from respaldo.repository.reader import read_list
from tests.integration.logical.conftest import Respaldo, Run
from tests.integration.logical.support import (
    assert_failed_leaving_nothing,
    databases,
    flip_byte,
    staging_databases,
)
from tests.integration.logical.test_parallel_dump import backup_dumped_as
from tests.integration.logical.test_roundtrip import assert_same_database

pytestmark = pytest.mark.integration

# Only reached when the data waits for the whole dump (the failure being tested for).
NEVER = 120


def _watch_data_workers(
    monkeypatch: pytest.MonkeyPatch, ran: list[list[str]] | None = None, *, early: bool = False
) -> threading.Event:
    """An event set when a pg_restore that loads some tables' data from its stdin into a
    database (``--use-list``, no section, no archive file, no output file) has exited
    successfully; with ``early``, when one that built a worker's own indexes and
    constraints (``early-*.list``) has. ``ran`` gets the command line of every program
    that succeeded."""
    loaded = threading.Event()
    real_wait = RunningCommand.wait

    def wait(self: RunningCommand, timeout: float | None = None) -> None:
        real_wait(self, timeout)
        if ran is not None:
            ran.append(list(self.argv))
        if early:
            if self.program == "pg_restore" and any("/early-" in a for a in self.argv):
                loaded.set()
        elif (
            self.program == "pg_restore"
            and any(a.startswith("--use-list=") for a in self.argv)
            and not any(a.startswith(("--section=", "--file=")) for a in self.argv)
            and not any(a.endswith(".pgcustom") for a in self.argv)
        ):
            loaded.set()

    monkeypatch.setattr(RunningCommand, "wait", wait)
    return loaded


def _last_stream(manifest: Manifest) -> str:
    """The stream of the dump a restore reads last: ``dump``, or the last file of a
    directory-format dump (whose ``toc.dat`` is read first)."""
    files = [s.name for s in manifest.streams if s.name.startswith("dump/")]
    return [name for name in files if name != "dump/toc.dat"][-1] if files else "dump"


def _hold_the_end(
    monkeypatch: pytest.MonkeyPatch, loaded: threading.Event, *, fail: bool
) -> list[bool]:
    """The last chunk of the dump's last stream is held until ``loaded``; with ``fail``,
    the stream then fails as a checksum that does not match does. Returns a list that
    gets True when the last chunk was reached with ``loaded`` set."""
    reached: list[bool] = []
    real_batches = restore_module.StreamReader.batches

    def batches(self: Any, manifest: Manifest, name: str) -> Iterator[list[bytes]]:
        windows = real_batches(self, manifest, name)
        if name != _last_stream(manifest):
            yield from windows
            return
        # A chunk at a time: a small dump's stream may be one window.
        chunks = (data for window in windows for data in window)
        held = next(chunks)
        for data in chunks:
            yield [held]
            held = data
        reached.append(loaded.wait(NEVER))
        if fail:
            raise IntegrityError(
                f"stream {name!r} does not match its checksum",
                backup=manifest.backup_id,
                hint="restore another backup",
            )
        yield [held]

    monkeypatch.setattr(restore_module.StreamReader, "batches", batches)
    return reached


def _fails_leaving_nothing(
    respaldo: Respaldo, pg: TempCluster, backup_id: str, target: str, tmp_path: Path
) -> Run:
    """``restore --jobs 2`` of ``backup_id`` into ``target``, which must fail cleanly: no
    traceback, no database made or dropped, no staging database, nothing left in its work
    directory (no plaintext spool or spill file). Returns the run."""
    before = databases(pg)
    work = tmp_path / "work"
    work.mkdir()
    run = respaldo.run(
        "restore", backup_id, "--target-database", target, "--jobs", "2",
        "--work-dir", str(work),
    )  # fmt: skip
    assert_failed_leaving_nothing(run, pg, before, work)
    return run


@pytest.mark.parametrize("dumped", ["custom", "directory"])
def test_the_data_loads_while_the_dump_arrives(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    dumped: str,
) -> None:
    backup_id = backup_dumped_as(respaldo, dumped)
    ran: list[list[str]] = []
    loaded = _watch_data_workers(monkeypatch, ran)
    reached = _hold_the_end(monkeypatch, loaded, fail=False)
    counted_at_end: list[object] = []
    real_snapshot = postgres.exported_snapshot

    def snapshot(conninfo: Any, **options: Any) -> Any:
        counted_at_end.append(conninfo)
        return real_snapshot(conninfo, **options)

    monkeypatch.setattr(restore_module, "exported_snapshot", snapshot)
    run = respaldo.restore(backup_id, new_dbname, "--jobs", "2")
    assert reached == [True], "no table's data was loaded before the dump's end"
    # Each worker counted its own tables' rows: none is counted again at the end.
    assert counted_at_end == []
    recorded = respaldo.repository().load_manifest(backup_id).meta["row_counts"]
    assert f"{len(recorded)} tables' row counts checked" in run.err, run.err
    # A worker that was done built its own tables' indexes before the last step.
    assert any("/early-" in arg for argv in ran for arg in argv)
    # Every pg_restore into staging cancels an autovacuum in its way soon (a superuser).
    restores = [argv for argv in ran if "dbname=respaldo_staging_" in str(argv)]
    assert restores and all(f"deadlock_timeout={SHORT_LOCK_WAIT}" in str(a) for a in restores)
    # Identical to the source, as a serial restore is (test_roundtrip).
    assert_same_database(pg, respaldo.dbname, new_dbname)
    assert staging_databases(pg) == set()


@pytest.mark.parametrize("dumped", ["custom", "directory"])
def test_the_last_workers_indexes_go_with_the_rest_once_the_checksum_matched(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    dumped: str,
) -> None:
    # Each worker's post-data step starts once the whole dump matched its checksum, one
    # after the other: the first builds its own tables' indexes and keys; the last, with
    # nothing else running, leaves its list to the last step's pg_restore --jobs.
    backup_id = backup_dumped_as(respaldo, dumped)
    lists: dict[str, list[str]] = {}
    real_restore = commands.pg_restore

    def restore(conninfo: Any, **options: Any) -> Any:
        listed = options.get("use_list")
        if listed is not None:
            lists[listed.name] = listed.read_text(encoding="utf-8").split()
        return real_restore(conninfo, **options)

    one_at_a_time = threading.Lock()
    real_early = restore_parallel._post_data_early

    def early(spool: Any, *args: Any) -> None:
        spool.wait_done()
        with one_at_a_time:
            real_early(spool, *args)

    monkeypatch.setattr(restore_parallel, "pg_restore", restore)
    monkeypatch.setattr(restore_parallel, "_post_data_early", early)
    respaldo.restore(backup_id, new_dbname, "--jobs", "2")
    workers = {name.split("-")[1].split(".")[0] for name in lists if name.startswith("worker-")}
    stepped = {name.split("-")[1].split(".")[0] for name in lists if name.startswith("early-")}
    assert len(workers) == 2 and len(stepped) == 1 and stepped < workers, sorted(lists)
    built = {
        entry for name, entries in lists.items() if name.startswith("early-") for entry in entries
    }
    assert built and not built & set(lists["rest.list"])
    # The last worker's indexes and keys were built by the last step: identical to the
    # source, as a serial restore is (test_roundtrip).
    assert_same_database(pg, respaldo.dbname, new_dbname)
    assert staging_databases(pg) == set()


@pytest.mark.parametrize("dumped", ["custom", "directory"])
def test_a_bad_checksum_after_data_was_loaded_leaves_nothing(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    dumped: str,
) -> None:
    backup_id = backup_dumped_as(respaldo, dumped)
    # A worker that is done builds its own tables' indexes and keys in the staging
    # database without waiting for the dump's checksum; the checksum then fails.
    built = _watch_data_workers(monkeypatch, early=True)
    reached = _hold_the_end(monkeypatch, built, fail=True)
    run = _fails_leaving_nothing(respaldo, pg, backup_id, new_dbname, tmp_path)
    assert reached == [True]  # indexes had been built when the checksum failed
    assert "does not match its checksum" in run.err_lines[0]


@pytest.mark.parametrize("dumped", ["custom", "directory"])
def test_a_bad_checksum_kills_a_workers_index_builds_still_running(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    dumped: str,
) -> None:
    # The first worker that is done finds its tables locked (EXCLUSIVE: its row count
    # reads them, its index builds and keys wait): its post-data step is still running
    # when the checksum fails, and only the abandoned read may end it (the lock is let
    # go once the read was abandoned). Killed, it does not hold the failure up.
    backup_id = backup_dumped_as(respaldo, dumped)
    holders: list[psycopg.Connection[Any]] = []
    held: list[str] = []  # the lists of the steps that find their tables locked
    real_early = restore_parallel._post_data_early

    def early(spool: Any, source: Path, plan: Any, data_ids: list[int], conninfo: Any,
              *rest: Any) -> None:  # fmt: skip
        if not holders:
            by_id = {e.dump_id: e for e in plan.toc.entries}
            tables = [by_id[i] for i in data_ids if by_id[i].kind == "TABLE DATA"]
            holder = postgres.connect(conninfo)
            holders.append(holder)
            held.append(f"/early-{data_ids[0]}.list")
            holder.execute(
                sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(
                    sql.SQL(", ").join(sql.Identifier(t.namespace, t.tag) for t in tables)
                )
            )
        real_early(spool, source, plan, data_ids, conninfo, *rest)

    def release() -> None:
        for holder in holders:
            with contextlib.suppress(psycopg.Error):
                holder.close()  # its transaction, and the lock, end

    real_abort = Arrivals.abort

    def abort(self: Arrivals) -> None:
        real_abort(self)
        release()

    running = threading.Event()
    exits: list[int | None] = []
    real_wait = RunningCommand.wait

    def wait(self: RunningCommand, timeout: float | None = None) -> None:
        locked = self.program == "pg_restore" and any(a.endswith(tuple(held)) for a in self.argv)
        if locked:
            running.set()  # blocked on the lock until the read is abandoned
        try:
            real_wait(self, timeout)
        finally:
            if locked:
                exits.append(self.returncode)

    monkeypatch.setattr(restore_parallel, "_post_data_early", early)
    monkeypatch.setattr(Arrivals, "abort", abort)
    monkeypatch.setattr(RunningCommand, "wait", wait)
    reached = _hold_the_end(monkeypatch, running, fail=True)
    try:
        run = _fails_leaving_nothing(respaldo, pg, backup_id, new_dbname, tmp_path)
    finally:
        release()
    assert reached == [True]  # an index build was running when the checksum failed
    assert "does not match its checksum" in run.err_lines[0], run.err
    # Killed, not left to finish (both workers' steps, when they came at once).
    assert exits and set(exits) == {-signal.SIGKILL}, exits


@pytest.mark.parametrize("dumped", ["custom", "directory"])
def test_a_worker_whose_row_counts_differ_fails_before_the_dumps_end(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    dumped: str,
) -> None:
    # A backup whose snapshot recorded one row more of every table than its dump holds:
    # the same streams under a new id, with forged counts. A worker that has loaded its
    # tables counts them before it builds their indexes (RowCheck), while the dump's end
    # is still held.
    backup_id = backup_dumped_as(respaldo, dumped)
    counts = respaldo.repository().load_manifest(backup_id).meta["row_counts"]
    forged_tables = sorted(t for t, n in counts.items() if n > 0)

    def forge(meta: dict[str, Any]) -> None:
        for table in forged_tables:
            meta["row_counts"][table] += 1

    forged = respaldo.as_older(backup_id, forge)
    caught = threading.Event()
    real_check = RowCheck.__call__

    def check(self: RowCheck, entries: list[TocEntry]) -> int:
        try:
            return real_check(self, entries)
        except RestoreError:
            caught.set()
            raise

    monkeypatch.setattr(RowCheck, "__call__", check)
    reached = _hold_the_end(monkeypatch, caught, fail=False)
    run = _fails_leaving_nothing(respaldo, pg, forged, new_dbname, tmp_path)
    assert reached == [True]  # a worker's count failed while the dump's end was held
    assert "restored row counts differ from the backup's: " in run.err_lines[0], run.err
    assert re.search(r"(\S+): (\d+) rows?, (\d+) expected", run.err_lines[0]), run.err
    for table, rows, expected in re.findall(r"(\S+): (\d+) rows?, (\d+) expected", run.err):
        assert table in forged_tables and int(expected) == int(rows) + 1


def test_a_damaged_chunk_of_a_file_read_ahead_to_its_worker_leaves_nothing(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # A directory-format backup's biggest table file, damaged in its middle and read only
    # once the workers are planned: its chunks go to its worker as they arrive
    # (operations/restore_feed.py), and the damaged one stops the restore there.
    backup_id = backup_dumped_as(respaldo, "directory")
    repo = respaldo.repository()
    manifest = repo.load_manifest(backup_id)
    tables = [s for s in manifest.streams if re.fullmatch(r"dump/\d+\.dat", s.name)]
    biggest = max(tables, key=lambda s: s.size)
    entries = read_list(repo, biggest.lists[0])
    location = repo.index.get(entries[len(entries) // 2][0])
    assert location is not None
    pack = pack_name(location.pack_id)
    flip_byte(respaldo.repo_dir / pack, location.offset + location.length // 2)
    routed = threading.Event()
    owners: dict[str, int] = {}
    real_route = FileFeed.route

    def route(self: FileFeed, chosen: dict[str, int]) -> None:
        owners.update(chosen)
        real_route(self, chosen)
        routed.set()

    real_batches = restore_module.StreamReader.batches

    def batches(self: Any, manifest: Manifest, name: str) -> Iterator[list[bytes]]:
        if name == biggest.name:
            assert routed.wait(NEVER)
        yield from real_batches(self, manifest, name)

    monkeypatch.setattr(FileFeed, "route", route)
    monkeypatch.setattr(restore_module.StreamReader, "batches", batches)
    run = _fails_leaving_nothing(respaldo, pg, backup_id, new_dbname, tmp_path)
    assert Path(biggest.name).name in owners  # streamed to a worker, not spooled whole
    assert pack in run.err and f"of stream '{biggest.name}'" in run.err, run.err


_RELOPTIONS = """
SELECT n.nspname || '.' || c.relname, c.reloptions, t.reloptions
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid
 WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
"""


def _reloptions(pg: TempCluster, dbname: str) -> dict[str, tuple[Any, Any]]:
    return {str(r[0]): (r[1], r[2]) for r in pg.query(_RELOPTIONS, dbname=dbname)}


@pytest.mark.parametrize("dumped", ["custom", "directory"])
def test_autovacuum_is_off_in_staging_while_the_tables_load_and_as_the_dump_says_after(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    dumped: str,
) -> None:
    # Tables of the source that say something of their own about autovacuum, on the
    # table or its TOAST table: left as they are.
    pg.execute(
        "ALTER TABLE core.clientes SET (fillfactor = 90, autovacuum_enabled = on);"
        "ALTER TABLE docs.fotos SET (toast.autovacuum_enabled = off)",
        dbname=respaldo.dbname,
    )
    backup_id = backup_dumped_as(respaldo, dumped)
    during: list[dict[str, tuple[Any, Any]]] = []
    real_check = RowCheck.__call__

    def check(self: RowCheck, entries: list[TocEntry]) -> int:
        # A worker has loaded its tables: what the launcher would find in staging now.
        staging = sorted(staging_databases(pg))
        during.append(_reloptions(pg, staging[0]))
        return real_check(self, entries)

    monkeypatch.setattr(RowCheck, "__call__", check)
    run = respaldo.restore(backup_id, new_dbname, "--jobs", "2")
    assert during, run.err
    own = {"core.clientes", "docs.fotos"}
    for seen in during:
        for table, (options, _toast) in seen.items():
            if table in own:
                assert "autovacuum_enabled=false" not in (options or []), (table, options)
            else:
                assert "autovacuum_enabled=false" in (options or []), (table, options)
    # Handed over as the dump made it: nothing left of the pause (pg_dump -s shows it).
    restored = _reloptions(pg, new_dbname)
    assert not any("autovacuum_enabled=false" in (o or []) for o, _ in restored.values())
    assert restored == _reloptions(pg, respaldo.dbname)
    assert_same_database(pg, respaldo.dbname, new_dbname)


def test_a_restore_whose_autovacuum_cannot_be_turned_back_on_leaves_nothing(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # The server refuses the RESET of one table (here: one that is not there any more).
    backup_id = backup_dumped_as(respaldo, "custom")
    real_resume = postgres.resume_autovacuum

    def resume(conninfo: Any, tables: list[tuple[str, str]]) -> None:
        real_resume(conninfo, [*tables, ("core", "gone")])

    monkeypatch.setattr(restore_parallel, "resume_autovacuum", resume)
    run = _fails_leaving_nothing(respaldo, pg, backup_id, new_dbname, tmp_path)
    assert "turning autovacuum back on for the restored tables" in run.err, run.err
    assert 'relation "core.gone" does not exist' in run.err, run.err


def test_a_restore_whose_autovacuum_cannot_be_paused_leaves_nothing(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # The server refuses the pause (here: it is asked of a database that is not there).
    # Failing is the safe side: a pause whose commit was lost with its connection may
    # have happened, and the database would be handed over with autovacuum off.
    backup_id = backup_dumped_as(respaldo, "custom")
    real_pause = postgres.pause_autovacuum

    def pause(conninfo: Any) -> list[tuple[str, str]]:
        return real_pause(conninfo.with_dbname("respaldo_no_such_database"))

    monkeypatch.setattr(restore_parallel, "pause_autovacuum", pause)
    run = _fails_leaving_nothing(respaldo, pg, backup_id, new_dbname, tmp_path)
    assert "respaldo_no_such_database" in run.err_lines[0], run.err


def test_a_dump_with_an_event_trigger_keeps_autovacuum_on(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # The last step creates the event trigger; an ALTER TABLE after it, to turn
    # autovacuum back on, would fire it (this one refuses every ALTER TABLE). Not every
    # command: pg_restore -j may create it before the materialized views' REFRESH (the
    # same last pass, no order between them), which it would refuse too, now and then.
    pg.execute(
        "CREATE FUNCTION public.no_ddl() RETURNS event_trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'no DDL here'; END $$;"
        "CREATE EVENT TRIGGER no_ddl ON ddl_command_start WHEN TAG IN ('ALTER TABLE')"
        " EXECUTE FUNCTION public.no_ddl()",
        dbname=respaldo.dbname,
    )
    backup_id = backup_dumped_as(respaldo, "custom")
    respaldo.restore(backup_id, new_dbname, "--jobs", "2")
    assert pg.query("SELECT evtname FROM pg_catalog.pg_event_trigger", dbname=new_dbname) == [
        ("no_ddl",)
    ]
    assert_same_database(pg, respaldo.dbname, new_dbname)


def test_a_pause_of_autovacuum_the_server_refuses_half_way_fails_and_leaves_nothing(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # The server refuses one batch of the pause (here: a table that is not there, listed
    # among the others) after the batches before it were committed: the staging database
    # they are in is dropped, never handed over with autovacuum off on some tables.
    backup_id = backup_dumped_as(respaldo, "custom")
    listed = postgres_server._UNPAUSED_TABLES.replace(" ORDER BY 1, 2", "")
    monkeypatch.setattr(
        postgres_server,
        "_UNPAUSED_TABLES",
        f"SELECT * FROM ({listed} UNION ALL SELECT 'core', 'gone') AS t ORDER BY 1, 2",
    )
    monkeypatch.setattr(postgres_server, "_AUTOVACUUM_BATCH", 1)
    run = _fails_leaving_nothing(respaldo, pg, backup_id, new_dbname, tmp_path)
    assert "pausing autovacuum of the tables to load" in run.err, run.err
    assert 'relation "core.gone" does not exist' in run.err, run.err
