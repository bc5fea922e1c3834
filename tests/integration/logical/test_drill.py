"""Restore tests (drills) against the real cluster: pass, fail for each reason, clean up."""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psutil  # type: ignore[import-untyped]
import psycopg
import pytest
from psycopg import sql

from respaldo.catalog import DrillRuns, Notifications, open_catalog
from respaldo.config import load_settings
from respaldo.domain import DrillStatus
from respaldo.operations.context import Context
from respaldo.repository.packs import pack_name
from respaldo.repository.reader import read_list
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import (
    backup_with_a_table_of,
    databases,
    flip_byte,
    waiting_on_a_role_lock,
)
from tests.integration.logical.test_quarantine_cli import _add_mirror
from tests.integration.majors import ON_EVERY_MAJOR
from tests.ports import closed_port

pytestmark = pytest.mark.integration

VALIDATIONS = """
[[databases]]
name = "erp_checked"
dsn = "{dsn}"
password_file = "{password_file}"

[[databases.validations]]
name = "at least one project"
sql = "SELECT count(*) > 0 FROM obras.proyectos"
expect = "True"

[[databases.validations]]
name = "{second_name}"
sql = "{second_sql}"
expect = "{second_expect}"
"""


def _add_checked(respaldo: Respaldo, name: str, query: str, expect: str) -> None:
    text = respaldo.config.read_text()
    erp = text[text.index('name = "erp"') :]
    dsn = erp.split('dsn = "', 1)[1].split('"', 1)[0]
    password_file = erp.split('password_file = "', 1)[1].split('"', 1)[0]
    respaldo.config.write_text(
        text
        + VALIDATIONS.format(
            dsn=dsn,
            password_file=password_file,
            second_name=name,
            second_sql=query,
            second_expect=expect,
        )
    )


def _drill(respaldo: Respaldo, *args: str) -> tuple[int, dict[str, object], str]:
    run = respaldo.run("drill", *args, "--json")
    return run.code, json.loads(run.out), run.err


def _scratch(respaldo: Respaldo) -> set[str]:
    return {d for d in databases(respaldo.pg) if d.startswith("respaldo_drill_")}


@contextmanager
def _backup_for_a_role_lock(respaldo: Respaldo, role: str) -> Iterator[str]:
    """:func:`backup_with_a_table_of` ``role`` (a drill of it can be held inside
    pg_restore by :func:`waiting_on_a_role_lock`); yields the backup's id. After the
    ``with``, the scratch databases a drill left are dropped before the role is: what the
    role owns there must go first."""
    with backup_with_a_table_of(respaldo.pg, respaldo, role) as backup_id:
        try:
            yield backup_id
        finally:
            for name in _scratch(respaldo):
                respaldo.pg.execute(
                    sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
                )


@ON_EVERY_MAJOR
def test_a_good_backup_passes_and_becomes_verified(respaldo: Respaldo) -> None:
    _add_checked(respaldo, "no invoice without a project", "SELECT 0", "0")
    backup_id = respaldo.backup("erp_checked")["id"]
    code, done, err = _drill(respaldo, "erp_checked", "--amcheck")
    assert code == 0, err
    # A database's test: one drill for each kind of its backups (here: logical only).
    assert (done["target"], done["passed"], done["errors"]) == ("erp_checked", True, [])
    drills: list[dict[str, Any]] = done["drills"]  # type: ignore[assignment]
    (result,) = drills
    assert result["passed"] is True and result["backupId"] == backup_id
    names = [c["name"] for c in result["checks"]]
    assert names == [
        "restore",
        "row counts",
        "large objects",
        "validation: at least one project",
        "validation: no invoice without a project",
        "pg_amcheck",
        "roles",
    ]
    assert isinstance(result["restoreSeconds"], float) and result["restoreSeconds"] > 0
    record = respaldo.run("show", backup_id, "--json").json()
    assert record["isVerified"] is True and record["verifiedAt"]
    history = respaldo.run("drills", "--json").json()
    assert history[0]["status"] == "passed" and history[0]["backupId"] == backup_id
    assert not _scratch(respaldo)


