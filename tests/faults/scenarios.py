"""The table of fault scenarios: data, and the few actions that play them.

Each :class:`Scenario` names an operation, the fault, and what respaldo is expected to do;
``act`` plays it on a fresh :class:`~tests.faults.world.World` — earlier backups, the
faulted run, the operator's next run — and returns an :class:`~tests.faults.checks.Outcome`
for the shared checker. Faults strike at scripted points, never after a fixed sleep:

- kill -9 / freeze: an audit hook in the child process (tests/faults/child.py) fires at
  the Nth ``open`` / ``os.rename`` / ``os.remove`` / ``subprocess.Popen`` matching a pattern;
- storage errors and timeouts: rules of the fault proxy (tests/servers/faultproxy.py)
  between respaldo and S3;
- PostgreSQL restart: the child is frozen at a point where its dump or restore runs, the
  server is restarted (``pg_ctl restart -m fast``), the child continues;
- full disk: a tmpfs of a few MB as the repository, filled up by the test;
- corruption: bytes of one object of each kind changed on disk.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import psycopg
from psycopg.rows import TupleRow
from tests.faketime import LIBFAKETIME
from tests.faults.checks import Outcome, assert_clear_message, tree_snapshot
from tests.faults.world import PROCESS_TIMEOUT, Plant, Run, World, wait_for
from tests.integration.logical.support import flip_byte, staging_databases, table_checksums
from tests.integration.physical.conftest import chown_tree, server_respaldo
from tests.servers.faultproxy import Rule

from respaldo.operations.targets import MARKER


@dataclass(frozen=True)
class Scenario:
    name: str
    operation: str
    fault: str
    expected: str
    act: Callable[[World], Outcome] = field(repr=False, compare=False)
    primary: str = "file"
    """The primary repository: ``file``, ``tmpfs`` (full disk) or ``s3`` (behind the proxy)."""

    def __str__(self) -> str:
        return self.name


# --- helpers ---------------------------------------------------------------------------


def _killed(run: Run) -> None:
    assert run.code == -signal.SIGKILL, f"the process was not killed at its fault point: {run}"
    assert run.mark, f"the fault point was not reached: {run}"


def _same_database(world: World, target: str) -> None:
    assert table_checksums(world.pg, target) == table_checksums(world.pg, world.dbname)


def _restore_again_exact(world: World, args: tuple[str, ...], target: str) -> None:
    """The failed restore left no ``target``; the same command run again succeeds and
    restores exactly the source's rows."""
    assert target not in world.databases()
    again = world.run_process(*args)
    assert again.code == 0, str(again)
    _same_database(world, target)


def _new_target(world: World) -> str:
    return f"restored_{world.tmp.name[-12:].lower().replace('-', '_')}"


PACK_OPEN = r"/repo/packs/"
"""Reads of packs: a restore reads runs of chunks, about one per pack (a dozen here)."""


# --- kill -9 at scripted points ------------------------------------------------------------


def _other(source: str) -> str:
    # The earlier backup is of the other source: the faulted one then has all its chunks
    # to store (nothing to deduplicate against), so there are packs to strike between.
    return "uploads" if source == "erp" else "erp"


def kill_backup(world: World, plant: Plant, source: str = "erp") -> Outcome:
    """A backup killed at ``plant``; the next backup of the same source succeeds."""
    before = {world.backup(_other(source))}
    _killed(world.run_process("backup", source, plant=plant))
    world.backup(source)
    return Outcome(before, summary="killed backup recorded failed; next backup completed")


def kill_restore(world: World, plant: Plant, options: tuple[str, ...] = ()) -> Outcome:
    """A logical restore killed at ``plant``; the same restore again succeeds, exactly."""
    backup_id = world.backup()
    target = _new_target(world)
    args = ("restore", backup_id, "--target-database", target, *options)
    _killed(world.run_process(*args, plant=plant))
    assert target not in world.databases(), "a killed restore created its target"
    again = world.run_process(*args)
    assert again.code == 0, str(again)
    _same_database(world, target)
    return Outcome({backup_id}, summary="target untouched; restore again is exact")


_PAUSED = (
    "SELECT count(*) FROM pg_catalog.pg_class"
    " WHERE relkind = 'r' AND 'autovacuum_enabled=false' = ANY (reloptions)"
)


def kill_restore_jobs_paused(world: World) -> Outcome:
    """``restore --jobs 2`` killed as its first worker's pg_restore starts, with autovacuum
    turned off on the staging database's tables (operations/restore_parallel.py): the
    next run drops that database, and the one it restores has autovacuum off nowhere."""
    backup_id = world.backup()
    target = _new_target(world)
    args = ("restore", backup_id, "--target-database", target, "--jobs", "2")
    # The first worker's pg_restore starts after the pause.
    _killed(world.run_process(*args, plant=Plant("subprocess.Popen", _INTO_STAGING)))
    (staging,) = staging_databases(world.pg)
    paused = int(world.pg.scalar(_PAUSED, dbname=staging))
    assert paused > 0, "killed before autovacuum was paused"
    assert target not in world.databases(), "a killed restore created its target"
    again = world.run_process(*args)
    assert again.code == 0, str(again)
    assert staging not in world.databases()
    _same_database(world, target)
    assert world.pg.scalar(_PAUSED, dbname=target) == 0, "handed over with autovacuum off"
    return Outcome(
        {backup_id},
        summary=f"left with autovacuum off on {paused} tables, dropped at the next run; "
        "restore again exact, autovacuum off nowhere",
    )


def kill_files_restore(world: World) -> Outcome:
    """A files restore killed mid-file: the target is marked incomplete, no file is cut
    short under its final name, and the same restore again replaces the partial one."""
    backup_id = world.backup("uploads")
    target = world.tmp / "restored-files"
    args = ("restore", backup_id, "--target-dir", str(target))
    # Files are written as .respaldo-part-* and renamed: killed as the 2nd one opens.
    plant = Plant("open", rf"^{target}/.*\.respaldo-part-", 2)
    _killed(world.run_process(*args, plant=plant))
    source = tree_snapshot(world.tree)
    assert (target / MARKER).is_file(), "a partial restore without its marker"
    restored = target / str(world.tree).lstrip("/")
    if restored.exists():
        for rel, data in tree_snapshot(restored).items():
            if ".respaldo-part-" not in rel:
                assert source.get(rel) == data, f"half-written file under its final name: {rel}"
    again = world.run_process(*args)
    assert again.code == 0, str(again)
    assert tree_snapshot(restored) == source
    assert not (target / MARKER).exists()
    return Outcome({backup_id}, summary="marked incomplete, no cut file; restore again exact")


