"""A record left in_progress by a dead process is completed if its manifest was written
(the backup is whole), and failed only if it was not."""

from __future__ import annotations

import hashlib
import io
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.catalog import BackupRecord, BackupRecords, Jobs
from respaldo.domain import BackupKind, BackupStatus, JobKind, JobStatus, TriggeredBy, new_backup_id
from respaldo.operations import reconcile
from respaldo.operations.context import Context
from respaldo.repository import BackupWriter, iter_stream
from tests.unit.operations.support import Installation, data_for

pytestmark = pytest.mark.unit


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def inst(tmp_path: Path) -> Installation:
    return Installation.create(tmp_path)


def _killed_backup(
    inst: Installation, *, manifest: bool, repository: str = "local", job: int | None = None
) -> str:
    """A backup whose process died: its record in_progress with a dead pid (in ``job``,
    if given: a running job of the same dead process), and with ``manifest`` everything
    written but the record's completion."""
    started = datetime.now(UTC) - timedelta(minutes=5)
    backup_id = new_backup_id(started)
    with inst.ctx.catalog.begin() as session:
        pid = _dead_pid() if job is None else Jobs(session).get(job).worker_pid
        assert pid is not None
        records = BackupRecords(session)
        records.create_pending(
            kind=BackupKind.FULL,
            repository=repository,
            triggered_by=TriggeredBy.SCHEDULE,
            retention_days=7,
            database_name="erp",
            backup_id=backup_id,
            job_id=job,
            now=started,
        )
        records.start(backup_id, pid, now=started)
    if manifest:
        with BackupWriter(inst.repository(), backup_id) as writer:
            writer.write_stream("dump", io.BytesIO(data_for(backup_id)))
            writer.commit(
                kind="full", source="erp", started_at=started, meta={"server_version": "16.4"}
            )
    return backup_id


def _record(inst: Installation, backup_id: str) -> BackupRecord:
    ctx = inst.context()
    try:
        return ctx.record(backup_id)
    finally:
        ctx.close()


def test_a_record_whose_manifest_exists_is_completed_from_it(inst: Installation) -> None:
    backup_id = _killed_backup(inst, manifest=True)
    record = _record(inst, backup_id)  # the next start
    manifest = inst.repository().load_manifest(backup_id)
    data = data_for(backup_id)
    assert record.status is BackupStatus.COMPLETED
    assert record.error_message is None
    assert record.size_bytes == len(data)
    assert record.checksum == hashlib.sha256(data).hexdigest()
    assert record.completed_at == manifest.completed_at
    assert record.expires_at == manifest.completed_at + timedelta(days=7)
    assert record.size_compressed is not None and record.size_compressed > 0
    assert record.database_version == "16.4"
    assert record.manifest == f"manifests/{backup_id}"
    assert inst.read(backup_id) == data


def test_a_record_without_a_manifest_is_failed(inst: Installation) -> None:
    backup_id = _killed_backup(inst, manifest=False)
    record = _record(inst, backup_id)
    assert record.status is BackupStatus.FAILED
    assert record.error_message == (
        f"process {record.worker_pid} died during the backup (found at start-up)"
    )


def test_without_the_passphrase_the_record_waits(
    inst: Installation, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # `respaldo list` needs no passphrase, but reading the manifest does: the record stays
    # in_progress (never failed) until a command that has it settles it.
    backup_id = _killed_backup(inst, manifest=True)
    monkeypatch.delenv("RESPALDO_PASSPHRASE")
    record = _record(inst, backup_id)
    assert record.status is BackupStatus.IN_PROGRESS
    assert f"backup {backup_id}: its process died after writing its manifest" in caplog.text
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "prune tests passphrase")
    assert _record(inst, backup_id).status is BackupStatus.COMPLETED


def test_a_record_of_a_repository_no_longer_configured_is_failed(inst: Installation) -> None:
    backup_id = _killed_backup(inst, manifest=False, repository="retired")
    assert _record(inst, backup_id).status is BackupStatus.FAILED


def test_both_kinds_at_once_and_a_second_start_changes_nothing(inst: Installation) -> None:
    whole = _killed_backup(inst, manifest=True)
    partial = _killed_backup(inst, manifest=False)
    assert _record(inst, whole).status is BackupStatus.COMPLETED
    assert _record(inst, partial).status is BackupStatus.FAILED
    before = {r.id: (r.status, r.completed_at) for r in _all(inst)}
    ctx = Context.open(inst.settings())
    ctx.close()
    assert {r.id: (r.status, r.completed_at) for r in _all(inst)} == before


def test_the_completed_backup_is_copied_by_the_next_replication(inst: Installation) -> None:
    backup_id = _killed_backup(inst, manifest=True)
    assert _record(inst, backup_id).status is BackupStatus.COMPLETED
    assert backup_id not in inst.manifests("second")
    inst.replicate()
    repo = inst.repository("second")
    assert b"".join(iter_stream(repo, repo.load_manifest(backup_id), "dump")) == data_for(backup_id)


def _dead_job(inst: Installation) -> int:
    """A backup job left running by a process that died (on this host)."""
    with inst.ctx.catalog.begin() as session:
        jobs = Jobs(session)
        job = jobs.submit(
            JobKind.BACKUP, target="erp", triggered_by=TriggeredBy.CLI, requested_by="ana"
        )
        jobs.start(job.id, pid=_dead_pid())
        return job.id