def test_a_failing_validation_query_fails_the_drill(respaldo: Respaldo) -> None:
    _add_checked(respaldo, "no invoice without a project", "SELECT 7", "0")
    backup_id = respaldo.backup("erp_checked")["id"]
    code, result, err = _drill(respaldo, backup_id)
    assert code == 3
    assert result["passed"] is False
    assert "FAIL validation: no invoice without a project: got '7', expected '0'" in err
    assert respaldo.run("show", backup_id, "--json").json()["isVerified"] is False
    assert not _scratch(respaldo)


def test_a_validation_query_cannot_write(respaldo: Respaldo) -> None:
    _add_checked(respaldo, "sneaky", "DELETE FROM obras.proyectos RETURNING 1", "1")
    respaldo.backup("erp_checked")
    code, _result, err = _drill(respaldo, "erp_checked")
    assert code == 3
    assert "read-only transaction" in err


def test_a_corrupt_chunk_fails_the_drill_naming_the_object(respaldo: Respaldo) -> None:
    backup_id = respaldo.backup()["id"]
    pack = respaldo.damage_dump(backup_id)
    code, result, _err = _drill(respaldo, backup_id)
    assert code == 3 and result["passed"] is False
    restore_check = result["checks"][0]  # type: ignore[index]
    assert restore_check["name"] == "restore" and restore_check["ok"] is False
    assert pack in restore_check["detail"] and backup_id in restore_check["detail"]
    assert respaldo.run("show", backup_id, "--json").json()["isVerified"] is False
    assert not _scratch(respaldo)


def test_a_backup_whose_roles_cannot_be_read_fails_the_drill(respaldo: Respaldo) -> None:
    # The drill restores into the server its roles exist on and read only the dump: a
    # backup whose roles' script no repository could give back passed and was marked
    # verified, and its restore onto a new server (restore --globals) then failed.
    backup_id = respaldo.backup()["id"]
    repo = respaldo.repository()
    [list_id] = repo.load_manifest(backup_id).stream("globals").lists
    # As many chunks as the server's roles make (other tests add theirs): the first.
    chunk_id, _ = read_list(repo, list_id)[0]
    location = repo.index.get(chunk_id)
    assert location is not None
    flip_byte(respaldo.repo_dir / pack_name(location.pack_id), location.offset + 40)

    code, result, err = _drill(respaldo, backup_id)

    assert code == 3, err
    assert result["passed"] is False
    checks = {c["name"]: c for c in result["checks"]}  # type: ignore[attr-defined]
    assert checks["restore"]["ok"] and checks["row counts"]["ok"]
    assert checks["roles"]["ok"] is False
    assert "stream 'globals'" in checks["roles"]["detail"], checks["roles"]
    assert respaldo.run("show", backup_id, "--json").json()["isVerified"] is False
    assert not _scratch(respaldo)


def test_a_row_count_mismatch_is_caught(respaldo: Respaldo) -> None:
    backup_id = respaldo.backup()["id"]
    # A backup whose snapshot recorded one invoice more than its dump holds: the same
    # streams under a new id, with a forged row count.
    counts = respaldo.repository().load_manifest(backup_id).meta["row_counts"]
    table = next(t for t, n in counts.items() if n > 0)

    def forge(meta: dict[str, Any]) -> None:
        meta["row_counts"][table] += 1

    forged = respaldo.as_older(backup_id, forge)
    code, _result, err = _drill(respaldo, forged)
    assert code == 3
    assert f"FAIL row counts: {table}:" in err
    assert not _scratch(respaldo)