def _physical_backup(world: World) -> str:
    run = world.ok("backup", "erp", "--type", "incremental", "--json")
    return str(run.json()["id"])


def kill_physical_backup(world: World) -> Outcome:
    """A physical backup killed while storing packs: no slot, no record in_progress."""
    before = {_physical_backup(world)}
    # Unchanged data deduplicates: what is new fits in one pack; killed as it is written.
    plant = Plant("open", r"/repo/packs/.*\.tmp-", 1)
    _killed(world.run_process("backup", "erp", "--type", "incremental", plant=plant))
    # The next backup is a new process, as it is for real: it sweeps what the killed
    # one left in its private directories (a test process sweeps each place once).
    after = world.run_process("backup", "erp", "--type", "incremental")
    assert after.code == 0, str(after)
    return Outcome(before, summary="killed backup recorded failed; next backup completed")


def kill_physical_restore(world: World) -> Outcome:
    """A physical restore killed mid-directory: marked, unstartable, replaced by the next."""
    backup_id = _physical_backup(world)
    base = Path(tempfile.mkdtemp(prefix="restored-", dir=world.tmp))
    chown_tree(base)
    datadir = base / "data"
    args = ("restore", backup_id, "--target-datadir", str(datadir), "--immediate")
    try:
        _killed(world.run_process(*args, plant=Plant("open", rf"^{datadir}/base/", 40)))
        assert (datadir / MARKER).is_file(), "a half-written data directory without its marker"
        assert not (datadir / "PG_VERSION").exists(), "PostgreSQL would start on it"
        again = world.run_process(*args)
        assert again.code == 0, str(again)
        assert not (datadir / MARKER).exists()
        assert (datadir / "PG_VERSION").read_text().strip().isdigit()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return Outcome({backup_id}, summary="marked, no PG_VERSION; restore again completes")


def kill_drill(world: World) -> Outcome:
    backup_id = world.backup()
    _killed(world.run_process("drill", backup_id, plant=Plant("open", PACK_OPEN, 4)))
    again = world.run_process("drill", backup_id)
    assert again.code == 0, str(again)
    return Outcome({backup_id}, summary="staging dropped at the next run; drill again passes")


def kill_physical_drill(world: World) -> Outcome:
    """A physical drill killed with its scratch server up (recovered, promoted): the next
    drill stops that server and removes its scratch data directory, then passes."""
    backup_id = _physical_backup(world)
    # The scratch data directory's pg_control is written (1st open) as the backup is
    # extracted, and read (2nd) once the server accepts connections, to see it promoted.
    # (Its log is read while the server starts, to tell a taken port: no sure count.)
    control = r"/respaldo-drill-[^/]+/data/global/pg_control$"
    args = ("drill", backup_id, "--respaldo-command", server_respaldo())
    _killed(world.run_process(*args, plant=Plant("open", control, 2)))
    (scratch,) = world.tmpdir.glob("respaldo-drill-*")
    pid = int((scratch / "data" / "postmaster.pid").read_text().split()[0])
    assert Path(f"/proc/{pid}").exists(), "the killed drill's scratch server is not running"
    # A pidfd names this very process (no mistaking a reused pid) and becomes readable
    # when it has exited: pg_ctl stop returns once the postmaster removed its pid file,
    # a moment before the process is gone, and an orphan stays in /proc until reaped.
    server = os.pidfd_open(pid)
    try:
        again = world.run_process(*args)
        assert again.code == 0, str(again)
        assert not scratch.exists(), f"the killed drill's {scratch} is still there"
        exited = select.select([server], [], [], 120)[0]
        assert exited, "the killed drill's scratch server still runs"
    finally:
        os.close(server)
    return Outcome(
        {backup_id}, summary="scratch server stopped, directory removed; drill again passes"
    )


def kill_copy(world: World) -> Outcome:
    """The backup's own copy to ``offsite`` killed half-way; ``copy --all`` completes it."""
    first = world.backup("uploads")
    plant = Plant("open", r"/offsite/packs/.*\.tmp-", 2)
    _killed(world.run_process("backup", "erp", plant=plant))
    second = set(world.repository().backup_ids()) - {first}
    assert len(second) == 1, "the backup was killed before its copy"
    assert set(world.repository("offsite").backup_ids()) == {first}
    again = world.run_process("copy", "--all", "--to", "offsite")
    assert again.code == 0, str(again)
    return Outcome({first, *second}, summary="half copy invisible; copy --all completes it")


def kill_prune(world: World) -> Outcome:
    ids = [world.backup("uploads") for _ in range(3)]
    # Keep only the newest: prune has two backups and their packs to delete.
    with world.config.open("a") as config:
        config.write("\n[retention]\nkeep_until_expires = false\nkeep_last = 1\nmin_keep = 1\n")
    plant = Plant("os.remove", r"/repo/(manifests|packs)/")
    _killed(world.run_process("prune", plant=plant))
    again = world.run_process("prune")
    assert again.code == 0, str(again)
    kept = world.completed()
    assert ids[-1] in kept
    return Outcome(kept, summary="kept backups intact; prune again finishes the work")


def terminate_prune(world: World) -> Outcome:
    """prune sent SIGTERM as it is about to delete an expired backup's manifest from the
    second repository, the primary's gone already: the two and the catalog record are
    deleted together (the interrupt held until then), so the catalog never lists as
    completed a backup whose manifest the primary lost."""
    ids = [world.backup() for _ in range(3)]
    copied = world.run_process("copy", "--all", "--to", "offsite")
    assert copied.code == 0, str(copied)
    with world.config.open("a") as config:
        config.write("\n[retention]\nkeep_until_expires = false\nkeep_last = 1\nmin_keep = 1\n")
    plant = Plant("os.remove", r"/offsite/manifests/", action="term")
    run = world.run_process("prune", plant=plant)
    assert run.mark.startswith("os.remove"), f"the fault did not strike: {run}"
    assert run.code == 143, str(run)
    assert run.err.splitlines()[-1] == "respaldo: terminated (SIGTERM)", str(run)
    # Before the next run too: no record completed whose manifest the primary lost.
    lost = world.completed() - set(world.repository().backup_ids())
    assert not lost, f"completed in the catalog, gone from the primary: {lost}"
    again = world.run_process("prune")
    assert again.code == 0, str(again)
    kept = world.completed()
    assert kept == {ids[-1]}
    return Outcome(
        kept,
        summary="exit 143; manifests and record deleted together; prune again finishes",
    )


