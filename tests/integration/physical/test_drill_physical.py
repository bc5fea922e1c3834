"""Drills of physical backups: restore into a scratch data directory, start, recover,
check, and leave nothing behind."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from respaldo.catalog import DrillRuns, Jobs
from respaldo.config import Settings, ValidationQuery
from respaldo.domain import DrillStatus, JobKind, TriggeredBy
from respaldo.operations.context import Context
from respaldo.operations.drill import (
    DATADIR_PREFIX,
    DrillResult,
    remove_leftovers,
    run_drill,
)
from respaldo.operations.physical_restore import PORT_ATTEMPTS
from tests.integration.majors import ON_EVERY_MAJOR
from tests.integration.physical.conftest import SHOP, Archiving, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def own_tempdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary directory of this test's own, where its drills make their scratch
    directories: the tests running beside it (pytest-xdist) drill in the shared one, and
    what this test's drill left could not be told from theirs there."""
    path = Path(tempfile.mkdtemp(prefix="respaldo-test-tmp-"))
    path.chmod(0o755)  # the scratch directory inside is the postgres user's
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _drill(
    archiving: Archiving,
    settings: Settings,
    backup_id: str,
    free_port: Callable[[], int] | None = None,
) -> DrillResult:
    ctx = Context.open(settings)
    try:
        return run_drill(
            ctx, backup_id, respaldo_command=archiving.respaldo_command, free_port=free_port
        )
    finally:
        ctx.close()


def _with_validation(archiving: Archiving, query: str, expect: str) -> Settings:
    settings = archiving.settings()
    settings.database("erp").validations = [
        ValidationQuery(name="no unknown projects", sql=query, expect=expect)
    ]
    return settings


def _verified(archiving: Archiving, backup_id: str) -> bool | None:
    run = archiving.run("show", backup_id, "--json")
    assert run.code == 0, str(run)
    verified: bool | None = run.json()["isVerified"]
    return verified


@ON_EVERY_MAJOR
def test_a_physical_backup_passes_the_drill_and_becomes_verified(archiving: Archiving) -> None:
    pg = archiving.pg
    table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
    pg.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY)").format(table), dbname=SHOP)
    pg.execute(sql.SQL("INSERT INTO {} VALUES (1), (2)").format(table), dbname=SHOP)
    record = archiving.backup()
    pg.execute(sql.SQL("INSERT INTO {} VALUES (3)").format(table), dbname=SHOP)
    settings = _with_validation(
        archiving, sql.SQL("SELECT count(*) FROM {}").format(table).as_string(), "2"
    )
    result = _drill(archiving, settings, record["id"])
    checks = {c.name: c for c in result.checks}
    assert result.passed, result.checks
    assert list(checks) == [
        "restore",
        "recovery",
        "validation: no unknown projects",
        "wal archive",
    ]
    assert "continuous from the backup's end" in checks["wal archive"].detail
    assert result.restore_seconds is not None and result.restore_seconds > 0
    assert checks["recovery"].ok and "consistent recovery state" in checks["recovery"].detail
    assert _verified(archiving, record["id"]) is True
    # Nothing left: this drill's scratch directory is gone (checked below by its recorded
    # name; other tests' drills may be running in parallel, so no glob over /tmp).
    ctx = Context.open(settings)
    try:
        with ctx.catalog.begin() as session:
            run = DrillRuns(session).get(result.run_id)
            scratch = run.scratch_name
            assert run.status is DrillStatus.PASSED
    finally:
        ctx.close()
    assert scratch is not None and Path(scratch).name.startswith(DATADIR_PREFIX)
    assert not Path(scratch).exists()


def test_a_failing_validation_fails_the_physical_drill(archiving: Archiving) -> None:
    record = archiving.backup()
    settings = _with_validation(archiving, "SELECT 7", "0")
    result = _drill(archiving, settings, record["id"])
    assert not result.passed
    failed = [c for c in result.checks if not c.ok]
    assert [c.name for c in failed] == ["validation: no unknown projects"]
    assert "got '7', expected '0'" in failed[0].detail
    assert _verified(archiving, record["id"]) is False