def test_leftovers_of_a_killed_drill_are_removed(respaldo: Respaldo) -> None:
    respaldo.backup()
    # The state a drill killed with SIGKILL leaves: its run "running" under a dead pid,
    # and its scratch database.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    scratch = "respaldo_drill_deadbeef0000"
    respaldo.pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    catalog = open_catalog(f"sqlite:///{respaldo.catalog_file}")
    try:
        with catalog.begin() as session:
            run = DrillRuns(session).start(
                "20261128T000000Z-00000000",
                database="erp",
                scratch_name=scratch,
                now=datetime.now(UTC),
            )
            run.worker_pid = dead.pid
            run_id = run.id
    finally:
        catalog.close()
    code, _, err = _drill(respaldo, "erp")
    assert code == 0, err
    assert scratch not in databases(respaldo.pg)
    catalog = open_catalog(f"sqlite:///{respaldo.catalog_file}")
    try:
        with catalog.begin() as session:
            old = DrillRuns(session).get(run_id)
            assert old.status is DrillStatus.FAILED
            assert f"process {dead.pid} died" in (old.error_message or "")
    finally:
        catalog.close()


def test_a_drill_killed_mid_way_is_failed_at_the_next_start_through_its_job(
    respaldo: Respaldo, new_dbname: str
) -> None:
    """The drill is made to wait inside ``pg_restore`` (as the restore cancel test does):
    the backup has a table owned by a role that an uncommitted ``DROP ROLE`` holds
    locked, and giving the restored table its owner waits for that lock."""
    from tests.integration.logical.test_jobs import jobs

    role = f"bloqueo_{new_dbname}"
    with _backup_for_a_role_lock(respaldo, role):
        with waiting_on_a_role_lock(respaldo, role, "drill", "erp") as process:
            (job,) = [j for j in jobs(respaldo) if j["kind"] == "drill"]
            assert job["status"] == "running"
            children = psutil.Process(process.pid).children(recursive=True)
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
            for child in children:  # pg_restore runs in a session of its own
                child.kill()
        assert process.returncode == -signal.SIGKILL

        assert _scratch(respaldo)  # nobody has looked yet
        # The next start (any command): the drill's job lapsed, and its run with it;
        # the scratch database it left is dropped then, not at the next drill.
        run = respaldo.run_process("drills", "--json")
        assert "left by an interrupted restore or drill" in run.err, str(run)
        assert not _scratch(respaldo)
        history = run.json()
        reason = f"process {process.pid} died while the job ran (found at start-up)"
        assert (history[0]["status"], history[0]["errorMessage"]) == (
            "failed",
            f"job {job['id']} failed: {reason}",
        )
        (job,) = [j for j in jobs(respaldo) if j["kind"] == "drill"]
        assert (job["status"], job["error"]) == ("failed", reason)

        # The next drill passes.
        code, result, err = _drill(respaldo, "erp")
        assert code == 0, err
        assert result["passed"] is True
        assert not _scratch(respaldo)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
def test_a_drill_terminated_mid_way_cleans_up_as_for_ctrl_c(
    respaldo: Respaldo, new_dbname: str, sig: signal.Signals
) -> None:
    """SIGTERM (kill, timeout, systemd) or SIGHUP (the ssh session dropped) to a drill
    held inside pg_restore, as above. Before, the drill died at once (-15, -1): its
    pg_restore orphaned, the scratch database left, the job "running" until the next
    start called its process dead."""
    from tests.integration.logical.test_jobs import jobs

    role = f"bloqueo_{new_dbname}"
    with _backup_for_a_role_lock(respaldo, role):
        with waiting_on_a_role_lock(respaldo, role, "drill", "erp") as process:
            assert _scratch(respaldo)
            children = psutil.Process(process.pid).children(recursive=True)
            process.send_signal(sig)
            # A hang detector: the lock is held until the drill has ended.
            _, err = process.communicate(timeout=120)
            alive = [c for c in children if c.is_running() and c.status() != "zombie"]
            for child in alive:
                child.kill()
        assert process.returncode == 128 + sig, err
        assert err.splitlines()[-1] == f"respaldo: terminated ({sig.name})", err
        assert alive == []  # no pg_restore left loading
        (job,) = [j for j in jobs(respaldo) if j["kind"] == "drill"]
        assert (job["status"], job["error"]) == ("cancelled", f"terminated by {sig.name}")
        assert not _scratch(respaldo)