# A respaldo process whose wall clock is 400 days ahead (its monotonic clock left as it
# is); the two prune scenarios below refuse under it.
PRUNE_400_DAYS_AHEAD = {
    "LD_PRELOAD": str(LIBFAKETIME),
    "FAKETIME": "+400d",
    "FAKETIME_DONT_FAKE_MONOTONIC": "1",
}


def prune_clock_ahead(world: World) -> Outcome:
    ids = {world.backup() for _ in range(3)}
    # The machine's clock stepped 400 days ahead (a VM restored from a snapshot): every
    # backup is 400 days old to the rules by age (7-day retention, min_keep 2).
    refused = world.run_process("prune", extra_env=PRUNE_400_DAYS_AHEAD)
    assert refused.code == 1, str(refused)
    said = " ".join(refused.err.split())
    assert "prune refused, nothing was deleted" in said, str(refused)
    assert "400 days after the newest backup completed" in said, str(refused)
    assert "--trust-clock" in said, str(refused)
    assert world.completed() == ids
    assert set(world.repository().backup_ids()) == ids
    again = world.run_process("prune")  # the clock put right: nothing has expired
    assert again.code == 0, str(again)
    assert world.completed() == ids
    return Outcome(
        ids,
        failed_runs=[refused],
        summary="prune exit 1, 'prune refused, nothing was deleted', naming the clock's "
        "400 days and --trust-clock; all 3 backups kept; with the clock right, prune exit 0",
    )


def prune_after_jumped_backup(world: World) -> Outcome:
    ids = {world.backup() for _ in range(3)}
    # The clock stepped 400 days ahead and the service's next scheduled backup ran: it
    # completed "400 days later" and agrees with the clock. (Its monotonic clock moved
    # too: with it left alone, Python's sleeps in the wait for pg_dump fail, EINVAL.)
    jumped = world.run_process(
        "backup", "erp", "--json", extra_env={"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": "+400d"}
    )
    assert jumped.code == 0, str(jumped)
    ids.add(str(jumped.json()["id"]))
    refused = world.run_process("prune", extra_env=PRUNE_400_DAYS_AHEAD)
    assert refused.code == 1, str(refused)
    said = " ".join(refused.err.split())
    assert "prune refused, nothing was deleted: respaldo recorded nothing for 400 days" in said
    assert "the clock jumped ahead" in said and "--trust-clock" in said, str(refused)
    assert world.completed() == ids
    assert set(world.repository().backup_ids()) == ids
    return Outcome(
        ids,
        failed_runs=[refused],
        summary="a backup 400 days ahead completed, then prune exit 1, 'prune refused, "
        "nothing was deleted: respaldo recorded nothing for 400 days', naming "
        "--trust-clock; all 4 backups kept",
    )


def kill_backup_after_manifest(world: World) -> Outcome:
    before = {world.backup()}
    # The writer deletes its lease (its lock object) once the manifest is stored, before
    # the catalog records the backup: the window between a whole backup and its record.
    plant = Plant("os.remove", r"/repo/locks/")
    _killed(world.run_process("backup", "erp", plant=plant))
    (new,) = set(world.repository().backup_ids()) - before
    listed = world.ok("list", "--json")  # the next start settles the dead process's record
    (record,) = [r for r in listed.json() if r["id"] == new]
    assert record["status"] == "completed", record
    target = _new_target(world)
    world.ok("restore", new, "--target-database", target)
    _same_database(world, target)
    return Outcome(
        before | {new}, summary="completed from its manifest at the next start; restores exact"
    )


def terminate_backup_after_manifest(world: World) -> Outcome:
    """SIGTERM (``systemctl stop``, ``timeout``) in the same window as the kill above:
    the manifest stored, the record not yet completed. The signal is held until the
    record says completed and the backup ends there, completed; before, the process
    exited 143 with its job cancelled and its record failed while its manifest stood."""
    before = {world.backup()}
    plant = Plant("os.remove", r"/repo/locks/", action="term")
    run = world.run_process("backup", "erp", plant=plant)
    assert run.mark.startswith("os.remove"), f"the fault did not strike: {run}"
    assert run.code == 0, str(run)
    (new,) = set(world.repository().backup_ids()) - before
    said = " ".join(run.err.split())
    late = f"completed before the signal took effect (terminated by SIGTERM): {new}"
    assert late in said, str(run)
    assert run.out.splitlines()[-1] == new, str(run)
    # Before any other process settles anything: the record and the job say completed.
    (record,) = [r for r in world.records() if r.id == new]
    assert record.status == "completed", (record.status, record.error_message)
    jobs = [j for j in world.ok("jobs", "--json").json() if j["kind"] == "backup"]
    assert jobs[0]["status"] == "completed" and jobs[0]["resultId"] == new, jobs[0]
    return Outcome(
        before | {new},
        summary="exit 0, 'the backup completed before the signal took effect'; record and "
        "job completed",
    )


def _segment(world: World) -> Path:
    """A copy of a WAL segment the test cluster just completed (its real name)."""
    world.pg.execute("SELECT pg_catalog.pg_logical_emit_message(true, 'faults', 'x')")
    name = str(world.pg.scalar("SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_switch_wal())"))
    copy = world.tmp / "segments" / name
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(world.pg.datadir / "pg_wal" / name, copy)
    return copy


def _fetched(world: World, segment: Path) -> bytes:
    out = world.tmp / "fetched" / segment.name
    out.parent.mkdir(exist_ok=True)
    out.unlink(missing_ok=True)
    world.ok("wal-fetch", "--database", "erp", segment.name, str(out))
    return out.read_bytes()


def kill_wal_push(world: World) -> Outcome:
    """wal-push killed between writing the segment and renaming it; the retry stores it."""
    before = {world.backup("uploads")}
    first, second = _segment(world), _segment(world)
    world.ok("wal-push", str(first))
    plant = Plant("os.rename", r"/repo/wal/.*\.tmp-")
    _killed(world.run_process("wal-push", str(second), plant=plant))
    again = world.run_process("wal-push", str(second))
    assert again.code == 0, str(again)
    for segment in (first, second):
        assert _fetched(world, segment) == segment.read_bytes()
    return Outcome(before, summary="the server's retry archives it; both segments fetch exactly")


