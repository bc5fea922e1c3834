"""``respaldo status`` against real servers: WAL archiving that works, and archiving that
fails until its oldest segment has waited longer than ``archive_lag_minutes``."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.cli.main import invoke
from respaldo.config import load_settings
from respaldo.operations.initialize import initialize
from tests.integration.physical.conftest import (
    FAST_KDF,
    SHOP,
    Archiving,
    Run,
    chown_tree,
    write_config,
)

pytestmark = pytest.mark.integration


def _items(run: Run) -> dict[str, dict[str, Any]]:
    return {item["key"]: item for db in run.json()["databases"] for item in db["items"]}


def test_working_archiving_is_green_with_the_last_segment_and_its_age(
    archiving: Archiving,
) -> None:
    # The session's cluster is shared: a file another test's work queued (a backup's
    # history file, a segment background writes filled) can be waiting at the moment
    # status looks. Until the archiver has emptied its queue, the count is not 0 by right;
    # archive again and look again (attempts, not time).
    for _ in range(20):
        segment = archiving.switch_and_archive()
        run = archiving.run("status", "--json")
        if run.json()["databases"][0]["archive"]["waiting"] == 0:
            break
    items = _items(run)
    archive = items["archive:erp"]
    assert archive["level"] == "green", archive
    assert archive["reason"].startswith("last archived ")
    assert archive["reason"].endswith("); 0 waiting")
    assert items["server:erp"]["level"] == "green"
    assert items["server:erp"]["reason"].startswith("PostgreSQL ")
    (erp,) = run.json()["databases"]
    # The repository records the cluster (the first push did): physical is expected.
    assert erp["physical"] is True
    assert erp["archive"]["archiveMode"] == "on"
    assert erp["archive"]["lastArchivedWal"] >= segment
    assert erp["archive"]["failedCount"] == 0 and erp["archive"]["waiting"] == 0


@dataclass(frozen=True)
class Failing:
    pg: TempCluster
    config: Path
    segment: str

    def run(self, capsys: pytest.CaptureFixture[str]) -> Run:
        capsys.readouterr()
        code = invoke(["--config", str(self.config), "status", "--json"])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    def waited_since(self, seconds_ago: float) -> None:
        ready = self.pg.datadir / "pg_wal" / "archive_status" / f"{self.segment}.ready"
        when = time.time() - seconds_ago
        os.utime(ready, (when, when))


@pytest.fixture(scope="module")
def failing() -> Iterator[Failing]:
    """A cluster whose ``archive_command`` fails (``false``: counted by the server), one
    segment switched and its failure awaited in ``pg_stat_archiver``. Its config turns
    physical backups on for the database by its own schedule: nothing was ever pushed,
    so the repository records no cluster."""
    base = Path(tempfile.mkdtemp(prefix="respaldo-status-"))
    cluster: TempCluster | None = None
    try:
        cluster = TempCluster.create(settings={"archive_mode": "on", "archive_command": "false"})
        config = write_config(
            base, cluster, extra='[databases.schedules]\nincremental = "0 */6 * * *"\n'
        )
        initialize(load_settings(config), kdf=FAST_KDF)
        chown_tree(base)
        cluster.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SHOP)))
        segment = str(cluster.scalar("SELECT pg_walfile_name(pg_switch_wal())"))
        # Generous: the first failure comes within a second on a quiet machine.
        deadline = time.monotonic() + 300
        while cluster.scalar("SELECT failed_count FROM pg_stat_archiver") == 0:
            assert time.monotonic() < deadline, "archive_command 'false' never failed"
            time.sleep(0.1)
        yield Failing(cluster, config, segment)
    finally:
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


def test_failing_archiving_is_amber_then_red_once_a_segment_waited_too_long(
    failing: Failing, capsys: pytest.CaptureFixture[str]
) -> None:
    failing.waited_since(0)  # it began to wait just now
    run = failing.run(capsys)
    assert run.out, str(run)
    archive = _items(run)["archive:erp"]
    assert archive["level"] == "amber", archive
    assert archive["reason"].startswith("nothing archived yet; the last attempt failed (")
    assert "the server log says why" in archive["reason"]
    (erp,) = run.json()["databases"]
    assert erp["archive"]["failedCount"] >= 1
    assert erp["archive"]["lastFailedWal"] is not None
    assert erp["archive"]["waiting"] >= 1

    failing.waited_since(3600)
    run = failing.run(capsys)
    assert run.code == 3, str(run)
    archive = _items(run)["archive:erp"]
    assert archive["level"] == "red", archive
    assert "waiting to be archived, the oldest for 60 min (limit 15 min)" in archive["reason"]
    assert archive["ageSeconds"] >= 3600
    assert run.json()["databases"][0]["archive"]["oldestWaitingAgeSeconds"] >= 3600


# --- /metrics exports the same reading (operations/metrics_status.py) ---------------------


def _metrics(text: str) -> dict[tuple[str, ...], float]:
    """(sample name, label values in name order...) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, *(v for _, v in sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_of_working_archiving_say_what_status_says(archiving: Archiving) -> None:
    archiving.switch_and_archive()
    status = archiving.run("status", "--json").json()
    (erp,) = status["databases"]
    run = archiving.run("metrics")
    assert run.code == 0, str(run)
    got = _metrics(run.out)
    assert got[("respaldo_wal_archived_total", "erp")] >= erp["archive"]["archivedCount"] >= 1
    assert got[("respaldo_wal_archive_failures_total", "erp")] == 0
    assert got[("respaldo_wal_archive_waiting_files", "erp")] == 0
    assert got[("respaldo_wal_archive_lag_seconds", "erp")] == 0
    assert got[("respaldo_wal_archive_max_lag_seconds", "erp")] == 15 * 60
    assert got[("respaldo_database_up", "erp")] == 1
    assert got[("respaldo_backup_rpo_seconds", "erp", "incremental")] == 8 * 3600
    assert got[("respaldo_backup_rpo_seconds", "erp", "full")] == 26 * 3600
    # Physical backups are expected here: "never" shows until the first one.
    assert ("respaldo_backup_last_success_timestamp_seconds", "erp", "incremental") in got


def test_metrics_of_failing_archiving_give_its_lag_and_failures(
    failing: Failing, capsys: pytest.CaptureFixture[str]
) -> None:
    failing.waited_since(3600)
    status = failing.run(capsys)
    (erp,) = status.json()["databases"]
    capsys.readouterr()
    assert invoke(["--config", str(failing.config), "metrics"]) == 0
    got = _metrics(capsys.readouterr().out)
    # Read after status: the server's counters and ages can only have grown since.
    lag = got[("respaldo_wal_archive_lag_seconds", "erp")]
    assert lag >= erp["archive"]["oldestWaitingAgeSeconds"] >= 3600
    assert got[("respaldo_wal_archive_failures_total", "erp")] >= erp["archive"]["failedCount"]
    assert erp["archive"]["failedCount"] >= 1
    assert got[("respaldo_wal_archive_waiting_files", "erp")] >= 1
    assert got[("respaldo_database_status", "erp")] == 2  # red, as status says
    assert got[("respaldo_database_up", "erp")] == 1
    assert got[("respaldo_backup_last_success_timestamp_seconds", "erp", "incremental")] == 0


def test_failing_archiving_seen_by_a_role_without_pg_monitor_is_red_and_mailed(
    failing: Failing, tmp_path: Path
) -> None:
    # The usual backup role may not list pg_wal/archive_status (no pg_monitor): how long
    # the segment waits is unknown, but the archiver is stuck on it (it retries the one
    # that failed until it goes): the same state seen for archive_lag_minutes (15, by the
    # watchdog's clock) is red.
    from datetime import UTC, datetime, timedelta

    from respaldo.operations import watchdog
    from respaldo.operations.context import Context
    from tests.servers.notify import Smtp

    password = "watcher-pass-4711"
    failing.pg.execute(
        sql.SQL("CREATE ROLE watcher LOGIN PASSWORD {}").format(sql.Literal(password))
    )
    smtp = Smtp()
    try:
        config = tmp_path / "respaldo.toml"
        text = failing.config.read_text().replace(
            f"postgresql://{failing.pg.superuser}@", "postgresql://watcher@"
        )
        (tmp_path / "watcher.pass").write_text(password + "\n")
        (tmp_path / "watcher.pass").chmod(0o600)
        text = re.sub(
            r'^password_file = ".*"$',
            f'password_file = "{tmp_path / "watcher.pass"}"',
            text,
            flags=re.MULTILINE,
        )
        config.write_text(
            text + f'\n[[notifications.targets]]\nname = "ops-mail"\nurl = "{smtp.url()}"\n'
        )
        now = datetime.now(UTC)
        with Context.open(load_settings(config)) as ctx:
            first = watchdog.check(ctx, now, wal_archived=())
            (erp,) = first.report.databases
            archive = next(i for i in erp.items if i.key == "archive:erp")
            assert archive.level == "amber", archive.reason  # first seen: may be a retry
            assert archive.reason.startswith("archiving may be stuck, seen so far 0 s")
            result = watchdog.check(ctx, now + timedelta(minutes=16), wal_archived=())
        (erp,) = result.report.databases
        archive = next(i for i in erp.items if i.key == "archive:erp")
        assert erp.archive is not None and erp.archive.waiting is None  # cannot list
        assert archive.level == "red", archive.reason
        assert "nothing archived yet; the last attempt failed" in archive.reason
        assert {c.key: c.action for c in result.conditions}["archive:erp"] == "raised"
        subjects = [str(m["Subject"]) for m in smtp.inbox.items]
        assert "[respaldo] CRITICAL: WAL archiving of erp fails: nothing archived yet" in subjects
    finally:
        smtp.close()
        failing.pg.execute(sql.SQL("DROP ROLE watcher"))


def test_archiving_dead_without_a_counted_failure_is_red_for_a_role_without_pg_monitor(
    tmp_path: Path,
) -> None:
    # archive_command's program was moved away (exit 127): PostgreSQL restarts the
    # archiver without counting a failure, so pg_stat_archiver shows none, and a role
    # without pg_monitor cannot see the segments waiting. Finished segments after the
    # last one archived still show it: the current WAL file is further on. Red once
    # seen so far archive_lag_minutes, by the watchdog's clock.
    from datetime import UTC, datetime, timedelta

    from respaldo.operations import watchdog
    from respaldo.operations.context import Context
    from tests.servers.notify import Smtp

    cluster = TempCluster.create(settings={"archive_mode": "on", "archive_command": "true"})
    smtp = Smtp()
    try:
        cluster.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SHOP)))
        cluster.scalar("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 300
        while cluster.scalar("SELECT archived_count FROM pg_stat_archiver") == 0:
            assert time.monotonic() < deadline, "archive_command 'true' never ran"
            time.sleep(0.1)
        cluster.execute("ALTER SYSTEM SET archive_command = '/nonexistent/respaldo %p'")
        cluster.scalar("SELECT pg_reload_conf()")
        # A finished segment the archiver cannot take, and the last success older than
        # the limit (archive_lag_minutes = 0.01: 0.6 s by the server's clock).
        cluster.execute("CREATE TABLE filler AS SELECT 1 AS x", dbname=SHOP)
        cluster.scalar("SELECT pg_switch_wal()")
        while not cluster.scalar(
            "SELECT now() - last_archived_time > interval '2 seconds' FROM pg_stat_archiver"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert cluster.scalar("SELECT failed_count FROM pg_stat_archiver") == 0
        cluster.execute(
            sql.SQL("CREATE ROLE watcher LOGIN PASSWORD {}").format(sql.Literal("w-4711"))
        )
        (tmp_path / "watcher.pass").write_text("w-4711\n")
        (tmp_path / "watcher.pass").chmod(0o600)
        config = write_config(
            tmp_path,
            cluster,
            extra='[databases.schedules]\nincremental = "0 */6 * * *"\n'
            "[rpo]\narchive_lag_minutes = 0.01\n"
            f'[notifications]\n[[notifications.targets]]\nname = "ops"\nurl = "{smtp.url()}"\n',
        )
        text = config.read_text().replace(
            f"postgresql://{cluster.superuser}@", "postgresql://watcher@"
        )
        text = re.sub(
            r'^password_file = ".*"$',
            f'password_file = "{tmp_path / "watcher.pass"}"',
            text,
            flags=re.MULTILINE,
        )
        config.write_text(text)
        initialize(load_settings(config), kdf=FAST_KDF)
        now = datetime.now(UTC)
        with Context.open(load_settings(config)) as ctx:
            first = watchdog.check(ctx, now, wal_archived=())
            assert {c.key: c.action for c in first.conditions}["archive:erp"] == "quiet"
            result = watchdog.check(ctx, now + timedelta(seconds=1), wal_archived=())
        (erp,) = result.report.databases
        archive = next(i for i in erp.items if i.key == "archive:erp")
        assert erp.archive is not None and erp.archive.waiting is None  # cannot list
        assert archive.level == "red", archive.reason
        assert "not archived" in archive.reason
        assert {c.key: c.action for c in result.conditions}["archive:erp"] == "raised"
        subjects = [str(m["Subject"]) for m in smtp.inbox.items]
        assert any("WAL archiving of erp fails" in s for s in subjects), subjects
    finally:
        smtp.close()
        cluster.destroy()


def test_archiving_that_stores_wal_elsewhere_is_red(archiving: Archiving) -> None:
    # archive_command replaced by one that "succeeds" without storing anything ('true',
    # the usual quick fix for a full pg_wal): the server counts archived segments, none
    # reaches the repository, and recovery past the newest backup is gone.
    archiving.backup()
    archiving.switch_and_archive()
    assert _items(archiving.run("status", "--json"))["archive:erp"]["level"] == "green"
    archiving.pg.execute("ALTER SYSTEM SET archive_command = 'true'")
    archiving.pg.scalar("SELECT pg_reload_conf()")
    try:
        # The reload is asynchronous: wait until a segment is "archived" that the
        # repository does not hold.
        deadline = time.monotonic() + 120
        while True:
            segment = archiving.switch_and_archive()
            stored = list((archiving.repo_dir / "wal").rglob(segment))
            if not stored:
                break
            assert time.monotonic() < deadline, "archive_command 'true' never took over"
        run = archiving.run("status", "--json")
        archive = _items(run)["archive:erp"]
        assert archive["level"] == "red", archive
        assert segment in archive["reason"] and "not in the repository" in archive["reason"]
        assert run.code == 3
        from datetime import UTC, datetime

        from respaldo.operations import watchdog
        from respaldo.operations.context import Context

        with Context.open(archiving.settings()) as ctx:
            result = watchdog.check(ctx, datetime.now(UTC))
        (told,) = [c for c in result.conditions if c.key == "archive:erp"]
        assert told.action == "raised"
    finally:
        archiving.pg.execute("ALTER SYSTEM RESET archive_command")
        archiving.pg.scalar("SELECT pg_reload_conf()")
    first_lost = segment
    # Archiving through respaldo again: the segments archived from now on are stored.
    deadline = time.monotonic() + 120
    while True:
        segment = archiving.switch_and_archive()
        if list((archiving.repo_dir / "wal").rglob(segment)):
            break
        assert time.monotonic() < deadline, "archiving through respaldo never came back"
    # The last segment is in the repository again, but those 'true' took are not: recovery
    # from the backup stops at the first of them. Green here hid that until a restore.
    run = archiving.run("status", "--json")
    archive = _items(run)["archive:erp"]
    assert archive["level"] == "red", archive
    found = re.match(
        r"WAL segment (\w+) is not in the repository \(archived again from", archive["reason"]
    )
    assert found is not None, archive
    assert found.group(1) <= first_lost
    assert not list((archiving.repo_dir / "wal").rglob(found.group(1)))
    assert "take a physical backup now" in archive["reason"]
    assert run.code == 3
    # A base backup respaldo did not take (a standby built with pg_basebackup) archives a
    # backup history file after the hole: recovery from respaldo's backup still stops at
    # the hole. pg_backup_stop() returns once that file is archived.
    archiving.pg.execute("SELECT pg_backup_start('a standby', true); SELECT pg_backup_stop()")
    assert list((archiving.repo_dir / "wal").rglob("*.backup"))
    archive = _items(archiving.run("status", "--json"))["archive:erp"]
    assert archive["level"] == "red", archive
    assert archive["reason"].startswith(f"WAL segment {found.group(1)} "), archive
    # A physical backup after the gap: recovery from it reaches the present.
    archiving.backup()
    archive = _items(archiving.run("status", "--json"))["archive:erp"]
    assert archive["level"] == "green", archive
