"""``respaldo prune`` end to end: real CLI, real PostgreSQL, a primary and a secondary
local repository, backups taken with pg_dump between days of simulated ERP work, then
made old by back-dating their catalog records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sample
from sample.cluster import TempCluster

from respaldo.catalog import BackupRecord, open_catalog
from respaldo.config import load_settings
from respaldo.domain import BackupStatus
from respaldo.operations.initialize import initialize
from respaldo.repository import KdfParams
from tests.faketime import faketime_env
from tests.integration.cli import RunsCli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PASSPHRASE = "prune cli test passphrase"
FAST_KDF = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)
DAY = timedelta(days=1)


@dataclass
class Cli(RunsCli):
    config: Path
    root: Path
    capsys: pytest.CaptureFixture[str]

    def manifests(self, repo: str) -> set[str]:
        return {p.name for p in (self.root / repo / "manifests").iterdir()}


@pytest.fixture
def cli(
    pg: TempCluster,
    erp_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Cli]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    password = tmp_path / "erp.pass"
    fd = os.open(password, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(pg.password.get_secret_value() + "\n")
    config = tmp_path / "respaldo.toml"
    config.write_text(f"""
cache_dir = "{tmp_path / "cache"}"
pack_size = 65536

[catalog]
url = "sqlite:///{tmp_path / "catalog.db"}"

[chunker]
min_size = 512
avg_size = 2048
max_size = 8192

[locks]
wait_seconds = 5

[[repositories]]
name = "local"
url = "file://{tmp_path / "repo"}"

[[repositories]]
name = "second"
url = "file://{tmp_path / "second"}"