# --- storage errors and timeouts (S3 behind the fault proxy) --------------------------------


def storage_backup(world: World, rules: list[Rule], *, succeeds: bool) -> Outcome:
    """A backup while the proxy injects ``rules``: it rides them out or fails clearly."""
    assert world.proxy is not None
    before = {world.backup("uploads")}
    for rule in rules:
        world.proxy.add(rule)
    run = world.run("backup", "erp", "--json")
    injected = len(world.proxy.injected())
    assert injected > 0, "the proxy injected no fault"
    world.proxy.clear()
    if succeeds:
        assert run.code == 0, str(run)
        before.add(str(run.json()["id"]))
        return Outcome(before, summary=f"rode out {injected} injected faults; backup completed")
    message = assert_clear_message(run)
    assert not (world.completed() - before), "a failed backup is listed as completed"
    world.backup()
    return Outcome(before, [run], summary=f"failed: {message}")


def storage_restore(world: World, rules: list[Rule], *, succeeds: bool) -> Outcome:
    assert world.proxy is not None
    backup_id = world.backup()
    target = _new_target(world)
    for rule in rules:
        world.proxy.add(rule)
    run = world.run("restore", backup_id, "--target-database", target)
    injected = len(world.proxy.injected())
    assert injected > 0, "the proxy injected no fault"
    world.proxy.clear()
    if succeeds:
        assert run.code == 0, str(run)
        _same_database(world, target)
        how = "read the offsite copy" if "read from file://" in run.err else "retried"
        return Outcome({backup_id}, summary=f"{injected} faults injected; {how}; exact")
    message = assert_clear_message(run)
    assert target not in world.databases()
    world.ok("restore", backup_id, "--target-database", target)
    _same_database(world, target)
    return Outcome({backup_id}, [run], summary=f"failed: {message}")


# --- full disk ---------------------------------------------------------------------------


def full_disk_backup(world: World) -> Outcome:
    assert world.repo_dir is not None
    before = {world.backup("erp")}
    usage = shutil.disk_usage(world.repo_dir)
    filler = world.repo_dir.parent / "filler"
    # Leave room for a few packs only: the backup starts, then the disk is full.
    with filler.open("wb") as fh:
        fh.write(b"\0" * max(0, usage.free - 200_000))
    run = world.run("backup", "uploads")
    message = assert_clear_message(run)
    filler.unlink()
    world.backup("uploads")
    return Outcome(before, [run], summary=f"failed: {message}")


# --- PostgreSQL restarting ----------------------------------------------------------------


def _sessions(world: World, application: str) -> int:
    """How many sessions' application_name is ``application`` (a LIKE pattern)."""
    return int(
        world.pg.scalar(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE application_name LIKE %s",
            [application],
        )
    )


def restart_mid_dump(world: World) -> Outcome:
    before = {world.backup("uploads")}
    # Frozen while storing its 3rd pack: pg_dump is still running, its pipe filling up.
    with world.frozen(("backup", "erp"), Plant("open", r"/repo/packs/.*\.tmp-", 3)) as child:
        # A backup names its pg_dump's session after itself (respaldo pg_dump <backup id>).
        connected = _sessions(world, "respaldo pg_dump %")
        assert connected, "pg_dump is not connected while the backup runs"
        world.restart_postgres()
    out, err = child.communicate(timeout=240)
    run = Run(child.returncode, out, err, world.mark())
    message = assert_clear_message(run)
    world.backup()
    return Outcome(before, [run], summary=f"failed: {message}")


def restart_mid_restore(world: World) -> Outcome:
    """PostgreSQL restarts while pg_restore is inside the staging database.

    The child is frozen as it starts pg_restore; a transaction of the test then holds the
    staging database's ``pg_namespace`` and ``pg_class`` in SHARE mode, so pg_restore
    connects and blocks at its first CREATE — observed in pg_stat_activity — and the
    restart strikes it there, with the stream half fed, whatever the machine's speed.
    """
    backup_id = world.backup()
    target = _new_target(world)
    args = ("restore", backup_id, "--target-database", target)
    with world.frozen(
        args, Plant("subprocess.Popen", r"pg_restore.*dbname=respaldo_staging_")
    ) as child:
        (staging,) = staging_databases(world.pg)
        locker = world.pg.connect(staging, autocommit=False)
        locker.execute("LOCK TABLE pg_catalog.pg_namespace, pg_catalog.pg_class IN SHARE MODE")
    try:
        wait_for(
            "pg_restore to wait for the lock",
            lambda: _waiting(world, staging, "pg_restore"),
            process=child,
        )
        world.restart_postgres()
    finally:
        with contextlib.suppress(Exception):
            locker.close()
    out, err = child.communicate(timeout=240)
    run = Run(child.returncode, out, err, world.mark())
    message = assert_clear_message(run)
    _restore_again_exact(world, args, target)
    return Outcome({backup_id}, [run], summary=f"failed: {message}")


def kill_worker_beside_a_locked_one(world: World) -> Outcome:
    """``restore --jobs 2``: one worker's pg_restore killed (kill -9, as the out-of-memory
    killer does) while the other's COPY waits on a lock that the test lets go of only once
    the restore has ended. The restore ends at once with the first failure, saying that
    nothing was changed; the other worker's pg_restore is killed, staging dropped.

    The child is frozen as its first worker's pg_restore starts (the pre-data section is
    there, no worker has begun); a transaction of the test then locks every table of the
    staging database, so both workers' COPY wait on it, observed in pg_stat_activity."""
    backup_id = world.backup()
    target = _new_target(world)
    args = ("restore", backup_id, "--target-database", target, "--jobs", "2")
    with world.frozen(args, Plant("subprocess.Popen", _INTO_STAGING)) as child:
        staging, locker = _lock_staging_tables(world)
    try:
        # Both workers' COPY wait on the lock: neither pg_restore had started at the freeze
        # (tests/faults/child.py holds the other worker's Popen until this one's stop).
        wait_for(
            "both workers to wait for the lock",
            lambda: _waiting(world, staging, "pg_restore", 2),
            process=child,
        )
        workers = [
            p
            for p in psutil.Process(child.pid).children(recursive=True)
            if p.name() == "pg_restore" and any("/worker-" in a for a in p.cmdline())
        ]
        assert len(workers) == 2, workers
        workers[0].kill()
        killed = time.monotonic()
        # A hang detector, not a time limit: the lock is let go only after it.
        out, err = child.communicate(timeout=240)
        took = time.monotonic() - killed
    finally:
        with contextlib.suppress(Exception):
            locker.close()
    run = Run(child.returncode, out, err, world.mark())
    message = assert_clear_message(run)
    assert "killed by signal 9" in message, str(run)
    assert f"nothing was changed: no database {target} was created" in err, str(run)
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    _restore_again_exact(world, args, target)
    return Outcome(
        {backup_id},
        [run],
        summary=f"ended {took:.1f} s after the kill, the other worker's lock still held: "
        f"{message}; nothing changed; restore again exact",
    )