def test_leftover_scratch_datadir_of_a_dead_drill_is_removed(archiving: Archiving) -> None:
    # A drill killed with its server running: start a restore the way a drill does, and
    # record the run in a job left running by a dead process.
    from respaldo.operations.physical_restore import restore_datadir
    from respaldo.postgres.datadir import RecoveryTarget
    from tests.integration.physical.conftest import chown_tree, free_port

    record = archiving.backup()
    scratch = Path(tempfile.mkdtemp(prefix=DATADIR_PREFIX))
    chown_tree(scratch)
    port = free_port()
    settings = archiving.settings()
    ctx = Context.open(settings)
    try:
        restore_datadir(
            ctx,
            record["id"],
            scratch / "data",
            target=RecoveryTarget(immediate=True),
            start=True,
            port=port,
            respaldo_command=archiving.respaldo_command,
        )
        assert _port_open(port)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        with ctx.catalog.begin() as session:
            job = Jobs(session).submit(
                JobKind.DRILL, target="erp", triggered_by=TriggeredBy.CLI, requested_by="ana"
            )
            Jobs(session).start(job.id, pid=dead.pid)
            run_id = (
                DrillRuns(session)
                .start(record["id"], database="erp", scratch_name=str(scratch), job_id=job.id)
                .id
            )
    finally:
        ctx.close()
    ctx = Context.open(settings)  # the next start: the job lapsed, and its run with it
    try:
        with ctx.catalog.read() as session:
            assert DrillRuns(session).get(run_id).status is DrillStatus.FAILED
        assert scratch.exists()  # the next drill removes it
        removed = remove_leftovers(ctx)
        assert remove_leftovers(ctx) == []  # once
    finally:
        ctx.close()
    assert str(scratch) in removed
    assert not scratch.exists()
    assert not _port_open(port)


def test_a_database_backed_up_only_physically_is_drilled_by_name(archiving: Archiving) -> None:
    """The ``restore_test`` schedule drills each database by name: one with physical
    backups and no logical one got "no completed full backup" every time, and never a
    restore test."""
    record = archiving.backup()
    result = _drill(archiving, archiving.settings(), "erp")
    assert result.backup_id == record["id"]
    assert result.passed, result.checks
    assert _verified(archiving, record["id"]) is True