def test_records_of_a_job_whose_process_died_are_settled_through_the_job(
    inst: Installation,
) -> None:
    whole_job, partial_job = _dead_job(inst), _dead_job(inst)
    whole = _killed_backup(inst, manifest=True, job=whole_job)
    partial = _killed_backup(inst, manifest=False, job=partial_job)
    ctx = inst.context()  # the next start
    try:
        with ctx.catalog.read() as session:
            jobs = Jobs(session)
            reason = jobs.get(partial_job).error_message
            assert jobs.get(partial_job).status is JobStatus.FAILED
            assert jobs.get(whole_job).status is JobStatus.FAILED
            records = BackupRecords(session)
            assert records.get(whole).status is BackupStatus.COMPLETED  # its manifest says so
            assert records.get(partial).status is BackupStatus.FAILED
            assert records.get(partial).error_message == f"job {partial_job} failed: {reason}"
    finally:
        ctx.close()
    pid = _record(inst, partial).worker_pid
    assert reason == f"process {pid} died while the job ran (found at start-up)"


def _all(inst: Installation) -> list[BackupRecord]:
    with inst.ctx.catalog.begin() as session:
        return BackupRecords(session).list()


def _sweep_lines(caplog: pytest.LogCaptureFixture, backup_id: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "respaldo.operations.reconcile" and backup_id in r.getMessage()
    ]


def test_the_sweep_warns_once_per_cause_while_the_repository_is_unreachable(
    inst: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    # `respaldo serve` on SQLite sweeps every lease renewal period with one context: a
    # record whose repository cannot be asked must be said once, not every 2 seconds.
    backup_id = _killed_backup(inst, manifest=True)
    manifests = inst.root / "repo" / "manifests"
    aside = manifests.with_name("manifests.aside")
    manifests.rename(aside)
    manifests.symlink_to(manifests)  # a loop: every stat fails (ELOOP), as a dead mount would
    ctx = inst.context()  # the service's one context; opening it is the first pass
    try:
        for _ in range(4):
            reconcile.sweep_here(ctx)
        lines = _sweep_lines(caplog, backup_id)
        assert len(lines) == 1, lines
        assert "until repository local can be read" in lines[0]
        assert ctx.record(backup_id).status is BackupStatus.IN_PROGRESS  # still retried
        # A new cause is said (once): the manifest is there but cannot be read.
        manifests.unlink()
        aside.rename(manifests)
        settings = ctx.settings
        ctx.settings = settings.model_copy(update={"passphrase": None})  # as if never given
        try:
            for _ in range(3):
                reconcile.sweep_here(ctx)
        finally:
            ctx.settings = settings
        lines = _sweep_lines(caplog, backup_id)
        assert len(lines) == 2, lines
        assert "cannot be read now" in lines[1]
        # And the end is said: the record completed from its manifest.
        for _ in range(2):
            reconcile.sweep_here(ctx)
        lines = _sweep_lines(caplog, backup_id)
        assert len(lines) == 3, lines
        assert "its record is completed from its manifest" in lines[2]
        assert ctx.record(backup_id).status is BackupStatus.COMPLETED
    finally:
        ctx.close()


def test_the_sweep_says_when_an_undecided_record_is_failed_at_last(
    inst: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    backup_id = _killed_backup(inst, manifest=False)
    manifests = inst.root / "repo" / "manifests"
    aside = manifests.with_name("manifests.aside")
    aside.mkdir()  # no backup has written one yet
    manifests.symlink_to(manifests)
    ctx = inst.context()
    try:
        for _ in range(3):
            reconcile.sweep_here(ctx)
        assert len(_sweep_lines(caplog, backup_id)) == 1
        manifests.unlink()
        aside.rename(manifests)
        for _ in range(3):
            reconcile.sweep_here(ctx)
        lines = _sweep_lines(caplog, backup_id)
        assert len(lines) == 2, lines
        assert "no manifest" in lines[1] and "failed" in lines[1]
        assert ctx.record(backup_id).status is BackupStatus.FAILED
    finally:
        ctx.close()


def test_a_lapsed_restore_test_of_a_file_set_is_not_looked_up_as_a_backup_id(
    inst: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    """A scheduled restore test targets a database's or file set's name. Seen in a soak of
    ``serve``: a lapsed restore test of the file set 'docs' was looked up as a backup id,
    warning "cannot look for what job N left on its server: invalid backup id 'docs'"
    (a file set makes no scratch database: nothing to look for). A database's name still
    leads to its server."""
    with inst.ctx.catalog.begin() as session:
        lapsed = [
            Jobs(session).submit(
                JobKind.DRILL,
                target=target,
                triggered_by=TriggeredBy.SCHEDULE,
                requested_by="restore_test",
                now=datetime.now(UTC),
            )
            for target in ("docs", "erp")
        ]
        files, erp = lapsed
        assert reconcile._database_of(inst.ctx, files) is None
        found = reconcile._database_of(inst.ctx, erp)
        assert found is not None and found.name == "erp"
    with caplog.at_level("WARNING", logger="respaldo"):
        reconcile._drop_scratch_of(inst.ctx, [files])
    assert not [r for r in caplog.records if "cannot look for" in r.getMessage()]