def test_nothing_to_test_is_a_clear_error(respaldo: Respaldo) -> None:
    run = respaldo.run("drill", "erp")
    assert run.code == 1
    assert (
        "no completed logical or physical backup of erp" in run.err
        and "respaldo backup erp" in run.err
    )
    assert io.StringIO(run.out).read() == ""


def test_a_validation_query_cannot_commit_its_way_out_of_read_only(respaldo: Respaldo) -> None:
    """Several statements in one ``sql`` ran in the simple-query protocol: a ``COMMIT``
    ended the read-only transaction and what followed wrote, and the query passed."""
    _add_checked(respaldo, "sneaky", "COMMIT; DELETE FROM obras.proyectos; SELECT 1", "1")
    respaldo.backup("erp_checked")
    code, result, err = _drill(respaldo, "erp_checked")
    assert code == 3 and result["passed"] is False
    assert "FAIL validation: sneaky:" in err and "one statement" in err
    assert not _scratch(respaldo)


def test_a_validation_query_cannot_lift_its_own_timeout(respaldo: Respaldo) -> None:
    """``SET statement_timeout = 0`` before the query lifted ``query_timeout_seconds``:
    a query could run for ever. (The sleep is longer than the timeout, never shorter:
    what a loaded machine changes cannot make this pass wrongly.)"""
    _add_checked(respaldo, "endless", "SET statement_timeout = 0; SELECT pg_sleep(2)", "")
    with respaldo.config.open("a") as config:
        config.write("\n[drill]\nquery_timeout_seconds = 1\n")
    respaldo.backup("erp_checked")
    code, result, err = _drill(respaldo, "erp_checked")
    assert code == 3 and result["passed"] is False
    assert "FAIL validation: endless:" in err and "one statement" in err


def test_a_validation_query_that_runs_too_long_is_cancelled(respaldo: Respaldo) -> None:
    _add_checked(respaldo, "slow", "SELECT pg_sleep(30)", "")
    with respaldo.config.open("a") as config:
        config.write("\n[drill]\nquery_timeout_seconds = 1\n")
    respaldo.backup("erp_checked")
    code, result, err = _drill(respaldo, "erp_checked")
    assert code == 3 and result["passed"] is False
    assert "FAIL validation: slow:" in err and "statement timeout" in err
    assert not _scratch(respaldo)


def test_a_drill_of_a_backup_whose_manifest_is_gone_is_a_failed_restore_test(
    respaldo: Respaldo,
) -> None:
    """The catalog says completed, the repository no longer has the backup: the restore
    test cannot restore it, and must say so where restore tests are looked at (its run,
    the backup's verified mark, status), not only as a failed job."""
    backup_id = respaldo.backup()["id"]
    code, result, err = _drill(respaldo, backup_id)
    assert code == 0 and result["passed"] is True, err
    (respaldo.repo_dir / "manifests" / backup_id).unlink()
    run = respaldo.run("drill", backup_id, "--json")
    assert run.code == 3, str(run)
    assert run.json()["passed"] is False
    history = respaldo.run("drills", "--json").json()
    assert (history[0]["status"], history[0]["backupId"]) == ("failed", backup_id)
    assert backup_id in history[0]["errorMessage"]
    assert respaldo.run("show", backup_id, "--json").json()["isVerified"] is False
    status = respaldo.run("status", "--json").json()
    (item,) = [
        i for db in status["databases"] for i in db["items"] if i["key"] == "restore_test:erp"
    ]
    assert item["level"] != "green", item


