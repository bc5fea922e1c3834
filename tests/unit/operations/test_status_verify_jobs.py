"""The first status on an installation whose catalog records verifies (after an upgrade
from a version that did not note them) says when each repository was last verified: it
said "repository local was never verified in the 0 s since the status first looked at
it" minutes after a 'verify --all', and restarted the verify_hours clock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from respaldo.catalog import AlertStates, Job
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.operations import status, status_verify
from respaldo.operations.context import Context
from tests.unit.operations.status_support import NOW, status_settings

pytestmark = pytest.mark.unit

H = timedelta(hours=1)


def verify_job(
    ctx: Context, finished: datetime, params: dict[str, object], target: str | None = None
) -> None:
    with ctx.catalog.begin() as session:
        session.add(
            Job(
                kind=JobKind.VERIFY,
                target=target,
                params=json.dumps(params),
                status=JobStatus.COMPLETED,
                triggered_by=TriggeredBy.SCHEDULE if "slices" in params else TriggeredBy.CLI,
                requested_by="verify" if "slices" in params else "root",
                created_at=finished - H,
                started_at=finished - H,
                finished_at=finished,
            )
        )


def reasons(ctx: Context, at: datetime) -> dict[str, tuple[str, str]]:
    report = status.compute_status(ctx, at, wal_archived=(), servers=False)
    return {i.key: (i.level, str(i.reason)) for i in report.general if i.check == "verify"}


def test_the_first_status_counts_from_the_last_verify_the_jobs_record(tmp_path: Path) -> None:
    settings = status_settings(tmp_path, secondary=True)
    with Context.open(settings, create=True) as ctx:
        verify_job(ctx, NOW - 2 * H, {"mode": "all", "subset": None})
        # Given backups only, newer: not a check of the repository as a whole.
        verify_job(ctx, NOW - H, {"mode": "backups", "subset": None})
        # The daily verify read a slice of the primary; the mirror it may have skipped.
        verify_job(ctx, NOW - 30 * H, {"slices": 7})
        verify_job(ctx, NOW - 40 * H, {"mode": "subset", "subset": "2/7"}, target="offsite")
        assert reasons(ctx, NOW) == {
            "verify:local": ("green", "repository local was last verified 2 h ago (limit 50 h)"),
            "verify:offsite": (
                "green",
                "repository offsite was last verified 40 h ago (limit 50 h)",
            ),
        }
        # Noted: the clock does not restart, and a verify that stopped turns red on time.
        assert reasons(ctx, NOW + 11 * H)["verify:offsite"][0] == "red"
        assert status_verify.last_verified(ctx, ["local"], NOW)["local"].scope == "all"


def test_a_repository_noted_as_never_verified_takes_the_verify_the_jobs_record(
    tmp_path: Path,
) -> None:
    with Context.open(status_settings(tmp_path), create=True) as ctx:
        verify_job(ctx, NOW - 3 * H, {"mode": "subset", "subset": "1/7"}, target="local")
        # What a status of the version before this one noted: never verified, since now.
        with ctx.catalog.begin() as session:
            row = AlertStates(session).get_or_new("verified:local", level="info", now=NOW)
            row.message, row.fired_at, row.updated_at = "", NOW, NOW
        assert reasons(ctx, NOW + H)["verify:local"] == (
            "green",
            "repository local was last verified 4 h ago (limit 50 h)",
        )


def test_without_a_verify_in_the_jobs_the_repository_is_watched_from_the_first_look(
    tmp_path: Path,
) -> None:
    with Context.open(status_settings(tmp_path), create=True) as ctx:
        verify_job(ctx, NOW - H, {"mode": "backups", "subset": None})
        assert reasons(ctx, NOW + H)["verify:local"] == (
            "green",
            "repository local was never verified in the 0 s since the status first looked "
            "at it (limit 50 h)",
        )
        assert reasons(ctx, NOW + 52 * H)["verify:local"][0] == "red"