def test_a_physical_backup_with_a_damaged_chunk_fails_its_drill(
    own_archiving: Archiving, own_tempdir: Path
) -> None:
    from respaldo.operations.repositories import open_repository
    from respaldo.repository.packs import pack_name
    from respaldo.repository.reader import read_list
    from tests.integration.logical.support import flip_byte

    record = own_archiving.backup()
    repo = open_repository(own_archiving.settings())
    stream = repo.load_manifest(record["id"]).stream("base")
    entries = read_list(repo, stream.lists[0])
    location = repo.index.get(entries[len(entries) // 2][0])
    assert location is not None
    pack = pack_name(location.pack_id)
    flip_byte(own_archiving.repo_dir / pack, location.offset + location.length // 2)
    result = _drill(own_archiving, own_archiving.settings(), record["id"])
    assert not result.passed
    restore = result.checks[0]
    assert restore.name == "restore" and not restore.ok and pack in restore.detail
    assert _verified(own_archiving, record["id"]) is False
    assert list(own_tempdir.iterdir()) == []


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process took after the drill found it free: held (listening) by a
    socket of the test's own while the drill runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _ports(*first: int) -> Callable[[], int]:
    """``first``, one after the other, then free ones (the drill's own choice)."""
    given = iter(first)
    return lambda: next(given, None) or free_port()


def test_a_drill_whose_port_was_taken_starts_its_server_on_another(
    archiving: Archiving, taken_port: int
) -> None:
    record = archiving.backup()
    result = _drill(archiving, archiving.settings(), record["id"], _ports(taken_port, taken_port))
    assert result.passed, result.checks
    moved = [w for w in result.warnings if w.startswith(f"port {taken_port} was taken")]
    assert len(moved) == 2, result.warnings
    assert _verified(archiving, record["id"]) is True


def test_a_drill_whose_ports_were_all_taken_fails_saying_so(
    archiving: Archiving, taken_port: int, own_tempdir: Path
) -> None:
    record = archiving.backup()
    result = _drill(archiving, archiving.settings(), record["id"], lambda: taken_port)
    assert not result.passed
    checks = {c.name: c for c in result.checks}
    assert checks["restore"].ok
    detail = checks["recovery"].detail
    assert not checks["recovery"].ok
    assert (
        f"could not listen on any of {PORT_ATTEMPTS} ports, another process took each one "
        f"before it started: {', '.join([str(taken_port)] * PORT_ATTEMPTS)}"
    ) in detail, detail
    assert 'could not bind IPv4 address "127.0.0.1": Address already in use' in detail
    assert _verified(archiving, record["id"]) is False
    assert list(own_tempdir.iterdir()) == []


def test_a_physical_drill_says_which_unlogged_tables_came_back_empty(
    archiving: Archiving,
) -> None:
    """PostgreSQL writes no WAL for an unlogged table and pg_basebackup copies none of its
    rows: every physical restore gives it back empty. The drill passed green without a
    word while the rows were gone; it now names each such table in a check of its own
    and a warning (it passes: no physical backup can hold them)."""
    pg = archiving.pg
    name = f"sesiones_{uuid.uuid4().hex[:8]}"
    table = sql.Identifier(name)
    pg.execute(
        sql.SQL("CREATE UNLOGGED TABLE {} (id int PRIMARY KEY, t text)").format(table),
        dbname=SHOP,
    )
    pg.execute(
        sql.SQL("INSERT INTO {} SELECT g, 'x' FROM generate_series(1, 500) g").format(table),
        dbname=SHOP,
    )
    try:
        record = archiving.backup()
        settings = _with_validation(
            archiving, sql.SQL("SELECT count(*) FROM {}").format(table).as_string(), "0"
        )
        result = _drill(archiving, settings, record["id"])
    finally:
        pg.execute(sql.SQL("DROP TABLE {}").format(table), dbname=SHOP)
    checks = {c.name: c for c in result.checks}
    # The table came back, empty (the validation counted it in the restored copy).
    assert checks["validation: no unknown projects"].ok, result.checks
    assert result.passed, result.checks
    unlogged = checks["unlogged tables"]
    assert unlogged.ok
    assert f"public.{name}" in unlogged.detail
    assert "came back empty" in unlogged.detail
    assert any(f"public.{name}" in w and "empty" in w for w in result.warnings), result.warnings


def test_a_physical_drill_says_which_unlogged_sequences_came_back_reset(
    archiving: Archiving,
) -> None:
    """An unlogged sequence (PostgreSQL 15+) comes back from a physical backup reset to
    its start, like an unlogged table's rows: a logged table numbered from it (500 rows
    here) gets numbers again that its rows hold, and the ERP's next insert fails on its
    key. The drill passed without a word; it now names such sequences (not those of an
    unlogged table, which comes back empty with them)."""
    pg = archiving.pg
    tag = uuid.uuid4().hex[:8]
    seq, table, own = (sql.Identifier(f"{p}_{tag}") for p in ("folio", "facturas", "cache"))
    pg.execute(
        sql.SQL(
            "CREATE UNLOGGED SEQUENCE {seq};"
            "CREATE TABLE {table} (id bigint PRIMARY KEY DEFAULT nextval({name}));"
            "INSERT INTO {table} SELECT FROM generate_series(1, 500);"
            "CREATE UNLOGGED TABLE {own} (id serial PRIMARY KEY);"
            "INSERT INTO {own} DEFAULT VALUES"
        ).format(seq=seq, table=table, own=own, name=sql.Literal(f"folio_{tag}")),
        dbname=SHOP,
    )
    try:
        record = archiving.backup()
        query = sql.SQL(
            "SELECT (SELECT max(id) FROM {}) || ' ' || last_value || ' ' || is_called FROM {}"
        ).format(table, seq)
        settings = _with_validation(archiving, query.as_string(), "500 1 false")
        result = _drill(archiving, settings, record["id"])
    finally:
        pg.execute(
            sql.SQL("DROP TABLE {}, {}; DROP SEQUENCE {}").format(table, own, seq), dbname=SHOP
        )
    checks = {c.name: c for c in result.checks}
    # The rows came back, their sequence reset (the validation read both in the copy).
    assert checks["validation: no unknown projects"].ok, result.checks
    assert result.passed, result.checks
    reset = checks["unlogged sequences"]
    assert reset.ok
    assert reset.detail.startswith(
        f"1 unlogged sequence came back reset to its start, as from every physical backup: "
        f"public.folio_{tag} ("
    ), reset.detail
    assert f"cache_{tag}_id_seq" not in reset.detail
    assert any(f"public.folio_{tag}" in w for w in result.warnings), result.warnings
    assert f"public.cache_{tag}" in checks["unlogged tables"].detail


def test_a_damaged_segment_after_the_backup_fails_the_physical_drill(
    own_archiving: Archiving, own_tempdir: Path
) -> None:
    """The restore test recovers only to the backup's end, and its ``wal archive`` check
    read the archive's names: with one byte of a later segment flipped (its object then
    fails authentication, as wal-fetch would find when recovery asks for it) it said
    "continuous from the backup's end to ...", passed and marked the backup verified,
    while point-in-time recovery past that segment stopped there. Each segment recovery
    replays is now read whole."""
    from tests.integration.logical.support import flip_byte

    archiving = own_archiving
    record = archiving.backup()
    archiving.pg.execute(
        "CREATE TABLE after_backup AS SELECT generate_series(1, 1000) g", dbname=SHOP
    )
    archiving.switch_and_archive()
    archiving.pg.execute("INSERT INTO after_backup SELECT generate_series(1, 1000)", dbname=SHOP)
    last = archiving.switch_and_archive()
    (damaged,) = [p for p in (archiving.repo_dir / "wal").rglob(last) if p.is_file()]
    flip_byte(damaged, damaged.stat().st_size // 2)
    result = _drill(archiving, archiving.settings(), record["id"])
    assert not result.passed
    checks = {c.name: c for c in result.checks}
    assert checks["recovery"].ok, result.checks  # to the backup's end: the segment unread
    wal = checks["wal archive"]
    assert not wal.ok
    assert wal.detail.startswith(
        f"WAL segment {last} cannot be read (archived WAL file is damaged: authentication failed"
    ), wal.detail
    assert "recovery cannot go past 0/" in wal.detail
    assert _verified(archiving, record["id"]) is False
    assert list(own_tempdir.iterdir()) == []


def test_a_physical_drill_reads_the_archived_segments_after_the_backup(
    archiving: Archiving,
) -> None:
    record = archiving.backup()
    archiving.switch_and_archive()
    result = _drill(archiving, archiving.settings(), record["id"])
    assert result.passed, result.checks
    (wal,) = [c for c in result.checks if c.name == "wal archive"]
    assert re.fullmatch(
        r"continuous from the backup's end to \S+, \d+ archived segments? read whole", wal.detail
    ), wal.detail


def test_a_segment_damaged_in_the_primary_alone_is_read_from_the_mirror(
    mirrored: Archiving,
) -> None:
    """As wal-fetch reads it for recovery: the mirror's good copy, the run warning of
    the primary's."""
    from tests.integration.logical.support import flip_byte

    archiving = mirrored
    record = archiving.backup()
    last = archiving.switch_and_archive()
    run = archiving.run("copy", "--all", "--to", "offsite")
    assert run.code == 0, str(run)
    (damaged,) = [p for p in (archiving.repo_dir / "wal").rglob(last) if p.is_file()]
    flip_byte(damaged, damaged.stat().st_size // 2)
    result = _drill(archiving, archiving.settings(), record["id"])
    assert result.passed, result.checks
    (wal,) = [c for c in result.checks if c.name == "wal archive"]
    assert wal.ok and "read whole" in wal.detail
    (note,) = [w for w in result.warnings if w.startswith(last)]
    assert "damaged in the repository read first (archived WAL file is damaged" in note


def test_a_drill_cancelled_while_it_reads_the_archived_wal_ends_cancelled(
    archiving: Archiving, own_tempdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drill of an old backup reads all the WAL archived since it: a cancel stops it
    between two segments, its run recorded cancelled (no failed restore test), its
    scratch directory removed."""
    from respaldo import cancellation
    from respaldo.errors import JobCancelled
    from respaldo.operations import drill
    from respaldo.operations.wal import read_archived

    record = archiving.backup()
    archiving.switch_and_archive()
    archiving.switch_and_archive()
    token = cancellation.CancelToken()
    real = read_archived
    reads: list[str] = []

    def cancelled_after_one(*args: object, **kwargs: object) -> str | None:
        reads.append(str(args[2]))
        token.cancel("test")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(drill, "read_archived", cancelled_after_one)
    ctx = Context.open(archiving.settings())
    try:
        with cancellation.cancellable(token), pytest.raises(JobCancelled):
            run_drill(ctx, record["id"], respaldo_command=archiving.respaldo_command)
        with ctx.catalog.read() as session:
            (run,) = DrillRuns(session).list(backup_id=record["id"], limit=1)
            assert run.status is DrillStatus.CANCELLED
    finally:
        ctx.close()
    assert len(reads) == 1
    assert list(own_tempdir.iterdir()) == []


def test_a_drill_that_cannot_list_the_archived_wal_fails_its_wal_archive_check(
    own_archiving: Archiving, own_tempdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``wal archive`` check of a restore test whose repository could not list the
    archived WAL ("could not read the archived WAL's names and history to check it for
    gaps") passed, and the backup was marked verified: point-in-time recovery from it was
    shown as proven while nothing of its WAL had been looked at. The listing here fails
    for real once the scratch server has recovered (the cluster's WAL directory of the
    local repository turned into a symbolic link to itself: ELOOP, as root too); the
    check fails saying why, and the backup is marked unverified."""
    from respaldo.operations import drill
    from respaldo.operations.wal_coverage import archive_check as real

    archiving = own_archiving
    record = archiving.backup()
    archiving.switch_and_archive()
    (cluster,) = [p for p in (archiving.repo_dir / "wal").iterdir() if p.is_dir()]
    kept = cluster.with_name(cluster.name + ".kept")

    def unlistable(*args: Any, **kwargs: Any) -> Any:
        cluster.rename(kept)
        cluster.symlink_to(cluster.name)  # a loop: every listing of it fails (ELOOP)
        return real(*args, **kwargs)

    monkeypatch.setattr(drill, "archive_check", unlistable)
    try:
        result = _drill(archiving, archiving.settings(), record["id"])
    finally:
        if cluster.is_symlink():
            cluster.unlink()
            kept.rename(cluster)
    checks = {c.name: c for c in result.checks}
    assert checks["recovery"].ok, result.checks  # to the backup's end: its own WAL
    wal = checks["wal archive"]
    assert not wal.ok, wal
    assert wal.detail.startswith(
        "could not read the archived WAL's names and history to check it for gaps: "
    ), wal.detail
    assert "Too many levels of symbolic links" in wal.detail, wal.detail
    assert not result.passed
    assert _verified(archiving, record["id"]) is False
    assert list(own_tempdir.iterdir()) == []


def test_a_drill_of_a_backup_whose_manifest_predates_stop_lsn_fails_its_wal_archive_check(
    own_archiving: Archiving,
) -> None:
    """A physical backup whose manifest does not say where its WAL ends (written before
    respaldo recorded ``stop_lsn``): its ``wal archive`` check said "the archive was not
    checked" and passed, marking the backup verified for point-in-time recovery. It
    fails now, saying the same."""
    from respaldo.operations.repositories import open_repository
    from respaldo.repository import BackupWriter
    from respaldo.repository.manifest import manifest_aad

    archiving = own_archiving
    record = archiving.backup()
    repo = open_repository(archiving.settings())
    try:
        manifest = repo.load_manifest(record["id"])
        del manifest.meta["stop_lsn"]
        older = record["id"][:-8] + "01dc0de5"
        manifest.backup_id = older
        with BackupWriter(repo, older) as writer:
            writer.commit_sealed_manifest(
                repo.sealer.seal(manifest.to_bytes(), manifest_aad(older))
            )
    finally:
        repo.close()
    assert archiving.run("catalog", "rebuild").code == 0
    result = _drill(archiving, archiving.settings(), older)
    checks = {c.name: c for c in result.checks}
    wal = checks["wal archive"]
    assert not wal.ok, result.checks
    assert wal.detail == (
        "the backup's manifest does not say where its WAL ends: the archive was not checked"
    )
    assert not result.passed
    assert _verified(archiving, older) is False
