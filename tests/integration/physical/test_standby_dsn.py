"""The configured server is a standby: after a failover the database's name (DNS, the
config's ``dsn``) still leads to the old primary, made again as a standby of the new one,
or the config named a standby from the start. A standby with ``archive_mode = on``
archives nothing, so its statistics stay at "nothing archived, nothing waiting": the
status's WAL item was green, whatever its primary did (here ``archive_command = true``:
nothing stored). ``respaldo check`` warned; the status now says it too.
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from typing import Any

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.operations.backup_detail import backup_detail
from respaldo.operations.context import Context
from tests.integration.physical.conftest import SHOP, Archiving, archive_item
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def test_a_standby_behind_the_dsn(
    archiving_alone: Archiving, restored_servers: list[TempCluster]
) -> None:
    """Four checks of a dsn that leads to a standby, on one primary and one standby
    (each built its own before): in this order, as the last turns the primary's
    archiving into ``/bin/true``.

    1. A physical backup taken through it holds its ``standby.signal`` and its
       ``primary_conninfo`` (``pg_basebackup -R``). Restored with them, the copy started in
       standby mode, which wins over ``recovery.signal``: it streamed from the production
       primary as one more standby and never promoted, and the restore (and the restore
       test) waited an hour for the promotion before failing.
    2. A standby cannot read an unlogged table ('cannot access temporary or unlogged
       relations during recovery'), and pg_dump there leaves such tables' rows out. The
       backup's row count of it failed with the server's words alone and no way on: every
       logical backup through a replica's dsn failed once one unlogged table existed.
    3. A standby whose replay is paused, or delayed (``recovery_min_apply_delay``), holds
       the data of when it stopped, or of hours ago: its backups completed "now" (a row
       committed on the primary before them missing), the status green. Refused. So
       is one cut off from its primary, or whose replay stays stuck behind a standby
       query's lock; a logical backup begun before that stuck replay made it refused
       waited for ever behind replay's lock request: it fails after ``[rpo]
       standby_lock_wait_minutes``, saying which session replay waits for.
    4. The status's WAL item of a standby configured as the server is not green.

    And before 4.: the backups taken through the standby (the physical one of 1., a
    logical one once replay goes on) say so, with the time their data is of, in
    ``show`` and the API's and the page's detail; nothing said them apart from a
    primary's before. The primary's backup says nothing.
    """
    archiving = archiving_alone
    primary = archiving.pg
    first = archiving.backup()["id"]  # through the primary, as before a failover
    primary.execute("CREATE TABLE mark (v text); INSERT INTO mark VALUES ('1')", dbname=SHOP)
    standby = primary.standby()
    try:
        # 1. A physical backup of a standby restores as a primary.
        config = _dsn_to_standby(archiving, standby)
        backup = archiving.backup()["id"]
        archiving.config.write_text(config)
        primary.execute("INSERT INTO mark VALUES ('2')", dbname=SHOP)
        archiving.switch_and_archive()

        datadir = archiving.new_datadir()
        run = archiving.run("restore", backup, "--target-datadir", str(datadir))
        assert run.code == 0, str(run)
        assert not (datadir / "standby.signal").exists()
        assert (datadir / "recovery.signal").exists()
        restored = archiving.start_as_printed(run, restored_servers)
        assert restored.query("SELECT v FROM mark ORDER BY v", dbname=SHOP) == [("1",), ("2",)]
        assert restored.scalar("SELECT count(*) FROM pg_stat_wal_receiver") == 0

        # 2. A logical backup through a standby with an unlogged table fails saying why.
        primary.execute(
            "CREATE UNLOGGED TABLE sesiones (id int PRIMARY KEY);"
            "INSERT INTO sesiones SELECT generate_series(1, 500)",
            dbname=SHOP,
        )
        _dsn_to_standby(archiving, standby)
        run = archiving.run("backup", "erp", "--json")
        listed = archiving.run("list", "--database", "erp", "--type", "full", "--json")
        assert run.code != 0, str(run)
        lines = run.err.strip().splitlines()
        error = [line for line in lines if line.startswith("respaldo: error: ")]
        hint = [line for line in lines if line.startswith("respaldo: hint: ")]
        assert len(error) == 1 and "cannot access temporary or unlogged relations" in error[0]
        assert len(hint) == 1, run.err
        assert "on a standby (a server in recovery) unlogged tables cannot be read" in hint[0]
        assert "a dsn that leads to the primary" in hint[0]
        assert "Traceback" not in run.err
        assert listed.code == 0, str(listed)
        assert [b["status"] for b in listed.json()] == ["failed"]

        # 3. Nor one of a standby that stands still, or lags on purpose, physical or logical.
        standby.scalar("SELECT pg_wal_replay_pause()")
        for kind in ("incremental", "full"):
            run = archiving.run("backup", "erp", "--type", kind)
            assert run.code == 1, str(run)
            assert "the server is a standby whose WAL replay is paused" in run.err, str(run)
            assert "a dsn that leads to the primary" in run.err, str(run)
        standby.scalar("SELECT pg_wal_replay_resume()")
        standby.execute("ALTER SYSTEM SET recovery_min_apply_delay = '1h'")
        standby.scalar("SELECT pg_reload_conf()")
        run = archiving.run("backup", "erp", "--type", "incremental")
        assert run.code == 1, str(run)
        assert "a standby that applies WAL only 1h after it was written" in run.err, str(run)
        standby.execute("ALTER SYSTEM RESET recovery_min_apply_delay")
        standby.scalar("SELECT pg_reload_conf()")

        # Nor one cut off from its primary: a row committed there never reaches it.
        config = archiving.config.read_text()
        archiving.config.write_text(f"{config}\n[rpo]\nstandby_lag_minutes = 0.01\n")  # 0.6 s
        upstream = str(standby.scalar("SHOW primary_conninfo"))
        _set(standby, "primary_conninfo", upstream.replace(f"port={primary.port}", "port=1"))
        wait_for("the standby to lose its primary", lambda: not _receiver(standby))
        primary.execute("INSERT INTO mark VALUES ('3')", dbname=SHOP)
        _wait_replayed_before(standby)
        for kind in ("incremental", "full"):
            run = archiving.run("backup", "erp", "--type", kind)
            assert run.code == 1, str(run)
            assert "a standby that is not connected to its primary" in run.err, str(run)
            assert "more than [rpo] standby_lag_minutes = 0.01" in run.err, str(run)
        _said_by_check_and_status(archiving, "not connected to its primary", "red")
        _set(standby, "primary_conninfo", upstream)
        wait_for("the standby to stream again", lambda: _receiver(standby))

        # Nor one whose replay is stuck behind what it streams: a query there holds a
        # lock replay waits for (max_standby_streaming_delay = -1).
        _set(standby, "max_standby_streaming_delay", "-1")
        with standby.connect(SHOP, autocommit=False) as reader:
            reader.execute("SELECT count(*) FROM mark")
            primary.execute("BEGIN; LOCK TABLE mark; COMMIT", dbname=SHOP)
            primary.execute("INSERT INTO mark VALUES ('4')", dbname=SHOP)
            end = str(primary.scalar("SELECT pg_current_wal_insert_lsn()"))
            wait_for(
                "the standby to receive it",
                lambda: bool(standby.scalar("SELECT pg_last_wal_receive_lsn() >= %s", (end,))),
            )
            _wait_replayed_before(standby)
            run = archiving.run("backup", "erp", "--type", "full")
            assert run.code == 1, str(run)
            assert "a standby whose replay is behind what it received" in run.err, str(run)
            assert "max_standby_streaming_delay" in run.err, str(run)
            _said_by_check_and_status(archiving, "replay is behind what it received", "amber")

            # Begun within standby_lag_minutes of replay getting stuck (so not refused),
            # a logical backup waited for ever behind replay's lock request: its locks
            # are waited for standby_lock_wait_minutes, then it fails saying why. In a
            # process of its own, bounded here: without the limit it never returns.
            archiving.config.write_text(f"{config}\n[rpo]\nstandby_lock_wait_minutes = 0.01\n")
            done = _bounded(archiving, "backup", "erp", "--type", "full")
            assert done.returncode == 1, done
            said = done.stderr
            assert "a standby whose WAL replay blocks a table's lock the backup needs" in said
            assert "longer than [rpo] standby_lock_wait_minutes = 0.01" in said, said
            assert "waiting for a lock on table mark, held by the standby's session" in said
            holder = reader.info.backend_pid
            assert f"session {holder} (user " in said, said
            assert "(max_standby_streaming_delay = -1)" in said, said
            assert f"SELECT pg_terminate_backend({holder})" in said, said
            assert "Traceback" not in said, said
            listed = archiving.run("list", "--database", "erp", "--type", "full", "--json")
            newest = listed.json()[0]
            assert newest["status"] == "failed", newest
            assert "WAL replay blocks a table's lock" in newest["errorMessage"], newest
            assert "completed" not in [b["status"] for b in listed.json()], listed
        standby.execute("ALTER SYSTEM RESET max_standby_streaming_delay")
        standby.scalar("SELECT pg_reload_conf()")
        archiving.config.write_text(config)

        # Once replay goes on, the same standby's logical backup completes (its locks'
        # limit at its default); it and the physical one of 1. say what they are of:
        # a standby, and the time of its last replayed transaction. The primary's say
        # nothing.
        primary.execute("DROP TABLE sesiones", dbname=SHOP)  # unlogged: 2.
        _dsn_to_standby(archiving, standby)
        replayed = standby.scalar("SELECT pg_last_xact_replay_timestamp()")
        run = archiving.run("backup", "erp", "--type", "full", "--json")
        assert run.code == 0, str(run)
        logical = run.json()["id"]
        for taken in (logical, backup):
            _shows_standby(archiving, taken, replayed if taken == logical else None)
        _shows_standby(archiving, first, False)

        # 4. A standby configured as the server is not green (the dsn still leads to it).
        primary.execute("ALTER SYSTEM SET archive_command = '/bin/true'")
        primary.scalar("SELECT pg_reload_conf()")
        primary.scalar("SELECT pg_switch_wal()")
        run = archiving.run("status", "--json")
        item = archive_item(run)
        assert item["level"] == "amber", item
        assert item["reason"].startswith("the server is a standby: it archives no WAL"), item
        assert "set the database's dsn to the primary" in item["reason"]
        check = archiving.run("check", "erp")
        assert "the server is a standby" in check.err
    finally:
        standby.destroy()


def _bounded(archiving: Archiving, *args: str) -> subprocess.CompletedProcess[str]:
    """``respaldo ARGS`` in a process of its own (as this user, whose repository cache
    it is), which a hang cannot keep past this test's own bound (far above the seconds
    it takes)."""
    return subprocess.run(
        [archiving.respaldo_command, "--config", str(archiving.config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _shows_standby(archiving: Archiving, backup_id: str, as_of: datetime | bool | None) -> None:
    """``show``, and the API's and the page's detail (one model), of ``backup_id``: taken
    from a standby whose data is as of ``as_of`` or later (None: not checked; a standby
    made after the primary's last commit has replayed none), or, with False, nothing of
    a standby."""
    run = archiving.run("show", backup_id)
    assert run.code == 0, str(run)
    with Context.open(archiving.settings()) as ctx:
        summary = backup_detail(ctx, backup_id).manifest
    assert summary is not None
    if as_of is False:
        assert "standby" not in run.out, run.out
        assert not summary.from_standby and summary.standby_data_as_of is None, summary
        return
    assert summary.from_standby, summary
    assert "taken from a standby" in run.out, run.out
    if isinstance(as_of, datetime):
        assert summary.standby_data_as_of is not None, summary
        assert summary.standby_data_as_of >= as_of, (summary, as_of)
        when = summary.standby_data_as_of.strftime("%Y-%m-%d %H:%M:%S UTC")
        assert f"taken from a standby, data as of {when}" in run.out, run.out


def _set(standby: TempCluster, setting: str, value: str) -> None:
    standby.execute(
        sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(setting), sql.Literal(value))
    )
    standby.scalar("SELECT pg_reload_conf()")


def _receiver(standby: TempCluster) -> bool:
    """A WAL receiver is connected to the primary."""
    return bool(standby.scalar("SELECT count(*) FROM pg_stat_wal_receiver"))


def _wait_replayed_before(standby: TempCluster) -> None:
    """Until the standby's last replayed transaction is older than the test's
    ``standby_lag_minutes`` (0.6 s)."""
    wait_for(
        "the standby's last replayed transaction to be 1 s old",
        lambda: bool(
            standby.scalar("SELECT clock_timestamp() - pg_last_xact_replay_timestamp() > '1 s'")
        ),
    )


def _said_by_check_and_status(archiving: Archiving, said: str, level: str) -> None:
    """``check`` and the status's server item say why backups of the standby are refused."""
    check = archiving.run("check", "erp", "--json")
    (finding,) = [f for f in check.json() if f["check"] == "standby replay"]
    assert finding["status"] == "missing" and said in finding["value"], finding
    status = archiving.run("status", "--json")
    databases: list[dict[str, Any]] = status.json()["databases"]
    (item,) = [i for db in databases for i in db["items"] if i["check"] == "server"]
    assert item["level"] == level and said in item["reason"], item


def _dsn_to_standby(archiving: Archiving, standby: TempCluster) -> str:
    """Point respaldo's dsn at ``standby`` once it has replayed the primary's WAL so far;
    returns the configuration as it was, to put back."""
    primary = archiving.pg
    config = archiving.config.read_text()
    archiving.config.write_text(config.replace(f":{primary.port}/", f":{standby.port}/"))
    end = str(primary.scalar("SELECT pg_current_wal_insert_lsn()"))
    wait_for(
        "the standby to replay the primary's WAL",
        lambda: bool(standby.scalar("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (end,))),
    )
    return config