def kill_restore_in_its_last_pg_restore(world: World) -> Outcome:
    """``restore --jobs 2`` killed (kill -9) while its last pg_restore (the post-data
    section, from the spool) waits on a lock the test holds on every staging table: that
    pg_restore and its workers, in a session of their own, outlive it. The next process
    to open the catalog, ``respaldo jobs`` here (``serve`` or a worker alike), fails the
    job and drops the staging database, which ends the orphans' sessions and so the
    orphans; the restore again is exact.

    The child is frozen as that pg_restore starts (only it runs with ``--jobs``), the
    tables are locked, the child continues until pg_restore waits on the lock."""
    backup_id = world.backup()
    target = _new_target(world)
    args = ("restore", backup_id, "--target-database", target, "--jobs", "2")
    last = r"pg_restore.*(--jobs=2.*dbname=respaldo_staging_|dbname=respaldo_staging_.*--jobs=2)"
    with world.frozen(args, Plant("subprocess.Popen", last)) as child:
        staging, locker = _lock_staging_tables(world)
    try:
        wait_for(
            "the last pg_restore to wait for the lock",
            lambda: _waiting(world, staging, "pg_restore"),
            process=child,
        )
        children = psutil.Process(child.pid).children(recursive=True)
        orphans = [p for p in children if p.name() == "pg_restore"]
        child.kill()
        child.communicate(timeout=PROCESS_TIMEOUT)
        assert orphans and all(_alive(p) for p in orphans), "no pg_restore outlived respaldo"
        wait_for("the killed restore's hold to end", lambda: _sessions(world, "respaldo%") == 0)
        run = world.run_process("jobs", "--json")
        assert run.code == 0, str(run)
        (job,) = [j for j in json.loads(run.out) if j["kind"] == "restore"]
        assert job["status"] == "failed", job
        assert f"dropped staging database {staging}" in run.err, str(run)
        assert staging not in world.databases()
        wait_for("the orphans to end", lambda: not any(_alive(p) for p in orphans))
    finally:
        with contextlib.suppress(Exception):
            locker.close()
    _restore_again_exact(world, args, target)
    return Outcome(
        {backup_id},
        summary=f"{len(orphans)} pg_restore outlived it; the next start (respaldo jobs) "
        "failed the job and dropped staging, the orphans ended; restore again exact",
    )


def second_signal_during_the_staging_drop(world: World) -> Outcome:
    """``restore --jobs 2`` sent SIGTERM while its workers' COPY wait on a lock of the
    test, then Ctrl-C while its cleanup's DROP DATABASE of the staging database waits on
    an uncommitted ``COMMENT ON DATABASE`` of the test (a session on another database,
    which the drop's FORCE does not end). The second signal stops the drop: the command
    says which staging database it left and that the next restore or drill drops it; the
    job's reason and the exit status stay SIGTERM's; the restore again drops it and is
    exact."""
    backup_id = world.backup()
    target = _new_target(world)
    args = ("restore", backup_id, "--target-database", target, "--jobs", "2")
    holder = world.pg.connect(autocommit=False)
    with world.frozen(args, Plant("subprocess.Popen", _INTO_STAGING)) as child:
        staging, locker = _lock_staging_tables(world)
        holder.execute(f"COMMENT ON DATABASE {staging} IS 'held by the test'")
    try:
        wait_for(
            "a worker to wait for the lock",
            lambda: _waiting(world, staging, "pg_restore"),
            process=child,
        )
        child.send_signal(signal.SIGTERM)
        wait_for(
            "the staging database's drop to wait",
            lambda: bool(
                world.pg.scalar(
                    "SELECT count(*) FROM pg_catalog.pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND query ILIKE 'DROP DATABASE%%'"
                )
            ),
            process=child,
        )
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=PROCESS_TIMEOUT)
    finally:
        for conn in (holder, locker):
            with contextlib.suppress(Exception):
                conn.close()
    assert child.returncode == 143, err
    assert err.splitlines()[-1] == "respaldo: terminated (SIGTERM)", err
    left = f"interrupted while dropping staging database {staging}: it is left on the server"
    assert left in err, err
    assert "Traceback" not in err, err
    assert staging in world.databases(), "said left, but gone"
    (job,) = [j for j in world.ok("jobs", "--json").json() if j["kind"] == "restore"]
    assert (job["status"], job["error"]) == ("cancelled", "terminated by SIGTERM"), job
    assert target not in world.databases()
    again = world.run_process(*args)
    assert again.code == 0, str(again)
    assert f"dropped staging database {staging}" in again.err, str(again)
    _same_database(world, target)
    return Outcome(
        {backup_id},
        summary="exit 143, job 'terminated by SIGTERM'; says the staging database it left "
        "and that the next restore drops it; the restore again drops it, exact",
    )


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


_TABLES = """
SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
"""

# A worker's pg_restore into staging (of a ``restore --jobs 2``): of those, only the
# workers' take a list (not the pre-data one), whichever order the arguments come in.
_INTO_STAGING = (
    r"pg_restore.*(--use-list=.*dbname=respaldo_staging_|dbname=respaldo_staging_.*--use-list=)"
)


def _lock_staging_tables(world: World) -> tuple[str, psycopg.Connection[TupleRow]]:
    """The frozen restore's one staging database, and a connection of the test whose
    uncommitted transaction holds every table of it in ACCESS EXCLUSIVE mode: what the
    restore's pg_restore load there waits until the caller closes that connection."""
    (staging,) = staging_databases(world.pg)
    locker = world.pg.connect(staging, autocommit=False)
    tables = [t for (t,) in locker.execute(_TABLES).fetchall()]
    locker.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
    return staging, locker


