"""Job retention on a PostgreSQL catalog: the jobs forgotten are counted in
``job_tallies`` (an upsert of PostgreSQL's dialect), so the job counters never go down.
The same retention forgets ended web logins and old notification records (both catalogs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.catalog import AuthSessions, Jobs, Notifications, Users, read_figures
from respaldo.config import Settings
from respaldo.domain import JobKind, JobStatus, Role, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.context import Context
from tests.integration.api.conftest import CatalogRole

pytestmark = pytest.mark.integration


def test_forgotten_jobs_keep_their_counts_and_last_success(
    catalog_role: CatalogRole, tmp_path: Path
) -> None:
    settings = Settings(
        catalog={"url": catalog_role.url}, jobs={"keep_days": 30}, cache_dir=tmp_path / "cache"
    )
    now = datetime.now(UTC)
    with Context.open(settings, create=True) as ctx:
        ok, failed = JobStatus.COMPLETED, JobStatus.FAILED
        ended = [(50, ok), (40, ok), (45, failed), (1, failed), (60, ok)]
        for age, status in ended[:4]:
            _ended(ctx, now - timedelta(days=age), status)
        assert jobs.forget_old(ctx, now) == 3
        assert jobs.forget_old(ctx, now) == 0
        # A second forgetting adds to the tallies (the upsert's update).
        _ended(ctx, now - timedelta(days=ended[4][0]), ended[4][1])
        with ctx.catalog.read() as session:
            before = read_figures(session)
        assert jobs.forget_old(ctx, now) == 1
        with ctx.catalog.read() as session:
            after = read_figures(session)
        assert len(jobs.list_jobs(ctx)) == 1
    assert after.jobs == before.jobs
    assert after.jobs == {
        (JobKind.BACKUP, JobStatus.COMPLETED): 3,
        (JobKind.BACKUP, JobStatus.FAILED): 2,
    }
    # The newest success was forgotten: its time is still known (an older one forgotten
    # later does not replace it).
    assert after.job_last_success_at == before.job_last_success_at
    assert after.job_last_success_at[JobKind.BACKUP] == now - timedelta(days=40)


def _ended(ctx: Context, when: datetime, status: JobStatus) -> None:
    with ctx.catalog.begin() as session:
        rows = Jobs(session)
        job = rows.submit(
            JobKind.BACKUP,
            target="erp",
            triggered_by=TriggeredBy.CLI,
            requested_by="ana",
            now=when - timedelta(minutes=5),
        )
        rows.start(job.id, pid=1, now=when - timedelta(minutes=4))
        rows.finish(job.id, status, now=when)


def test_retention_forgets_ended_logins_and_old_notifications_on_postgres(
    catalog_role: CatalogRole, tmp_path: Path
) -> None:
    _logins_and_notifications(catalog_role.url, tmp_path)


def test_retention_forgets_ended_logins_and_old_notifications_on_sqlite(tmp_path: Path) -> None:
    _logins_and_notifications(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)


def _logins_and_notifications(url: str, tmp_path: Path) -> None:
    """``auth_sessions`` (a row per web login) and ``notifications`` (a row per message)
    were never trimmed: a 42-minute soak of ``serve`` left them growing. The prune's
    retention now forgets the logins that ended and the messages sent more than
    ``[jobs] keep_days`` ago, never a session still valid however old."""
    settings = Settings(catalog={"url": url}, jobs={"keep_days": 30}, cache_dir=tmp_path / "cache")
    now = datetime.now(UTC)
    day = timedelta(days=1)
    with Context.open(settings, create=True) as ctx:
        with ctx.catalog.begin() as session:
            Users(session).add("ana", "hash", Role.ADMIN, now=now - 200 * day)
            logins = AuthSessions(session)
            for sid, age, expires_in, revoked_age in [
                ("expired-long-ago", 100, -50, None),
                ("logged-out-long-ago", 60, 10, 40),
                ("valid-and-old", 100, 1, None),
                ("expired-lately", 20, -1, None),
                ("logged-out-lately", 20, 10, 2),
            ]:
                row = logins.start(
                    sid,
                    "ana",
                    f"hash-{sid}",
                    now=now - age * day,
                    expires_at=now + expires_in * day,
                    address=None,
                )
                if revoked_age is not None:
                    logins.revoke(sid, now=now - revoked_age * day)
                assert row.id == sid
            for age in (40, 1):
                Notifications(session).add(
                    sent_at=now - age * day,
                    level="warning",
                    kind="backup",
                    key=None,
                    target="ops",
                    ok=True,
                    error=None,
                )
        jobs.forget_old(ctx, now)
        with ctx.catalog.read() as session:
            left = sorted(
                sid
                for sid in (
                    "expired-long-ago",
                    "logged-out-long-ago",
                    "valid-and-old",
                    "expired-lately",
                    "logged-out-lately",
                )
                if AuthSessions(session).find(sid) is not None
            )
            sent = [n.sent_at for n in Notifications(session).list()]
    assert left == ["expired-lately", "logged-out-lately", "valid-and-old"]
    assert sent == [now - day]