[[databases]]
name = "erp"
dsn = "postgresql://{pg.superuser}@{pg.host}:{pg.port}/{erp_db}"
password_file = "{password}"
""")
    initialize(load_settings(config), kdf=FAST_KDF)
    yield Cli(config, tmp_path, capsys)


def back_date(cli: RunsCli, backup_id: str, age: timedelta, *, verified: bool = False) -> None:
    """Make a backup look ``age`` old in the catalog (as if taken then, 7-day retention)."""
    catalog = open_catalog(load_settings(cli.config).catalog.url)
    try:
        with catalog.begin() as session:
            record = session.get(BackupRecord, backup_id)
            assert record is not None
            when = datetime.now(UTC) - age
            record.created_at = when - timedelta(minutes=2)
            record.started_at = when - timedelta(minutes=1)
            record.completed_at = when
            record.expires_at = when + 7 * DAY
            if verified:
                record.is_verified = True
                record.verified_at = when + timedelta(hours=1)
    finally:
        catalog.close()


def test_prune_with_the_cli(cli: Cli, pg: TempCluster, erp_db: str, new_dbname: str) -> None:
    ids = []
    for day in range(1, 6):
        out, _ = cli.ok("backup", "erp", "--json")
        ids.append(json.loads(out)["id"])
        sample.day_of_work(pg.conninfo_kwargs(erp_db), seed=6, day=day)
    # Never more than [retention] clock_check_days apart: a longer silence before the
    # newest backups would be taken for a step of the clock.
    back_date(cli, ids[0], 20 * DAY, verified=True)  # the newest verified one, old
    back_date(cli, ids[1], 14 * DAY)
    back_date(cli, ids[2], 8 * DAY)
    back_date(cli, ids[3], 2 * DAY)
    assert cli.manifests("repo") == cli.manifests("second") == set(ids)

    out, err = cli.ok("prune", "--dry-run")
    rows = {i: next(line for line in out.splitlines() if i in line) for i in ids}
    assert "keep" in rows[ids[0]] and "newest verified" in rows[ids[0]]
    assert "expire" in rows[ids[1]] and "expired" in rows[ids[1]]
    assert "expire" in rows[ids[2]]
    assert "keep" in rows[ids[3]] and "retention until" in rows[ids[3]]
    assert "keep" in rows[ids[4]] and "newest completed" in rows[ids[4]]
    assert "dry run: 2 of 5 backups would expire" in err
    assert "would reclaim about" in err
    assert cli.manifests("repo") == set(ids)

    out, _ = cli.ok("prune", "--dry-run", "--json")
    preview = json.loads(out)
    assert {d["id"]: d["decision"] for d in preview["decisions"]} == {
        ids[0]: "keep",
        ids[1]: "expire",
        ids[2]: "expire",
        ids[3]: "keep",
        ids[4]: "keep",
    }
    assert preview["deleted"] == [] and preview["dryRun"] is True

    out, _ = cli.ok("prune", "--json")
    result: dict[str, Any] = json.loads(out)
    assert sorted(result["deleted"]) == sorted(ids[1:3])
    for repo in result["repositories"]:
        assert repo["error"] is None
        assert repo["manifestsDeleted"] == 2
        assert repo["gc"]["bytesReclaimed"] > 0
    assert result["bytesReclaimed"] > 0
    kept = {ids[0], ids[3], ids[4]}
    assert cli.manifests("repo") == cli.manifests("second") == kept
    listed, _ = cli.ok("list", "--json")
    assert {r["id"] for r in json.loads(listed)} == kept

    # Nothing left to do; every repository verifies; the oldest survivor restores.
    _, err = cli.ok("prune")
    assert "0 backups deleted, 3 kept" in err
    cli.ok("verify", "--all")
    cli.ok("verify", "--all", "--repository", "second")
    _, err = cli.ok("restore", ids[0], "--target-database", new_dbname)
    assert new_dbname in err
    # restore compared every table's row count with the backup's; the data is there.
    tables = pg.scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname IN ('core', 'obras', 'finanzas')",
        dbname=new_dbname,
    )
    assert int(tables) > 5


def test_prune_keeps_the_newest_backup_a_mirror_holds_when_later_copies_failed(
    cli: Cli, pg: TempCluster, erp_db: str, new_dbname: str
) -> None:
    """A mirror that missed the last backups (its copies failed while it was away) must
    keep the newest one it holds: deleting it because newer ones exist in the primary
    leaves the mirror with nothing to restore once the primary is lost."""
    first, _ = cli.ok("backup", "erp", "--json")
    b1 = json.loads(first)["id"]
    assert cli.manifests("second") == {b1}
    away = cli.root / "second-away"
    (cli.root / "second").rename(away)  # the mirror is unreachable for two backups
    later = []
    for day in (1, 2):
        sample.day_of_work(pg.conninfo_kwargs(erp_db), seed=8, day=day)
        out, _ = cli.ok("backup", "erp", "--json")
        later.append(json.loads(out)["id"])
    away.rename(cli.root / "second")
    assert cli.manifests("repo") == {b1, *later}
    assert cli.manifests("second") == {b1}
    back_date(cli, b1, 40 * DAY)
    back_date(cli, later[0], 20 * DAY)

    out, err = cli.ok("prune", "--dry-run")
    row = next(line for line in out.splitlines() if b1 in line)
    assert "keep" in row and "newest in second" in row
    said = " ".join(err.split())
    assert f"backup {b1} is kept only because it is the newest one second holds" in said
    assert "'respaldo copy --all --to second' copies them" in said
    out, _ = cli.ok("prune", "--json")
    assert json.loads(out)["deleted"] == []
    assert cli.manifests("second") == {b1}
    # Still what the mirror is there for: a restore from it alone.
    cli.ok("restore", b1, "--repository", "second", "--target-database", new_dbname)

    # Once the mirror has caught up, the old backup goes as its policy says.
    cli.ok("copy", "--all", "--to", "second")
    out, _ = cli.ok("prune", "--json")
    assert json.loads(out)["deleted"] == [b1]
    assert cli.manifests("repo") == cli.manifests("second") == set(later)


def test_gfs_years_are_the_installations_years(cli: Cli) -> None:
    """A Mexico City ERP (UTC-6) keeps its year-end backups: the one taken at 18:00 on
    31 December, after the year's closing, is 00:00 UTC on 1 January. Counted in UTC it
    was the next year's, and 'yearly 2025' kept the noon backup without the closing,
    expiring the one with it."""
    with cli.config.open("a") as config:
        config.write(
            '\n[schedules]\ntime_zone = "America/Mexico_City"\n\n'
            "[retention]\nkeep_until_expires = false\nkeep_yearly = 3\nmin_keep = 1\n"
        )
    mexico = ZoneInfo("America/Mexico_City")
    local = {
        "noon": datetime(2025, 12, 31, 12, tzinfo=mexico),
        "closing": datetime(2025, 12, 31, 18, tzinfo=mexico),
        "january": datetime(2026, 1, 1, 6, tzinfo=mexico),
    }
    ids = {}
    for name, when in local.items():
        out, _ = cli.ok("backup", "erp", "--json")
        ids[name] = json.loads(out)["id"]
        back_date(cli, ids[name], datetime.now(UTC) - when)
    out, _ = cli.ok("prune", "--dry-run", "--json")
    decisions = {d["id"]: d for d in json.loads(out)["decisions"]}
    said = {name: decisions[i]["rules"] for name, i in ids.items()}
    assert decisions[ids["closing"]]["decision"] == "keep", said
    assert said["closing"] == ["yearly 2025"]
    assert decisions[ids["noon"]]["decision"] == "expire", said
    assert "yearly 2026" in said["january"]
    out, _ = cli.ok("prune", "--json")
    assert json.loads(out)["deleted"] == [ids["noon"]]
    assert cli.manifests("repo") == {ids["closing"], ids["january"]}


def test_prune_with_an_unknown_time_zone_deletes_nothing(cli: Cli) -> None:
    with cli.config.open("a") as config:
        config.write('\n[schedules]\ntime_zone = "America/Ciudad_de_Mexico"\n')
    ids = []
    for age in (40 * DAY, 30 * DAY, DAY):
        out, _ = cli.ok("backup", "erp", "--json")
        ids.append(json.loads(out)["id"])
        back_date(cli, ids[-1], age)
    code, _, err = cli.run("prune")
    assert code != 0
    assert "unknown time zone 'America/Ciudad_de_Mexico' in [schedules] time_zone" in err
    assert "America/Mexico_City" in err  # the hint
    assert cli.manifests("repo") == cli.manifests("second") == set(ids)
    listed, _ = cli.ok("list", "--json")
    assert {r["id"] for r in json.loads(listed)} == set(ids)


def run_ahead(
    cli: Cli, days: int, *args: str, monotonic: bool = False
) -> subprocess.CompletedProcess[str]:
    """``respaldo --config CONFIG ARGS…`` in a process whose wall clock is ``days``
    ahead (libfaketime preloaded into it; its monotonic clock left alone unless
    ``monotonic``: a command that waits for children (a backup's pg_dump) needs it moved
    too, or Python's sleeps in the wait fail with EINVAL)."""
    env = faketime_env(FAKETIME=f"+{days}d")
    if not monotonic:
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "respaldo.cli.main", "--config", str(cli.config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def files_of(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: (size, mtime in ns), to show nothing was changed."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and "locks" not in p.parts
    }


def _backups(cli: Cli, count: int) -> list[str]:
    """``count`` backups of erp, one after another; their ids, oldest first."""
    return [json.loads(cli.ok("backup", "erp", "--json")[0])["id"] for _ in range(count)]


def _three_days_of_backups(cli: Cli, pg: TempCluster, erp_db: str, seed: int) -> list[str]:
    """A backup of erp, then a day of work in it, three times; the backups' ids."""
    ids = []
    for day in (1, 2, 3):
        out, _ = cli.ok("backup", "erp", "--json")
        ids.append(json.loads(out)["id"])
        sample.day_of_work(pg.conninfo_kwargs(erp_db), seed=seed, day=day)
    return ids


def _refused_400_days_ahead(cli: Cli) -> str:
    """prune, and prune --dry-run, under a clock 400 days ahead: both refuse (exit 1), and
    neither repository nor the catalog's list has changed. What prune said, on one line."""
    before = {name: files_of(cli.root / name) for name in ("repo", "second")}
    listed, _ = cli.ok("list", "--json")
    refused = run_ahead(cli, 400, "prune")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    dry = run_ahead(cli, 400, "prune", "--dry-run")
    assert dry.returncode == 1 and "prune refused" in dry.stderr
    assert {name: files_of(cli.root / name) for name in ("repo", "second")} == before
    assert cli.ok("list", "--json")[0] == listed
    return " ".join(refused.stderr.split())


def test_prune_refuses_to_expire_by_age_when_the_clock_is_far_ahead(
    cli: Cli, pg: TempCluster, erp_db: str
) -> None:
    """A clock stepped 400 days ahead (a VM restored from a snapshot, a bad NTP step)
    made every backup 400 days old: prune expired all but the newest and min_keep ones
    and exited 0. Now it refuses and changes nothing: not the repositories, not the
    catalog; it says why and how to go on, and status is red for the backups' age under
    that clock. ``--trust-clock`` expires them."""
    ids = _three_days_of_backups(cli, pg, erp_db, seed=9)

    said = _refused_400_days_ahead(cli)
    assert "prune refused, nothing was deleted" in said
    assert "400 days after the newest backup completed" in said
    assert "1 backup would expire by age that had not expired then" in said
    assert "the clock is ahead, or no backup has completed since" in said
    assert "--trust-clock" in said and "clock_check_days" in said
    status = run_ahead(cli, 400, "status")
    assert "the newest logical backup completed 400 d ago" in " ".join(status.stdout.split())

    trusted = run_ahead(cli, 400, "prune", "--trust-clock", "--json")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert json.loads(trusted.stdout)["deleted"] == [ids[0]]
    assert cli.manifests("repo") == cli.manifests("second") == set(ids[1:])


def test_prune_still_expires_what_had_expired_when_the_newest_backup_completed(cli: Cli) -> None:
    """Backups stopped a month ago (the newest is 30 days old): what had expired when
    the newest completed (here 33 days ago) is still expired and deleted by the rules;
    only what expired since is held back (and then the whole prune refuses)."""
    ids = _backups(cli, 3)
    back_date(cli, ids[0], 40 * DAY)
    back_date(cli, ids[1], 34 * DAY)
    back_date(cli, ids[2], 30 * DAY)
    out, _ = cli.ok("prune", "--json")
    assert json.loads(out)["deleted"] == [ids[0]]
    assert cli.manifests("repo") == set(ids[1:])


def test_prune_of_a_monthly_installation_is_not_refused_between_its_backups(
    cli: Cli, pg: TempCluster, erp_db: str
) -> None:
    """An installation that backs up monthly says so in [rpo] (full_hours = 800): its
    newest backup is more than [retention] clock_check_days old for three weeks of every
    month and status is green. Its nightly prune refused ("the clock is ahead, or no
    backup has completed since") and alerted every night of those weeks, and expired
    nothing. The longest backup age [rpo] allows is now the bound when it is longer; a
    clock 400 days ahead is still refused."""
    with cli.config.open("a") as fh:
        fh.write("\n[rpo]\nfull_hours = 800\n")
    ids = []
    for day in range(1, 5):
        out, _ = cli.ok("backup", "erp", "--json")
        ids.append(json.loads(out)["id"])
        sample.day_of_work(pg.conninfo_kwargs(erp_db), seed=11, day=day)
    back_date(cli, ids[0], 40 * DAY)
    back_date(cli, ids[1], 15 * DAY)  # expired 8 days ago, after the newest completed
    back_date(cli, ids[2], 12 * DAY)
    back_date(cli, ids[3], 10 * DAY)  # the newest: 10 days old, within the RPO
    _, status, _ = cli.run("status", "--json")  # red: no restore test here
    (erp,) = json.loads(status)["databases"]
    ages = [i for i in erp["items"] if i["check"] == "rpo"]
    assert ages and all(i["level"] == "green" for i in ages), ages

    refused = run_ahead(cli, 400, "prune")
    assert refused.returncode == 1 and "prune refused" in refused.stderr, refused.stderr
    said = " ".join(refused.stderr.split())
    bound = "more than 33.3 days, the longest backup age [rpo] allows: erp: full_hours = 800)"
    assert bound in said, said

    out, _ = cli.ok("prune", "--json")
    assert sorted(json.loads(out)["deleted"]) == sorted(ids[:2])
    assert cli.manifests("repo") == cli.manifests("second") == set(ids[2:])


def test_a_backup_taken_after_the_clock_jumped_does_not_make_prune_trust_it(
    cli: Cli, pg: TempCluster, erp_db: str
) -> None:
    """The clock jumps 400 days ahead and the service's next scheduled backup completes
    "400 days later": the newest backup then agreed with the clock and the nightly prune
    expired the history. A backup that completed far longer after everything recorded
    before it than [retention] clock_check_days (or [rpo]) allows is no evidence of the
    time: prune refuses, changes nothing and says so, until --trust-clock."""
    ids = _three_days_of_backups(cli, pg, erp_db, seed=13)
    jumped = run_ahead(cli, 400, "backup", "erp", "--json", monotonic=True)
    assert jumped.returncode == 0, jumped.stdout + jumped.stderr
    ids.append(json.loads(jumped.stdout)["id"])

    said = _refused_400_days_ahead(cli)
    assert "prune refused, nothing was deleted: respaldo recorded nothing for 400 days" in said
    assert "(more than 7 days, [retention] clock_check_days = 7)" in said
    assert "the clock jumped ahead, or respaldo was stopped that long" in said
    assert "2 backups would expire by age that had not expired then" in said
    assert "--trust-clock" in said and "once backups have run 7 days at the new time" in said

    trusted = run_ahead(cli, 400, "prune", "--trust-clock", "--json")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert sorted(json.loads(trusted.stdout)["deleted"]) == sorted(ids[:2])


def mark_failed(cli: Cli, backup_id: str) -> None:
    """Make a backup's record a failed one (as a backup that failed then leaves)."""
    catalog = open_catalog(load_settings(cli.config).catalog.url)
    try:
        with catalog.begin() as session:
            record = session.get(BackupRecord, backup_id)
            assert record is not None
            record.status = BackupStatus.FAILED
            record.completed_at = None
    finally:
        catalog.close()


def test_backups_that_resume_after_a_month_of_failures_are_trusted(cli: Cli) -> None:
    """A real month without a completed backup, while the service ran and recorded the
    failures, is no silence: the first backup that completes ends the refusal, and
    prune expires what the rules expire."""
    ids = _backups(cli, 9)
    back_date(cli, ids[0], 40 * DAY)
    back_date(cli, ids[1], 39 * DAY)
    for n, backup_id in enumerate(ids[2:8]):
        back_date(cli, backup_id, (34 - 6 * n) * DAY)  # 34, 28, 22, 16, 10, 4 days ago
        mark_failed(cli, backup_id)
    back_date(cli, ids[8], DAY)
    out, _ = cli.ok("prune", "--json")
    assert ids[0] in json.loads(out)["deleted"]


def test_backups_at_a_new_time_confirm_it_once_they_span_the_bound(cli: Cli) -> None:
    """After a silence (a jump, or a machine really off for a month): one backup since is
    refused as evidence; backups recorded over more than clock_check_days since confirm
    the new time, and prune goes on by itself."""
    ids = _backups(cli, 4)
    back_date(cli, ids[0], 40 * DAY)
    back_date(cli, ids[1], 39 * DAY)
    back_date(cli, ids[2], 38 * DAY)
    back_date(cli, ids[3], DAY)
    code, _, err = cli.run("prune")
    assert code == 1 and "the clock jumped ahead, or respaldo was stopped" in err, err
    assert len(cli.manifests("repo")) == 4

    back_date(cli, ids[3], 9 * DAY)
    out, _ = cli.ok("backup", "erp", "--json")
    ids.append(json.loads(out)["id"])
    out, _ = cli.ok("prune", "--json")
    assert sorted(json.loads(out)["deleted"]) == sorted(ids[:3])


def test_a_prune_with_trust_clock_after_a_silence_is_remembered(cli: Cli) -> None:
    """A small office back from a three-week holiday (the machine off, nothing recorded):
    prune refuses and says '--trust-clock if the clock is right'. The user confirms it
    once; the next nights' scheduled prunes refused again, and alerted, each time another
    backup from before the holiday reached its expiry, until a week at the new time had
    passed. A prune that succeeded with --trust-clock after the silence ended confirms
    the new time for the prunes after it."""
    ids = _backups(cli, 6)
    # Before the holiday, 27-day retention: the first has expired by now, the others
    # expire over the next days. After it: the day before yesterday, yesterday, today.
    for backup_id, age in zip(ids[:3], (30, 26, 25), strict=True):
        back_date(cli, backup_id, age * DAY)
        catalog = open_catalog(load_settings(cli.config).catalog.url)
        try:
            with catalog.begin() as session:
                record = session.get(BackupRecord, backup_id)
                assert record is not None and record.completed_at is not None
                record.expires_at = record.completed_at + 27 * DAY
        finally:
            catalog.close()
    back_date(cli, ids[3], 2 * DAY)
    back_date(cli, ids[4], DAY)
    code, _, err = cli.run("prune")
    assert code == 1 and "the clock jumped ahead, or respaldo was stopped" in err, err
    said = " ".join(err.split())
    assert "--trust-clock ([retention] clock_check_days = 0 turns the check off), once:" in said
    assert "the prunes after it take the new time as right" in said

    out, _ = cli.ok("prune", "--trust-clock", "--json")
    assert json.loads(out)["deleted"] == [ids[0]]

    # Two days later, the service's backups and its nightly prune.
    for days in (1, 2):
        taken = run_ahead(cli, days, "backup", "erp", "--json", monotonic=True)
        assert taken.returncode == 0, taken.stdout + taken.stderr
    nightly = run_ahead(cli, 2, "prune", "--json")
    assert nightly.returncode == 0, nightly.stdout + nightly.stderr
    assert ids[1] in json.loads(nightly.stdout)["deleted"]
