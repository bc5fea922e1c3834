"""A prune job records the bytes it reclaimed in each repository (``jobs.outcome``), from
the CLI and from the schedule alike, and the metrics add them up; a dry run records
nothing (its figures are estimates of what was not done)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from respaldo.cli.main import invoke
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.jobs import JobRequest
from respaldo.operations.metrics import render_metrics
from respaldo.operations.prune_report import PruneReport
from respaldo.operations.scheduled import run_queued
from respaldo.operations.status import StatusItem, compute_status
from tests.unit.operations.support import Installation

# Histories of many backups: written without flushing each to the disk (conftest.py).
pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_disk_sync")]

DAY = timedelta(days=1)


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Installation]:
    # The backups are dated from the support's fixed NOW, the prunes run by the clock:
    # days after it, that is "no backup completed for days", which the clock check
    # (respaldo.operations.prune.check_clock) refuses to prune by age. Not this test.
    installation = Installation.create(tmp_path, extra="[retention]\nclock_check_days = 0\n")
    yield installation
    installation.close()


def reclaimed_metric(inst: Installation) -> dict[str, float]:
    text = render_metrics(inst.ctx).decode()
    return {
        s.labels["repository"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "respaldo_prune_reclaimed_bytes_total"
    }


def history(inst: Installation) -> None:
    for age in (12, 10, 8, 6, 3, 1):
        inst.backup(age * DAY)
    inst.replicate()


def reclaimed(report: PruneReport) -> dict[str, int]:
    return {
        r.name: (r.gc.bytes_reclaimed if r.gc else 0) + (r.wal.bytes_deleted if r.wal else 0)
        for r in report.repositories
    }


def test_a_scheduled_prune_records_what_it_reclaimed_and_metrics_add_it_up(
    inst: Installation,
) -> None:
    history(inst)
    assert reclaimed_metric(inst) == {"local": 0, "second": 0}
    job = jobs.submit(inst.ctx, JobRequest(JobKind.PRUNE, None, TriggeredBy.SCHEDULE, "cleanup"))
    report = run_queued(inst.ctx, job.id)
    by_repo = reclaimed(report)
    assert by_repo["local"] > 0 and by_repo["second"] > 0
    assert sum(by_repo.values()) == report.bytes_reclaimed
    assert jobs.get(inst.ctx, job.id).outcome == {"bytes_reclaimed": by_repo}
    assert reclaimed_metric(inst) == by_repo
    again = run_queued(
        inst.ctx,
        jobs.submit(inst.ctx, JobRequest(JobKind.PRUNE, None, TriggeredBy.SCHEDULE, "cleanup")).id,
    )
    assert reclaimed(again) == {"local": 0, "second": 0}
    assert reclaimed_metric(inst) == by_repo  # a counter: the sum over every run


def test_a_cli_prune_records_what_it_reclaimed_and_a_dry_run_records_nothing(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    history(inst)
    assert invoke(["--config", str(inst.config), "prune", "--dry-run"]) == 0
    (dry,) = jobs.list_jobs(inst.ctx)
    assert dry.status is JobStatus.COMPLETED and dry.outcome is None
    capsys.readouterr()
    assert invoke(["--config", str(inst.config), "prune", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    by_repo = {
        r["name"]: (r["gc"] or {}).get("bytesReclaimed", 0)
        + (r["wal"] or {}).get("bytesDeleted", 0)
        for r in printed["repositories"]
    }
    assert by_repo["local"] > 0
    done = jobs.list_jobs(inst.ctx, limit=1)[0]
    assert done.triggered_by is TriggeredBy.CLI
    assert done.outcome == {"bytes_reclaimed": by_repo}
    assert reclaimed_metric(inst) == by_repo


def test_a_cli_prune_that_fails_in_a_mirror_fails_one_that_cannot_reach_it_completes(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """The mirror does not open (its config damaged: no outage to wait out): prune did
    its work in the primary, not in the mirror (exit 1, an alert names it). Its job is
    no success, as the scheduled prune's is not: it counted as prune's last success in
    the metrics and sent a success notice.

    A mirror that cannot be reached (its disk not mounted) is an outage: the primary is
    pruned and the mirror's part waits for the next prune that reaches it, as a failed
    copy waits for the next backup: exit 0, a warning, the job completed with what it
    left recorded in its row. It failed, every night of the outage, with a critical
    alert whose hint ('run prune again') could not help."""
    history(inst)
    config = inst.root / "second" / "config"
    good = config.read_bytes()
    config.write_bytes(b"not a config")
    assert invoke(["--config", str(inst.config), "prune"]) == 1
    done = jobs.list_jobs(inst.ctx, limit=1)[0]
    assert done.kind is JobKind.PRUNE and done.status is JobStatus.FAILED
    assert done.error is not None and done.error.startswith("prune could not finish in second: ")
    text = render_metrics(inst.ctx).decode()
    assert 'respaldo_job_last_success_timestamp_seconds{kind="prune"}' not in text

    config.write_bytes(good)
    (inst.root / "second").rename(inst.root / "unmounted")
    capsys.readouterr()
    assert invoke(["--config", str(inst.config), "prune"]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "warning: repository second could not be reached (cannot open: no repository" in said
    assert "its prune is deferred to the next prune that reaches it" in said
    done = jobs.list_jobs(inst.ctx, limit=1)[0]
    assert done.kind is JobKind.PRUNE and done.status is JobStatus.COMPLETED
    assert done.outcome is not None and set(done.outcome) == {"bytes_reclaimed", "deferred"}
    assert done.outcome["deferred"]["second"].startswith("cannot open: no repository at ")
    # 'respaldo status' says so (amber: the prune completed), from the first prune that
    # could not reach it, until one does; it was green all along.
    first = done.finished_at
    assert invoke(["--config", str(inst.config), "prune"]) == 0
    (item,) = _prune_items(inst)
    assert (item.key, item.level, item.repository, item.at) == (
        "prune:second",
        "amber",
        "second",
        first,
    )
    assert item.reason.startswith("no prune has reached repository second for ")
    assert "(cannot open: no repository at " in item.reason
    (inst.root / "unmounted").rename(inst.root / "second")
    assert invoke(["--config", str(inst.config), "prune"]) == 0
    assert _prune_items(inst) == []


def _prune_items(inst: Installation) -> list[StatusItem]:
    report = compute_status(inst.ctx, datetime.now(UTC), wal_archived=(), servers=False)
    return [i for i in report.general if i.check == "prune"]


def test_a_scheduled_prune_that_fails_in_one_repository_fails_as_the_cli_one(
    inst: Installation,
) -> None:
    """One outcome for one operation, however it was asked for: the job fails naming the
    repository, and its row keeps what prune reclaimed where it could (the scheduled
    prune raised instead: its job said only 'could not finish in every repository' and
    recorded nothing of what it did)."""
    history(inst)
    (inst.root / "second").rename(inst.root / "unmounted")
    (inst.root / "second").write_text("not a repository")
    job = jobs.submit(inst.ctx, JobRequest(JobKind.PRUNE, None, TriggeredBy.SCHEDULE, "cleanup"))
    report = run_queued(inst.ctx, job.id)
    assert not report.ok
    done = jobs.get(inst.ctx, job.id)
    assert done.status is JobStatus.FAILED
    assert done.error is not None and done.error.startswith("prune could not finish in second: ")
    assert reclaimed(report)["local"] > 0
    assert done.outcome == {"bytes_reclaimed": reclaimed(report)}