def test_a_huge_wrong_value_is_shown_cut_short(respaldo: Respaldo) -> None:
    """What a validation query got goes into the run's record, the alert and the report:
    a value of megabytes (a query returning a whole column aggregated) is cut short."""
    _add_checked(respaldo, "huge", "SELECT repeat('x', 1000000)", "y")
    backup_id = respaldo.backup("erp_checked")["id"]
    code, result, _err = _drill(respaldo, backup_id)
    assert code == 3 and result["passed"] is False
    (check,) = [c for c in result["checks"] if c["name"] == "validation: huge"]  # type: ignore[attr-defined]
    assert len(check["detail"]) < 1000, len(check["detail"])
    assert "1000000 characters" in check["detail"]
    history = respaldo.run("drills", "--json").json()
    assert len(json.dumps(history[0])) < 5000


def test_two_drills_at_once_both_pass_and_leave_nothing(respaldo: Respaldo) -> None:
    """Each drill sweeps abandoned scratch databases before it starts: the other's,
    held while it runs, is never one of them."""
    respaldo.backup()
    argv = respaldo.process_argv()
    drills = [
        subprocess.Popen(
            [*argv, "drill", "erp", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [process.communicate(timeout=300) for process in drills]
    for process, (out, err) in zip(drills, outcomes, strict=True):
        assert process.returncode == 0, err
        assert json.loads(out)["passed"] is True
    history = respaldo.run("drills", "--json").json()
    assert [run["status"] for run in history] == ["passed", "passed"]
    assert not _scratch(respaldo)


def test_a_cancelled_drill_is_cancelled_not_a_failed_restore_test(
    respaldo: Respaldo, new_dbname: str
) -> None:
    """``respaldo jobs cancel`` of a drill: the job ends cancelled, no alert says the
    restore test failed, and the backup keeps the verified mark its last drill gave it
    (someone stopped the test; nothing was found wrong with the backup). The drill waits
    inside pg_restore as in the kill test above."""
    from tests.integration.logical.test_jobs import jobs

    role = f"espera_{new_dbname}"
    with _backup_for_a_role_lock(respaldo, role) as backup_id:
        code, result, err = _drill(respaldo, backup_id)
        assert code == 0 and result["passed"] is True, err
        # A target nobody listens on: each alert still leaves its row in the catalog.
        with respaldo.config.open("a") as config:
            config.write(
                "\n[notifications]\ntimeout_seconds = 5\n[[notifications.targets]]\n"
                f'name = "down"\nurl = "json://127.0.0.1:{closed_port()}/x"\n'
            )
        with waiting_on_a_role_lock(respaldo, role, "drill", backup_id) as process:
            (job,) = [
                j for j in jobs(respaldo) if j["kind"] == "drill" and j["status"] == "running"
            ]
            cancel = respaldo.run("jobs", "cancel", str(job["id"]))
            assert cancel.code == 0, str(cancel)
            _out, err = process.communicate(timeout=120)
        (job,) = [j for j in jobs(respaldo) if j["id"] == job["id"]]
        assert job["status"] == "cancelled", (job, err)
        assert respaldo.run("show", backup_id, "--json").json()["isVerified"] is True
        with Context.open(load_settings(respaldo.config)) as ctx, ctx.catalog.read() as session:
            assert [n.kind for n in Notifications(session).list()] == []
        assert not _scratch(respaldo)
        # Nowhere a failed restore test: the history says cancelled, the status stays
        # green on the drill that passed, the month's report and the metrics count none.
        history = respaldo.run("drills", "--json").json()
        assert [run["status"] for run in history] == ["cancelled", "passed"], history
        report = respaldo.run("status", "--json").json()
        (db,) = [d for d in report["databases"] if d["database"] == "erp"]
        (test,) = [i for i in db["items"] if i["check"] == "restore_test"]
        assert test["level"] == "green", test
        month = datetime.now(UTC).strftime("%Y-%m")
        drills = respaldo.run("report", "drills", "--month", month, "--json").json()
        assert [(d["runs"], d["passed"], d["failed"]) for d in drills["databases"]] == [(1, 1, 0)]
        metrics = respaldo.run("metrics").out
        assert 'respaldo_restore_tests_total{database="erp",result="failed"} 0.0' in metrics
        assert 'respaldo_restore_test_last_passed{database="erp"} 1.0' in metrics


@pytest.mark.parametrize("mirror", [False, True], ids=["alone", "mirror-without-it"])
def test_a_drill_that_cannot_reach_the_backup_fails_without_judging_it(
    respaldo: Respaldo, mirror: bool
) -> None:
    """The repository that holds the backup does not open (a disk not mounted, S3 down;
    a mirror that opens has no copy yet): nothing is known of the backup, so the drill is
    an error (its job fails and says why), not a restore test that found it bad: the
    backup keeps its pass, and status does not judge the RPO as if it were lost."""
    backup_id = respaldo.backup()["id"]
    code, result, err = _drill(respaldo, backup_id)
    assert code == 0 and result["passed"] is True, err
    if mirror:
        _add_mirror(respaldo)  # made after the backup: it holds no copy of it
    respaldo.repo_dir.rename(respaldo.tmp / "unmounted")
    try:
        run = respaldo.run("drill", backup_id, "--json")
    finally:
        (respaldo.tmp / "unmounted").rename(respaldo.repo_dir)
    assert run.code not in (0, 3), str(run)
    assert respaldo.run("show", backup_id, "--json").json()["isVerified"] is True
    history = respaldo.run("drills", "--json").json()
    assert [h["status"] for h in history] == ["passed"], history


def test_drill_of_a_database_whose_test_could_not_run_still_prints_its_json(
    respaldo: Respaldo,
) -> None:
    """'drill erp --json' printed the round ({target, passed, drills, errors}) when one of
    two kinds could not run, and nothing at all on stdout when its only kind (or every
    kind) could not: a script reading the JSON got an empty document to parse. Now it is
    the round, its error naming the backup; the error and its hint on stderr, exit 1."""
    backup_id = respaldo.backup()["id"]
    respaldo.repo_dir.rename(respaldo.tmp / "unmounted")
    try:
        run = respaldo.run("drill", "erp", "--json")
    finally:
        (respaldo.tmp / "unmounted").rename(respaldo.repo_dir)
    assert run.code == 1, str(run)
    done = run.json()
    assert (done["target"], done["passed"], done["drills"]) == ("erp", False, []), done
    (error,) = done["errors"]
    assert error["backupId"] == backup_id and error["error"], done
    assert error["error"] in " ".join(run.err.split()) or error["error"].split(":")[0] in run.err
    assert "respaldo: error:" in run.err, run.err
    # Nothing was judged: the backup was never tested, no run recorded as passed or failed.
    assert respaldo.run("drills", "--json").json() == []
    # An error before any test is the command's, as for every command: no JSON.
    missing = respaldo.run("drill", "nosuchdb", "--json")
    assert missing.code == 1 and missing.out == "" and "respaldo: error:" in missing.err


@pytest.mark.parametrize(
    ("sig", "status"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (None, 1)],
    ids=["ctrl-c", "sigterm", "jobs-cancel"],
)
def test_drill_of_a_database_stopped_mid_test_prints_no_json(
    respaldo: Respaldo, new_dbname: str, sig: signal.Signals | None, status: int
) -> None:
    """'drill erp --json' stopped inside its test's pg_restore (Ctrl-C, SIGTERM, 'respaldo
    jobs cancel'): stdout is empty, nothing a script could take for the round's result
    (tests/unit/test_drill_json_ends.py: also after an earlier kind could not run); the
    exit status and stderr say why."""
    from tests.integration.logical.test_jobs import jobs

    role = f"corte_{new_dbname}"
    with (
        _backup_for_a_role_lock(respaldo, role),
        waiting_on_a_role_lock(respaldo, role, "drill", "erp", "--json") as process,
    ):
        if sig is None:
            (job,) = [
                j for j in jobs(respaldo) if j["kind"] == "drill" and j["status"] == "running"
            ]
            assert respaldo.run("jobs", "cancel", str(job["id"])).code == 0
        else:
            process.send_signal(sig)
        out, err = process.communicate(timeout=120)
    assert (process.returncode, out) == (status, ""), err
    assert err.splitlines()[-1].startswith("respaldo: "), err
    assert not _scratch(respaldo)


def test_a_backup_that_recorded_no_row_counts_does_not_claim_they_match(
    respaldo: Respaldo,
) -> None:
    """A backup from before respaldo counted rows: the drill's row-count check compares
    nothing, and says so, instead of "0 tables match the snapshot"."""
    backup_id = respaldo.backup()["id"]
    older = respaldo.as_older(backup_id, lambda meta: meta.pop("row_counts"))
    code, result, err = _drill(respaldo, older)
    assert code == 0, err
    (check,) = [c for c in result["checks"] if c["name"] == "row counts"]  # type: ignore[attr-defined]
    assert "match" not in check["detail"], check
    assert "recorded no row counts" in check["detail"], check


def test_a_backup_that_recorded_one_row_count_says_one_table_matches(
    respaldo: Respaldo,
) -> None:
    """The row-count check of a backup that counted one table said "1 tables match the
    snapshot" on the drill's record (the page, the report): one table, one match."""
    backup_id = respaldo.backup()["id"]

    def keep_one(meta: dict[str, Any]) -> None:
        first = sorted(meta["row_counts"])[0]
        meta["row_counts"] = {first: meta["row_counts"][first]}

    one = respaldo.as_older(backup_id, keep_one)
    code, result, err = _drill(respaldo, one)
    assert code == 0, err
    (check,) = [c for c in result["checks"] if c["name"] == "row counts"]  # type: ignore[attr-defined]
    assert check["detail"] == "1 table matches the snapshot", check
    (stored,) = [
        c for c in respaldo.run("drills", "--json").json()[0]["checks"] if c["name"] == "row counts"
    ]
    assert stored["detail"] == "1 table matches the snapshot", stored


def test_a_drill_that_needed_the_mirror_says_so_in_its_record(respaldo: Respaldo) -> None:
    """The primary's copy of a chunk is damaged, the mirror's whole: the backup restores
    (the drill passes), and its record (history, monthly report) names the damage, not
    only a warning printed by the run that nobody reads when the service ran it."""
    from tests.integration.logical.test_quarantine_cli import _add_mirror

    _add_mirror(respaldo)
    backup_id = respaldo.backup()["id"]
    pack = respaldo.damage_dump(backup_id)
    code, result, err = _drill(respaldo, backup_id)
    assert code == 0 and result["passed"] is True, err
    history = respaldo.run("drills", "--json").json()
    (copies,) = [c for c in history[0]["checks"] if c["name"] == "copies"]
    assert copies["ok"] is True
    assert "offsite" in copies["detail"] and "verify" in copies["detail"], copies
    assert pack in copies["detail"] or "1 chunk" in copies["detail"], copies


def test_a_drill_after_a_disaster_recovery_says_the_backup_is_in_the_mirror_alone(
    respaldo: Respaldo,
) -> None:
    """The primary repository was lost and recreated (docs/disaster-recovery.md, "Back to
    normal": an empty directory and 'respaldo init'); the older backups are in the mirror
    alone. A drill of one passes, and its record said that its chunks "missing or
    damaged in the repository read first came from another: run 'respaldo verify --all'
    and 'respaldo repair'", damage to repair where there is none."""
    from tests.integration.logical.test_quarantine_cli import _add_mirror

    offsite = _add_mirror(respaldo)
    backup_id = respaldo.backup()["id"]  # copied to offsite at its end
    shutil.rmtree(respaldo.repo_dir)
    respaldo.repo_dir.mkdir()
    assert respaldo.run("init").code == 0
    code, result, err = _drill(respaldo, backup_id)
    assert code == 0 and result["passed"] is True, err
    (copies,) = [c for c in result["checks"] if c["name"] == "copies"]  # type: ignore[attr-defined]
    assert copies["ok"] is True
    assert copies["detail"].startswith(
        f"the backup is not in the repository read first, only in file://{offsite}, which it "
        "was read from: as after a disaster recovery"
    ), copies
    assert "repair" not in copies["detail"], copies


def test_a_drill_whose_scratch_name_is_taken_leaves_that_database_alone(
    respaldo: Respaldo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scratch name drawn is one another drill holds (the other's database, live): the
    drill must not drop it when it cannot create its own under that name, and still runs."""
    from respaldo.operations import drill
    from respaldo.postgres.scratchdb import DRILL_PREFIX, HOLD_PREFIX, scratch_name

    pg = respaldo.pg
    backup_id = respaldo.backup()["id"]
    taken = DRILL_PREFIX + "0123456789ab"
    drawn = iter([taken])
    # The random draw, made to collide once: nothing else of the drill is changed.
    monkeypatch.setattr(drill, "scratch_name", lambda prefix: next(drawn, scratch_name(prefix)))
    with psycopg.connect(
        autocommit=True, application_name=HOLD_PREFIX + taken, **pg.conninfo_kwargs("postgres")
    ) as holder:
        holder.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(taken)))
        try:
            pg.execute("CREATE TABLE theirs (id int); INSERT INTO theirs VALUES (1)", dbname=taken)
            code, result, err = _drill(respaldo, backup_id)
            assert taken in databases(pg), err  # not dropped
            assert pg.scalar("SELECT count(*) FROM theirs", dbname=taken) == 1
            assert code == 0 and result["passed"] is True, err  # another name was drawn
            assert _scratch(respaldo) == {taken}
        finally:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            pg.execute(drop.format(sql.Identifier(taken)))


def test_a_drill_managed_from_a_read_only_maintenance_database_passes(
    respaldo: Respaldo,
) -> None:
    # The drill manages its throwaway database from "postgres": made read-only there
    # (ALTER DATABASE, or ALTER ROLE … IN DATABASE, default_transaction_read_only = on),
    # every restore test failed ('cannot execute CREATE DATABASE in a read-only
    # transaction') while the restore itself, whose sessions write whatever that default
    # says, restored.
    pg = respaldo.pg
    backup_id = respaldo.backup()["id"]
    pg.execute("ALTER DATABASE postgres SET default_transaction_read_only = on")
    try:
        code, result, err = _drill(respaldo, backup_id)
    finally:
        pg.execute(
            "ALTER DATABASE postgres RESET default_transaction_read_only", dbname=respaldo.dbname
        )
    assert code == 0, (err, result)
    assert result["passed"] is True
    assert not _scratch(respaldo)


def test_a_drill_of_a_backup_whose_manifest_the_primary_holds_damaged_says_damaged(
    respaldo: Respaldo,
) -> None:
    """The manifest is damaged in the primary and read whole from the mirror: damage, not
    a backup in the mirror alone. It was said to be "not in the repository read first ...
    as after a disaster recovery", which made the damage look expected."""
    offsite = _add_mirror(respaldo)
    backup_id = respaldo.backup()["id"]  # copied to offsite at its end
    (manifest,) = [p for p in (respaldo.repo_dir / "manifests").rglob(f"{backup_id}*")]
    flip_byte(manifest, manifest.stat().st_size // 2)
    code, result, err = _drill(respaldo, backup_id)
    assert code == 0 and result["passed"] is True, err
    (copies,) = [c for c in result["checks"] if c["name"] == "copies"]  # type: ignore[attr-defined]
    assert copies["detail"].startswith(
        "the backup's manifest is damaged in the repository read first; it was read from "
        f"file://{offsite}"
    ), copies
    assert "disaster recovery" not in copies["detail"], copies
    assert f"backup {backup_id} has a damaged manifest in " in err, err
    # What the check advises names it.
    verify = respaldo.run("verify", "--all")
    assert verify.code != 0 and backup_id in verify.err + verify.out, str(verify)