def _waiting(world: World, dbname: str, application: str, sessions: int = 1) -> bool:
    count = world.pg.scalar(
        "SELECT count(*) FROM pg_catalog.pg_stat_activity"
        " WHERE datname = %s AND application_name = %s AND wait_event_type = 'Lock'",
        [dbname, application],
    )
    return int(count) >= sessions


# --- corruption ----------------------------------------------------------------------------


def _repo(world: World) -> Path:
    assert world.repo_dir is not None
    return world.repo_dir


def corrupt_pack(world: World) -> Outcome:
    """A damaged pack in the primary: verify says so; restores read the offsite copy."""
    files = world.backup("uploads")
    database = world.backup()
    pack = max(p for p in (_repo(world) / "packs").rglob("*") if p.is_file())
    flip_byte(pack, pack.stat().st_size // 2)
    verify = world.run("verify", "--all")
    assert verify.code == 3, str(verify)
    assert pack.name[:12] in verify.out + verify.err, str(verify)
    out = world.tmp / "out"
    world.ok("restore", files, "--target-dir", str(out))
    assert tree_snapshot(out / str(world.tree).lstrip("/")) == tree_snapshot(world.tree)
    target = _new_target(world)
    world.ok("restore", database, "--target-database", target)
    _same_database(world, target)
    return Outcome(
        {files, database},
        damaged={files, database},
        verify_exit=3,
        summary="verify --all exit 3 names the pack; restores read the offsite copy, exact",
    )


def corrupt_manifest(world: World) -> Outcome:
    """A damaged manifest in the primary: its backup restores from the offsite copy."""
    intact = world.backup()
    damaged = world.backup("uploads")
    flip_byte(_repo(world) / "manifests" / damaged, 40)
    verify = world.run("verify", "--all")
    assert verify.code == 3, str(verify)
    assert damaged in verify.out + verify.err, str(verify)
    out = world.tmp / "out"
    world.ok("restore", damaged, "--target-dir", str(out))
    assert tree_snapshot(out / str(world.tree).lstrip("/")) == tree_snapshot(world.tree)
    target = _new_target(world)
    world.ok("restore", intact, "--target-database", target)
    _same_database(world, target)
    return Outcome(
        {intact, damaged},
        damaged={damaged},
        verify_exit=3,
        summary="verify --all exit 3 names it; restore reads the offsite copy, exact",
    )


def corrupt_index(world: World) -> Outcome:
    backup_id = world.backup()
    index = max(p for p in (_repo(world) / "index").rglob("*") if p.is_file())
    flip_byte(index, index.stat().st_size // 2)
    verify = world.run("verify", "--all")
    assert verify.code == 3, str(verify)
    target = _new_target(world)
    world.ok("restore", backup_id, "--target-database", target)
    _same_database(world, target)
    world.ok("index", "rebuild")
    return Outcome({backup_id}, summary="verify exit 3 names index rebuild; restore still exact")


def corrupt_config(world: World) -> Outcome:
    backup_id = world.backup()
    config = _repo(world) / "config"
    saved = config.read_bytes()
    flip_byte(config, len(saved) // 2)
    verify = world.run("verify", "--all")
    message = assert_clear_message(verify)
    assert "passphrase" not in message.lower(), message
    config.write_bytes(saved)
    return Outcome({backup_id}, [verify], summary=f"failed: {message}")


def _flip_wrapped_key(key: Path) -> None:
    """One bit of the key file's ``wrapped_key`` flipped, the file still valid JSON in
    valid UTF-8 (the base64 text of the changed bytes, same length, in place): damage
    that AES-GCM alone cannot tell from a wrong passphrase."""
    raw = key.read_bytes()
    encoded = str(json.loads(raw)["wrapped_key"])
    wrapped = bytearray(base64.b64decode(encoded))
    wrapped[len(wrapped) // 2] ^= 0x01
    flipped = base64.b64encode(bytes(wrapped)).decode()
    assert raw.count(encoded.encode()) == 1 and flipped != encoded
    key.write_bytes(raw.replace(encoded.encode(), flipped.encode()))
    json.loads(key.read_bytes().decode("utf-8"))  # still a well-formed key file


def corrupt_key(world: World) -> Outcome:
    backup_id = world.backup()
    (key,) = (p for p in (_repo(world) / "keys").iterdir() if p.is_file())
    saved = key.read_bytes()
    _flip_wrapped_key(key)
    verify = world.run("verify", "--all")
    message = assert_clear_message(verify)
    assert "passphrase" not in message.lower(), message
    assert "damaged" in message and f"keys/{key.name}" in message, message
    key.write_bytes(saved)
    return Outcome({backup_id}, [verify], summary=f"failed: {message}")


def corrupt_quarantine(world: World) -> Outcome:
    """A damaged quarantine record (after verify recorded a damaged chunk copy): verify
    and prune say so and what to do, no backup reuses the damaged copy meanwhile, and
    ``repair`` (as the message says) makes the repository whole again."""
    files = world.backup("uploads")
    database = world.backup()
    pack = max(p for p in (_repo(world) / "packs").rglob("*") if p.is_file())
    flip_byte(pack, pack.stat().st_size // 2)
    first = world.run("verify", "--all")
    assert first.code == 3, str(first)
    (record,) = (p for p in (_repo(world) / "quarantine").iterdir() if p.is_file())
    flip_byte(record, record.stat().st_size // 2)
    verify = world.run("verify", "--all")
    assert verify.code == 3, str(verify)
    said = verify.out + verify.err
    assert f"quarantine record quarantine/{record.name} is damaged" in said, said
    assert "respaldo repair" in said, f"verify does not say what to do: {said}"
    # Garbage collection cannot tell the damaged copies from good ones: it must refuse.
    # (prune reports per repository, one line each: the other repositories are pruned.)
    prune = world.run("prune")
    assert prune.code != 0, str(prune)
    refusal = f"local: garbage collection: quarantine record quarantine/{record.name}"
    (line,) = [ln for ln in prune.err.splitlines() if ln.startswith(refusal)]
    assert "refusing" in line and "respaldo repair" in line, line
    assert "Traceback" not in prune.err, str(prune)
    # A backup of the same data meanwhile must not point at the damaged copy.
    again = world.backup("uploads")
    check = world.run("verify", again)
    assert check.code == 0, f"a new backup deduplicated onto a damaged chunk: {check}"
    # What the messages say to do.
    world.ok("repair")
    world.ok("prune")
    out = world.tmp / "out"
    world.ok("restore", files, "--target-dir", str(out))
    assert tree_snapshot(out / str(world.tree).lstrip("/")) == tree_snapshot(world.tree)
    return Outcome(
        {files, database, again},
        summary="verify exit 3 and prune refusal name the record and repair; "
        "no backup reuses the damaged copy; repair makes it whole",
    )


def corrupt_wal(world: World) -> Outcome:
    """A damaged archived WAL segment: found by verify, and wal-fetch stops recovery."""
    before = {world.backup()}
    segment = _segment(world)
    world.ok("wal-push", str(segment))
    (stored,) = (p for p in (_repo(world) / "wal").rglob("*") if p.name == segment.name)
    flip_byte(stored, stored.stat().st_size // 2)
    verify = world.run("verify", "--all")
    assert verify.code == 3, f"verify --all passes over a damaged WAL segment: {verify}"
    out = world.tmp / "fetched" / segment.name
    run = world.run("wal-fetch", "--database", "erp", segment.name, str(out))
    # Not 1 ("no more WAL", which ends recovery early as if all was well).
    assert run.code not in (0, 1), str(run)
    message = assert_clear_message(run)
    assert not out.exists()
    return Outcome(before, [run], verify_exit=3, summary=f"verify exit 3; wal-fetch: {message}")


def corrupt_lock(world: World) -> Outcome:
    before = {world.backup()}
    locks = _repo(world) / "locks"
    locks.mkdir(exist_ok=True)
    (locks / "garbage").write_bytes(b"\x00not a lease\xff" * 8)
    run = world.run("backup", "erp", "--json")
    if run.code == 0:
        before.add(str(run.json()["id"]))
        summary = "unreadable lease ignored; backup completed"
        failed: list[Run] = []
    else:
        summary = f"failed: {assert_clear_message(run)}"
        failed = [run]
    (locks / "garbage").unlink(missing_ok=True)
    return Outcome(before, failed, summary=summary)


# --- the table -------------------------------------------------------------------------------

KILL = "kill -9"

SCENARIOS = [
    Scenario(
        "backup-kill-storing-packs",
        "backup (logical)",
        f"{KILL} while the 3rd pack is being stored",
        "record failed at next start, no manifest; next backup completes",
        partial(kill_backup, plant=Plant("open", r"/repo/packs/.*\.tmp-", 3)),
    ),
    Scenario(
        "backup-kill-pack-before-rename",
        "backup (logical)",
        f"{KILL} between writing a pack and renaming it",
        "the .tmp- file is removed at the next run",
        partial(kill_backup, plant=Plant("os.rename", r"/repo/packs/.*\.tmp-", 2)),
    ),
    Scenario(
        "files-backup-kill",
        "backup (files)",
        f"{KILL} while a pack is being stored",
        "record failed, no manifest; next backup completes",
        partial(kill_backup, plant=Plant("open", r"/repo/packs/.*\.tmp-", 2), source="uploads"),
    ),
    Scenario(
        "restore-kill-mid-stream",
        "restore (logical)",
        f"{KILL} halfway through feeding pg_restore",
        "target untouched; staging database dropped at the next run",
        partial(kill_restore, plant=Plant("open", PACK_OPEN, 4)),
    ),
    Scenario(
        "restore-jobs-kill-spooling",
        "restore --jobs 2 (logical)",
        f"{KILL} while the dump is spooled",
        "spool and staging database removed at the next run",
        partial(kill_restore, plant=Plant("open", PACK_OPEN, 4), options=("--jobs", "2")),
    ),
    Scenario(
        "restore-jobs-kill-autovacuum-paused",
        "restore --jobs 2 (logical)",
        f"{KILL} as the first worker starts, the tables' autovacuum off",
        "staging database (autovacuum off) dropped at the next run; never handed over so",
        kill_restore_jobs_paused,
    ),
    Scenario(
        "files-restore-kill",
        "restore (files)",
        f"{KILL} while a file is written",
        "no truncated file under its final name; restore again exact",
        kill_files_restore,
    ),
    Scenario(
        "physical-backup-kill",
        "backup (physical)",
        f"{KILL} while its pack is being stored",
        "record failed, no replication slot left; next backup completes",
        kill_physical_backup,
        primary="archiving",
    ),
    Scenario(
        "physical-restore-kill",
        "restore (physical)",
        f"{KILL} while the data directory is written",
        "directory marked incomplete, no PG_VERSION; restore again completes",
        kill_physical_restore,
        primary="archiving",
    ),
    Scenario(
        "drill-kill",
        "drill (logical)",
        f"{KILL} halfway through the restore test",
        "staging database dropped at the next run",
        kill_drill,
    ),
    Scenario(
        "physical-drill-kill",
        "drill (physical)",
        f"{KILL} with the scratch server up, after recovery",
        "scratch server stopped and its directory removed at the next run; drill passes",
        kill_physical_drill,
        primary="archiving",
    ),
    Scenario(
        "copy-kill",
        "backup, then its copy to offsite",
        f"{KILL} while the 2nd pack is copied",
        "backup completed, copy not listed; copy --all completes it",
        kill_copy,
    ),
    Scenario(
        "prune-kill",
        "prune",
        f"{KILL} at the first object deleted",
        "kept backups intact; prune again finishes",
        kill_prune,
    ),
    Scenario(
        "prune-clock-ahead",
        "prune",
        "the clock 400 days ahead (libfaketime): every backup looks expired",
        "refused, nothing deleted; names the clock and --trust-clock",
        prune_clock_ahead,
    ),
    Scenario(
        "prune-after-jumped-backup",
        "prune",
        "the clock 400 days ahead (libfaketime) and a backup taken at that time",
        "refused, nothing deleted: the silence before the newest backup is a clock step",
        prune_after_jumped_backup,
    ),
    Scenario(
        "backup-kill-after-manifest",
        "backup",
        f"{KILL} after the manifest, before the catalog record",
        "the backup is whole: its record is completed at the next start",
        kill_backup_after_manifest,
    ),
    Scenario(
        "backup-sigterm-after-manifest",
        "backup",
        "SIGTERM after the manifest, before the catalog record",
        "the signal waits for the record: the backup completes, exit 0 saying it completed "
        "before the signal took effect; record and job completed",
        terminate_backup_after_manifest,
    ),
    Scenario(
        "wal-push-kill",
        "wal-push",
        f"{KILL} between writing the segment and renaming it",
        "nothing half-archived; the server's retry stores it; fetch exact",
        kill_wal_push,
    ),
    Scenario(
        "s3-backup-503-transient",
        "backup to S3",
        "503 SlowDown on 3 pack uploads",
        "retried; backup completes",
        partial(
            storage_backup,
            rules=[Rule("503", r"/packs/", method="PUT", times=3)],
            succeeds=True,
        ),
        primary="s3",
    ),
    Scenario(
        "s3-backup-reset-transient",
        "backup to S3",
        "connection reset on 2 uploads, one of them the manifest",
        "retried; backup completes",
        partial(
            storage_backup,
            rules=[
                Rule("reset", r"/packs/", method="PUT", times=1),
                Rule("reset", r"/manifests/", method="PUT", times=1),
            ],
            succeeds=True,
        ),
        primary="s3",
    ),
    Scenario(
        "s3-backup-stall-transient",
        "backup to S3",
        "the manifest upload stalls (no answer) once",
        "read timeout, retried; backup completes",
        partial(
            storage_backup,
            rules=[Rule("stall", r"/manifests/", method="PUT", times=1)],
            succeeds=True,
        ),
        primary="s3",
    ),
    Scenario(
        "s3-backup-500-persistent",
        "backup to S3",
        "500 on every pack upload",
        "fails with a one-line message; no completed record",
        partial(
            storage_backup,
            rules=[Rule("500", r"/packs/", method="PUT", times=None)],
            succeeds=False,
        ),
        primary="s3",
    ),
    Scenario(
        "s3-backup-manifest-reset-persistent",
        "backup to S3",
        "connection reset on every manifest upload",
        "fails clearly; no manifest, no completed record",
        partial(
            storage_backup,
            rules=[Rule("reset", r"/manifests/", method="PUT", times=None)],
            succeeds=False,
        ),
        primary="s3",
    ),
    Scenario(
        "s3-restore-503-transient",
        "restore from S3",
        "503 on 3 pack downloads",
        "retried; restore exact",
        partial(
            storage_restore,
            rules=[Rule("503", r"/packs/", method="GET", times=3)],
            succeeds=True,
        ),
        primary="s3",
    ),
    Scenario(
        "s3-restore-500-persistent",
        "restore from S3",
        "500 on every pack download",
        "reads each chunk from the offsite copy; restore exact",
        partial(
            storage_restore,
            rules=[Rule("500", r"/packs/", method="GET", times=None)],
            succeeds=True,
        ),
        primary="s3",
    ),
    Scenario(
        "full-disk-backup",
        "backup (files)",
        "repository file system full (tmpfs)",
        "fails clearly; nothing half-written; next backup completes",
        full_disk_backup,
        primary="tmpfs",
    ),
    Scenario(
        "pg-restart-mid-dump",
        "backup (logical)",
        "pg_ctl restart -m fast while pg_dump runs",
        "fails clearly; record failed; next backup completes",
        restart_mid_dump,
    ),
    Scenario(
        "pg-restart-mid-restore",
        "restore (logical)",
        "pg_ctl restart -m fast while pg_restore runs",
        "fails clearly; staging dropped; restore again exact",
        restart_mid_restore,
    ),
    Scenario(
        "restore-jobs-kill-worker-beside-locked",
        "restore --jobs 2 (logical)",
        f"{KILL} of one worker's pg_restore while the other's COPY waits on a lock held "
        "until the restore ends",
        "ends at once with the first failure and 'nothing was changed'; the other worker's "
        "pg_restore killed; staging dropped; restore again exact",
        kill_worker_beside_a_locked_one,
    ),
    Scenario(
        "restore-jobs-kill-last-pg-restore",
        "restore --jobs 2 (logical)",
        f"{KILL} while its last pg_restore (post-data, from the spool) waits on a lock",
        "that pg_restore outlives it; the next process to open the catalog fails the job "
        "and drops staging, ending the orphans; restore again exact",
        kill_restore_in_its_last_pg_restore,
    ),
    Scenario(
        "restore-second-signal-in-cleanup",
        "restore --jobs 2 (logical)",
        "SIGTERM, then Ctrl-C while the staging database's drop waits on a lock",
        "the drop stops; says which staging database is left and that the next restore "
        "drops it; job and exit status say SIGTERM; restore again exact",
        second_signal_during_the_staging_drop,
    ),
    Scenario(
        "prune-sigterm-between-manifest-and-record",
        "prune",
        "SIGTERM as an expired backup's manifest is deleted from the second repository "
        "(the primary's gone, the record not yet)",
        "the manifests and the record go together, then exit 143; no completed record "
        "without its manifest; prune again finishes",
        terminate_prune,
    ),
    Scenario(
        "corrupt-pack",
        "verify --all, restore",
        "one byte of a pack flipped",
        "verify exits 3 naming the pack; restores read the offsite copy",
        corrupt_pack,
    ),
    Scenario(
        "corrupt-manifest",
        "verify --all, restore (files)",
        "one byte of a manifest flipped",
        "verify names the backup; its restore reads the offsite copy",
        corrupt_manifest,
    ),
    Scenario(
        "corrupt-index",
        "verify --all, restore",
        "one byte of an index file flipped",
        "verify exits 3 and says index rebuild; restores read around it",
        corrupt_index,
    ),
    Scenario(
        "corrupt-config",
        "any command",
        "one byte of the repository config flipped",
        "says the config is damaged (not 'wrong passphrase')",
        corrupt_config,
    ),
    Scenario(
        "corrupt-key",
        "any command",
        "one bit of the key file's wrapped key flipped",
        "says the key file is damaged (not 'wrong passphrase'), with a hint",
        corrupt_key,
    ),
    Scenario(
        "corrupt-quarantine",
        "verify --all, prune, backup, repair",
        "one byte of a quarantine record flipped (after verify recorded a damaged chunk)",
        "verify names the record and repair; prune refuses; no backup reuses the copy",
        corrupt_quarantine,
    ),
    Scenario(
        "corrupt-lock",
        "backup (logical)",
        "an unreadable file among the locks",
        "ignored or refused clearly; nothing lost",
        corrupt_lock,
    ),
    Scenario(
        "corrupt-wal",
        "verify --all, wal-fetch",
        "one byte of an archived WAL segment flipped",
        "verify exits 3; wal-fetch fails clearly (not 'no more WAL')",
        corrupt_wal,
    ),
]
