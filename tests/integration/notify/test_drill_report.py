"""The monthly restore-test report: each test of the month with its checks and restore
time, by email to a real SMTP server, from ``respaldo report drills --send`` and from a
scheduled job run the way the service runs it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from respaldo.catalog import DrillRuns
from respaldo.cli.main import invoke
from respaldo.config import load_settings
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest
from respaldo.operations.reports import drill_report, month_bounds, previous_month
from respaldo.operations.schedule import entries
from respaldo.operations.scheduled import run_queued
from tests.servers.notify import Smtp, smtp  # noqa: F401

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, smtp: Smtp, zone: str = "UTC") -> Path:  # noqa: F811
    config = tmp_path / "respaldo.toml"
    config.write_text(f"""
[schedules]
time_zone = "{zone}"

[catalog]
url = "sqlite:///{tmp_path / "catalog.db"}"

[[databases]]
name = "erp"
dsn = "postgresql://respaldo@127.0.0.1:1/erp"

[[databases]]
name = "crm"
dsn = "postgresql://respaldo@127.0.0.1:1/crm"

[[notifications.targets]]
name = "mail"
url = "{smtp.url()}"
levels = ["critical", "report"]
""")
    with Context.open(load_settings(config), create=True):
        pass
    return config


def _drills(config: Path, month: str) -> None:
    start, _ = month_bounds(month)
    with Context.open(load_settings(config)) as ctx, ctx.catalog.begin() as session:
        runs = DrillRuns(session)
        for day, passed, seconds in ((3, True, 95.0), (10, False, 130.0)):
            when = start + timedelta(days=day)
            run = runs.start(
                f"202611{day:02d}T020000Z-0000000{day % 10}",
                database="erp",
                scratch_name="s",
                now=when,
            )
            checks = [
                {"name": "restore", "ok": True, "detail": ""},
                {
                    "name": "row counts",
                    "ok": passed,
                    "detail": "" if passed else "orders: 10 != 12",
                },
            ]
            runs.finish(
                run.id,
                passed=passed,
                restore_seconds=seconds,
                checks=checks,
                now=when + timedelta(minutes=5),
            )
        # A run of the month after is not in this month's report.
        runs.start(
            "20261201T020000Z-00000009",
            database="erp",
            scratch_name="s",
            now=month_bounds(month)[1] + timedelta(hours=1),
        )


def test_report_drills_send_mails_every_test_check_and_restore_time(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    smtp: Smtp,  # noqa: F811
) -> None:
    config = _config(tmp_path, smtp)
    _drills(config, "2026-11")
    capsys.readouterr()
    assert (
        invoke(["--config", str(config), "report", "drills", "--month", "2026-11", "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in report["runs"]] == ["passed", "failed"]
    tally = {
        "runs": 2,
        "passed": 1,
        "failed": 1,
        "rtoMedianSeconds": 112.5,
        "rtoMaxSeconds": 130.0,
    }
    assert report["databases"][0] | {} == {
        "database": "erp",
        **tally,
        # The tested backups are not in the catalog (pruned since): no kind, no newest
        # pass of a kind (tests/integration/physical/test_restore_test_kinds.py has both).
        "kinds": [{"kind": None, "reliedOn": False, **tally, "newestPass": None}],
    }
    # crm has no backup at all: nothing to test, not a test missing.
    assert (report["untested"], report["nothingToTest"]) == ([], ["crm"])
    assert smtp.inbox.items == []  # shown, not sent

    assert (
        invoke(["--config", str(config), "report", "drills", "--month", "2026-11", "--send"]) == 0
    )
    (mail,) = smtp.inbox.wait(1)
    assert mail["Subject"] == "[respaldo] restore tests of 2026-11: 1 passed, 1 failed"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    for line in (
        "erp: 2 tests, 1 passed, 1 failed; restore time: median 1 min 52 s, longest 2 min 10 s",
        "  backups no longer in the catalog: 2 tests, 1 passed, 1 failed; restore time: "
        "median 1 min 52 s, longest 2 min 10 s",
        "Nothing to test this month (no backup yet): crm",
        "  - row counts: FAILED (orders: 10 != 12)",
        "  started 2026-11-04 00:00 UTC, restore time 1 min 35 s",
    ):
        assert line in text.splitlines(), text


def test_a_bad_month_is_refused_naming_the_option(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    smtp: Smtp,  # noqa: F811
) -> None:
    config = _config(tmp_path, smtp)
    assert invoke(["--config", str(config), "report", "drills", "--month", "2026-13"]) != 0
    assert "--month: '2026-13' is not a month" in capsys.readouterr().err


def test_the_service_sends_the_report_of_the_month_just_ended(
    tmp_path: Path,
    smtp: Smtp,  # noqa: F811
) -> None:
    config = _config(tmp_path, smtp)
    settings = load_settings(config)
    (entry,) = [e for e in entries(settings, set()) if e.name == "report"]
    assert entry.kind is JobKind.REPORT
    first = entry.next_runs(datetime(2026, 12, 4, tzinfo=UTC), 1)[0]
    assert (first.day, first.hour) == (1, 7)
    month = previous_month(datetime.now(UTC))
    _drills(config, month)
    with Context.open(settings) as ctx:
        job = jobs.submit(ctx, JobRequest(JobKind.REPORT, None, TriggeredBy.SCHEDULE, "report"))
        run_queued(ctx, job.id)
        assert jobs.get(ctx, job.id).status is JobStatus.COMPLETED
    (mail,) = smtp.inbox.wait(1)
    assert mail["Subject"] == f"[respaldo] restore tests of {month}: 1 passed, 1 failed"


def test_months_are_the_installations(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    smtp: Smtp,  # noqa: F811
) -> None:
    """In Mexico City (UTC-6) a test run at 21:00 on 30 November is November's (03:00 UTC
    on 1 December), and one at 21:00 on 31 October is October's; the report names each
    time in the installation's zone. In UTC both were counted in the next month."""
    config = _config(tmp_path, smtp, "America/Mexico_City")
    mexico = ZoneInfo("America/Mexico_City")
    with Context.open(load_settings(config)) as ctx, ctx.catalog.begin() as session:
        runs = DrillRuns(session)
        for backup_id, when in (
            ("20261130T020000Z-00000001", datetime(2026, 11, 30, 21, tzinfo=mexico)),
            ("20261031T020000Z-00000002", datetime(2026, 10, 31, 21, tzinfo=mexico)),
        ):
            run = runs.start(backup_id, database="erp", scratch_name="s", now=when)
            runs.finish(run.id, passed=True, restore_seconds=60.0, checks=[], now=when)
    capsys.readouterr()
    month = ["--config", str(config), "report", "drills", "--month"]
    assert invoke([*month, "2026-11", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["backupId"] for r in report["runs"]] == ["20261130T020000Z-00000001"]
    assert report["timeZone"] == "America/Mexico_City"
    assert invoke([*month, "2026-10", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["backupId"] for r in report["runs"]] == ["20261031T020000Z-00000002"]
    assert invoke([*month, "2026-11", "--send"]) == 0
    (mail,) = smtp.inbox.wait(1)
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "  started 2026-11-30 21:00 CST, restore time 1 min 0 s" in text.splitlines(), text


def test_the_report_after_midnight_on_the_first_in_madrid_is_the_month_just_ended(
    tmp_path: Path,
    smtp: Smtp,  # noqa: F811
) -> None:
    """A report scheduled at 00:30 on the 1st in Madrid runs at 23:30 UTC on the last day
    of the month: the month just ended is the one before the Madrid date's, not before the
    UTC date's (it sent the month before last)."""
    config = _config(tmp_path, smtp, "Europe/Madrid")
    now = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # 00:30 on 1 December in Madrid
    with Context.open(load_settings(config)) as ctx:
        assert drill_report(ctx, now=now).month == "2026-11"
    assert previous_month(now) == "2026-10"  # by the UTC date
    assert previous_month(now, ZoneInfo("Europe/Madrid")) == "2026-11"
