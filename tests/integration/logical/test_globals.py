"""Roles travel in the globals stream and come back with ``restore --globals``."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.operations.backup import ROLES_WITHOUT_PASSWORDS
from tests.integration.logical.conftest import PASSPHRASE, Respaldo, password_blind_reader
from tests.integration.logical.support import databases, table_checksums
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROLE_PASSWORD = "Rol-Secreto-9c41e"


@pytest.fixture
def auditor(pg: TempCluster) -> Iterator[str]:
    """A login role of this test only, with a password; removed from the cluster after."""
    role = f"erp_auditor_{uuid.uuid4().hex[:8]}"
    yield role
    for dbname in databases(pg):
        if dbname.startswith(("erp_", "t_")):
            pg.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)), dbname=dbname)
    pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _role(pg: TempCluster, role: str) -> tuple[object, ...] | None:
    rows = pg.query(
        "SELECT rolcanlogin, rolconnlimit, rolpassword,"
        " pg_catalog.pg_has_role(rolname, 'erp_lectura', 'MEMBER')"
        " FROM pg_catalog.pg_authid WHERE rolname = %s",
        [role],
    )
    return rows[0] if rows else None


def test_a_dropped_role_comes_back_with_its_password_and_grants(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    auditor: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    source = respaldo.dbname
    role = sql.Identifier(auditor)
    pg.execute(
        sql.SQL(
            "CREATE ROLE {} LOGIN CONNECTION LIMIT 3 PASSWORD {}; GRANT erp_lectura TO {}"
        ).format(role, sql.Literal(ROLE_PASSWORD), role)
    )
    pg.execute(sql.SQL("GRANT SELECT ON finanzas.pagos TO {}").format(role), dbname=source)
    before = _role(pg, auditor)
    assert before is not None
    scram = str(before[2])
    assert scram.startswith("SCRAM-SHA-256$")

    # A role that stays, whose membership is revoked after the backup (an employee
    # who left): the restore leaves it as it is now, without that membership.
    stays = sql.Identifier(f"{auditor}_stays")
    pg.execute(sql.SQL("CREATE ROLE {} LOGIN; GRANT erp_lectura TO {}").format(stays, stays))
    try:
        backup_id = respaldo.backup()["id"]
        pg.execute(sql.SQL("REVOKE erp_lectura FROM {}").format(stays))
        pg.execute(sql.SQL("DROP OWNED BY {}").format(role), dbname=source)
        pg.execute(sql.SQL("DROP ROLE {}").format(role))
        assert _role(pg, auditor) is None

        run = respaldo.restore(backup_id, new_dbname, "--globals")
        assert _role(pg, f"{auditor}_stays") == (True, -1, None, False)
    finally:
        pg.execute(sql.SQL("DROP ROLE {}").format(stays))
    assert _role(pg, auditor) == before  # login, limit, the same password, memberships
    granted = pg.scalar(
        "SELECT pg_catalog.has_table_privilege(%s, 'finanzas.pagos', 'SELECT')",
        [auditor],
        dbname=new_dbname,
    )
    assert granted is True
    assert table_checksums(pg, new_dbname) == table_checksums(pg, source)
    # The roles that still existed are reported as such, and nothing else went wrong.
    warnings = [line for line in run.err_lines if line.startswith("warning:")]
    assert warnings, run.err
    assert all("exist already and were left unchanged" in line for line in warnings), run.err

    said = "\n".join([run.out, run.err, caplog.text])
    for secret in (ROLE_PASSWORD, scram, pg.password.get_secret_value(), PASSPHRASE):
        assert secret not in said
    assert "SCRAM-SHA-256$" not in said


def test_a_restore_that_needs_a_role_the_server_lacks_says_globals(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    """A table owned by a role that was dropped since the backup (or a server that never
    had it): pg_restore failed on "ALTER TABLE … OWNER TO", and the hint said only
    "restore again once the cause is dealt with"."""
    auditor = f"erp_owner_{uuid.uuid4().hex[:8]}"  # dropped by the test itself
    role = sql.Identifier(auditor)
    pg.execute(sql.SQL("CREATE ROLE {}").format(role))
    pg.execute(
        sql.SQL("ALTER TABLE finanzas.pagos OWNER TO {}").format(role), dbname=respaldo.dbname
    )
    backup_id = respaldo.backup()["id"]
    pg.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(role), dbname=respaldo.dbname)
    pg.execute(sql.SQL("DROP ROLE {}").format(role))

    run = respaldo.run("restore", backup_id, "--target-database", new_dbname)

    assert run.code == 1, str(run)
    said = " ".join(run.err.split())
    assert f'role "{auditor}" does not exist' in said, said
    assert (
        f"hint: nothing was changed: no database {new_dbname} was created; the backup names "
        f"role {auditor} (an owner, or a grantee of rights), which this server lacks: restore "
        "with --globals to create the backup's roles first, or create the role; --no-owner "
        "leaves out owners, not grants"
    ) in said, said
    assert new_dbname not in databases(pg)


def test_roles_restored_from_a_backup_without_passwords_are_named_with_what_to_do(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, auditor: str
) -> None:
    # The backup role could not read pg_authid, so the roles were dumped without their
    # passwords. After a disaster, --globals created the application's login role with
    # no password and said only "restored": the application could not log in, and
    # nothing had told the operator why.
    role = sql.Identifier(auditor)
    pg.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}; GRANT erp_lectura TO {}").format(
            role, sql.Literal(ROLE_PASSWORD), role
        )
    )
    with password_blind_reader(pg, respaldo):
        taken = respaldo.run("backup", "erp", "--json")
    assert taken.code == 0, taken.err
    backup_id = json.loads(taken.out)["id"]
    meta = respaldo.repository().load_manifest(backup_id).meta
    assert meta["globals_role_passwords"] is False
    # Said when the backup is taken (and kept with it), not only the day of the restore.
    assert meta["warnings"] == [ROLES_WITHOUT_PASSWORDS]
    assert f"warning: {ROLES_WITHOUT_PASSWORDS}" in " ".join(taken.err.split())
    pg.execute(sql.SQL("DROP ROLE {}").format(role))

    try:
        run = respaldo.restore(backup_id, new_dbname, "--globals")
        restored = _role(pg, auditor)
        assert restored is not None and restored[0] is True and restored[2] is None
        said = [line for line in run.err_lines if "without passwords" in line]
        assert len(said) == 1, run.err
        assert said[0].startswith("warning: 2 login roles were created without passwords")
        # The backup role came back too (it was dropped after the backup); the roles
        # that existed already, and erp_lectura (no LOGIN), are not named.
        created = said[0].split("): ", 1)[1].split(";")[0]
        assert created == ", ".join(sorted([auditor, "respaldo_lector"]))
        assert "ALTER ROLE" in said[0]
    finally:
        # --globals brought the dropped backup role back: the next test creates it anew.
        lector = sql.Identifier("respaldo_lector")
        pg.execute(sql.SQL("DROP OWNED BY {}").format(lector), dbname=new_dbname)
        pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(lector))


@pytest.fixture
def german(pg: TempCluster) -> Iterator[TempCluster]:
    """The session's cluster answering in German for this test (lc_messages reset at
    the end): its errors say FEHLER, not ERROR."""
    pg.execute("ALTER SYSTEM SET lc_messages = 'de_DE.UTF-8'")
    pg.execute("SELECT pg_catalog.pg_reload_conf()")
    try:
        # Proof that it answers in German: otherwise the test proves nothing.
        kwargs = {**pg.conninfo_kwargs("postgres"), "dbname": "no_such_database"}
        with pytest.raises(psycopg.OperationalError, match="existiert nicht"):
            psycopg.connect(**kwargs).close()
        yield pg
    finally:
        pg.execute("ALTER SYSTEM RESET lc_messages")
        pg.execute("SELECT pg_catalog.pg_reload_conf()")


def test_a_globals_statement_that_fails_on_a_german_server_is_a_warning(
    respaldo: Respaldo, german: TempCluster, new_dbname: str
) -> None:
    # A tablespace whose directory the restoring machine lacks cannot be created. Failures
    # were found by the word "ERROR" in psql's output: on a server saying "FEHLER" the
    # restore said nothing of it (nor of a lost membership, or a role setting).
    location = Path(tempfile.mkdtemp(prefix="tablespace-", dir=german.base))
    shutil.chown(location, "postgres")
    space = f"ts_{uuid.uuid4().hex[:8]}"
    german.execute(
        sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
            sql.Identifier(space), sql.Literal(str(location))
        )
    )
    try:
        backup_id = respaldo.backup()["id"]
    finally:
        german.execute(sql.SQL("DROP TABLESPACE {}").format(sql.Identifier(space)))
    location.rmdir()

    run = respaldo.restore(backup_id, new_dbname, "--globals")
    failed = [line for line in run.err_lines if "FEHLER" in line]
    assert len(failed) == 1, run.err
    assert failed[0].startswith("warning: ")
    assert str(location) in failed[0]
    # Said without its SQLSTATE, as an English server's failure reads.
    assert "58P01" not in failed[0]
    assert (
        german.scalar("SELECT count(*) FROM pg_catalog.pg_tablespace WHERE spcname = %s", [space])
        == 0
    )


def test_a_globals_restore_that_fails_after_creating_roles_names_them(
    respaldo: Respaldo, pg: TempCluster, auditor: str
) -> None:
    """restore --replace --globals created the role the server lacked, then the
    pre-restore hook failed: the hint said "nothing was changed: erp is as it was", and
    the role was there. (Any failure after the roles said so: a spooled dump cut short,
    properties refused; only pg_restore's own failure did not.) It now names the roles
    created; the database is as it was."""
    target = respaldo.dbname
    role = sql.Identifier(auditor)
    pg.execute(sql.SQL("CREATE ROLE {} LOGIN; GRANT erp_lectura TO {}").format(role, role))
    backup_id = respaldo.backup()["id"]
    pg.execute(sql.SQL("DROP ROLE {}").format(role))
    kept = table_checksums(pg, target)
    before = databases(pg)
    # erp_hooked: the same server, with pre_restore_hook = ["false"].
    argv = ["restore", backup_id, "--target-database", target, "--replace"]
    run = respaldo.run(*argv, "--globals", "--database", "erp_hooked")
    assert run.code == 1, str(run)
    assert run.err_lines[-2:] == [
        "respaldo: error: pre-restore hook false failed with status 1",
        f"respaldo: hint: the database {target} is as it was, but the backup's roles this "
        f"server lacked were created (--globals): {auditor}; fix pre_restore_hook and retry",
    ], run.err
    assert _role(pg, auditor) is not None
    assert table_checksums(pg, target) == kept and databases(pg) == before
    # Again: the role exists now, nothing is created, and nothing was changed is true.
    again = respaldo.run(*argv, "--globals", "--database", "erp_hooked")
    assert again.err_lines[-1] == (
        f"respaldo: hint: nothing was changed: {target} is as it was; "
        "fix pre_restore_hook and retry"
    ), again.err


def test_a_role_another_session_creates_meanwhile_is_not_named_as_created(
    respaldo: Respaldo, pg: TempCluster, auditor: str
) -> None:
    """The roles restore --globals created were told from the server's roles before and
    after its script: one another session created meanwhile (an administrator, a
    deployment) was named among "the backup's roles this server lacked were created",
    and a user cleaning up after the failed restore would drop it. Only roles the
    backup's script creates are named. The script is held at its CREATE ROLE by an
    uncommitted CREATE ROLE of the same name, which is then rolled back."""
    target = respaldo.dbname
    role = sql.Identifier(auditor)
    pg.execute(sql.SQL("CREATE ROLE {} LOGIN; GRANT erp_lectura TO {}").format(role, role))
    backup_id = respaldo.backup()["id"]
    pg.execute(sql.SQL("DROP ROLE {}").format(role))
    bystander = f"{auditor}_ajeno"
    kept = table_checksums(pg, target)
    argv = ["restore", backup_id, "--target-database", target, "--replace", "--globals"]
    try:
        with pg.connect(autocommit=False) as holder:
            holder.execute(sql.SQL("CREATE ROLE {}").format(role))  # the script waits on it
            process = subprocess.Popen(
                [*respaldo.process_argv(), *argv, "--database", "erp_hooked"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:

                def waiting() -> bool:
                    assert process.poll() is None, process.communicate()
                    return bool(
                        pg.scalar(
                            "SELECT count(*) FROM pg_catalog.pg_stat_activity"
                            " WHERE wait_event_type = 'Lock' AND query LIKE 'CREATE ROLE %%'"
                            " AND pid <> %s",
                            [holder.info.backend_pid],
                        )
                    )

                wait_for("the globals script's CREATE ROLE to wait for the lock", waiting)
                pg.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(bystander)))
            finally:
                holder.rollback()
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 1, err
        assert err.splitlines()[-1] == (
            f"respaldo: hint: the database {target} is as it was, but the backup's roles this "
            f"server lacked were created (--globals): {auditor}; fix pre_restore_hook and retry"
        ), err
        assert _role(pg, auditor) is not None and _role(pg, bystander) is not None
        assert table_checksums(pg, target) == kept
    finally:
        pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(bystander)))


def test_a_role_name_with_a_line_break_neither_hides_a_missing_role_nor_is_reset(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, auditor: str
) -> None:
    # The server's roles were listed by psql one per line: "jefe<newline>erp_app" counted
    # as the roles "jefe" and "erp_app", so the backup's CREATE ROLE erp_app was skipped
    # as "exists already". And the script was filtered line by line: the quoted name
    # spanning two lines matched no role, so its CREATE and ALTER ROLE ... PASSWORD ran
    # against the existing role, setting back its password to the backup's.
    app = sql.Identifier(auditor)
    boss_name = f"jefe\nrole {auditor}"
    boss = sql.Identifier(boss_name)
    pg.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'de-la-copia'").format(app))
    pg.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'de-la-copia'").format(boss))
    try:
        backup_id = respaldo.backup()["id"]
        pg.execute(sql.SQL("DROP ROLE {}").format(app))
        pg.execute(sql.SQL("ALTER ROLE {} PASSWORD 'de-hoy'").format(boss))
        today = _role(pg, boss_name)
        assert today is not None

        run = respaldo.restore(backup_id, new_dbname, "--globals")
        assert _role(pg, auditor) is not None, run.err  # the missing role came back
        assert _role(pg, boss_name) == today  # today's password, untouched
        warnings = [line for line in run.err_lines if line.startswith("warning:")]
        assert len(warnings) == 1, run.err  # no "role ... already exists" from psql
        assert "exist already and were left unchanged" in warnings[0], run.err
        assert repr(boss_name) in warnings[0], run.err  # the whole name, on its line
    finally:
        pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(boss))
