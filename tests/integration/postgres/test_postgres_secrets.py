"""The password never leaks: not into argv, repr, str, logs, error messages or lasting files."""

from __future__ import annotations

import logging
import os
import stat
import traceback
from pathlib import Path
from typing import Literal

import pytest
from psycopg import sql
from pydantic import SecretStr
from sample.cluster import TempCluster

from respaldo.config import DatabaseSettings
from respaldo.errors import ConfigError, ConnectionFailed, PostgresError
from respaldo.postgres import (
    ConnInfo,
    child_connection,
    connect,
    exported_snapshot,
    pg_dump,
    psql,
    server_info,
)

pytestmark = pytest.mark.integration

WRONG = "Wr0ng-pass-7fd2"
AWKWARD = "p:a\\ss w0rd:'\"é"


def _everything_said_about(error: BaseException) -> str:
    said = [str(error), repr(error), getattr(error, "hint", ""), *map(str, error.args)]
    return "\n".join([*said, *traceback.format_exception(error)])


# --- ConnInfo ------------------------------------------------------------------------------


def test_a_password_in_a_uri_is_moved_out_of_everything_printable() -> None:
    info = ConnInfo.parse("postgresql://backup:s3cr%3Aet@db.example:5433/erp?sslmode=require")
    assert (info.host, info.port, info.user, info.dbname) == ("db.example", 5433, "backup", "erp")
    assert dict(info.params) == {"sslmode": "require"}
    assert info.password is not None and info.password.get_secret_value() == "s3cr:et"
    for text in (repr(info), str(info), info.dsn(), info.describe(), str(info.libpq_params())):
        assert "s3cr" not in text
    assert str(info) == "host=db.example port=5433 dbname=erp user=backup"


def test_key_value_dsn_and_an_explicit_password() -> None:
    info = ConnInfo.parse("host=db dbname=erp password=from_dsn", password=SecretStr("explicit"))
    assert info.password is not None and info.password.get_secret_value() == "explicit"
    assert info.user is None and info.port is None
    assert "user=(default)" in info.describe()
    assert info.with_dbname("postgres").dbname == "postgres"
    assert info.with_dbname("postgres").password == info.password


def test_an_unparsable_dsn_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigError) as caught:
        ConnInfo.parse(f"host=db password={WRONG} bogus")
    assert WRONG not in _everything_said_about(caught.value)
    with pytest.raises(ConfigError, match="single number"):
        ConnInfo.parse("host=a,b port=5432,5433")
    with pytest.raises(ConfigError, match="sslpassword"):
        ConnInfo.parse("host=a sslpassword=x")
    with pytest.raises(ValueError, match="password"):
        ConnInfo(host="a", params={"password": "x"})


def test_from_settings_reads_a_private_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "erp.pass"
    secret.write_text("de-fichero\n")
    secret.chmod(0o600)
    db = DatabaseSettings(name="erp", dsn="host=db dbname=erp user=backup", password_file=secret)
    info = ConnInfo.from_settings(db)
    assert info.password is not None and info.password.get_secret_value() == "de-fichero"
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by group or others"):
        ConnInfo.from_settings(db)


# --- what a child program gets -------------------------------------------------------------


def test_passfile_is_private_while_used_and_gone_after() -> None:
    info = ConnInfo(host="db", dbname="erp", user="backup", password=SecretStr(AWKWARD))
    base = {"PATH": "/usr/bin", "PGPASSWORD": "inherited", "PGPASSFILE": "/elsewhere"}
    with child_connection(info, base_env=base) as (args, env):
        passfile = Path(env["PGPASSFILE"])
        assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
        assert stat.S_IMODE(passfile.parent.stat().st_mode) == 0o700
        assert passfile.stat().st_uid == os.geteuid()
        # libpq's escaping: backslash and colon get a backslash.
        assert passfile.read_text() == "*:*:*:*:p\\:a\\\\ss w0rd\\:'\"é\n"
        assert "PGPASSWORD" not in env  # it would win over our passfile
        assert args == ["--dbname", "host=db user=backup dbname=erp"]
        assert env["PGCONNECT_TIMEOUT"] == "10"
    assert not passfile.exists()
    assert not passfile.parent.exists()


def test_passfile_is_removed_when_the_block_fails() -> None:
    info = ConnInfo(host="db", password=SecretStr("x"))
    with pytest.raises(RuntimeError), child_connection(info, base_env={}) as child:
        passfile = Path(child.env["PGPASSFILE"])
        assert "x" not in repr(child).replace("env=", "")
        raise RuntimeError
    assert not passfile.parent.exists()


def test_env_method_puts_the_password_in_the_child_env_only() -> None:
    info = ConnInfo(host="db", password=SecretStr("only-env"))
    with child_connection(info, method="env", base_env={}) as child:
        assert child.env["PGPASSWORD"] == "only-env"
        assert "PGPASSFILE" not in child.env
        assert "only-env" not in " ".join(child.args)
        assert "only-env" not in repr(child)
    assert "PGPASSWORD" not in os.environ or os.environ["PGPASSWORD"] != "only-env"


def test_a_password_with_a_line_break_goes_through_the_environment() -> None:
    # A passfile line cannot hold it; the environment can.
    info = ConnInfo(host="db", password=SecretStr("two\nlines"))
    with child_connection(info, base_env={}) as child:
        assert child.env["PGPASSWORD"] == "two\nlines"
        assert "PGPASSFILE" not in child.env


def test_without_a_password_the_callers_environment_decides() -> None:
    with child_connection(ConnInfo(host="db"), base_env={"PGPASSWORD": "mine"}) as child:
        assert child.env["PGPASSWORD"] == "mine"


@pytest.mark.parametrize("method", ["passfile", "env"])
def test_awkward_passwords_work_end_to_end(
    pg: TempCluster, method: Literal["passfile", "env"], request: pytest.FixtureRequest
) -> None:
    role = f"rara_{method}"
    pg.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(AWKWARD)
        )
    )
    request.addfinalizer(lambda: pg.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role))))
    info = ConnInfo(
        host=pg.host, port=pg.port, user=role, dbname="postgres", password=SecretStr(AWKWARD)
    )
    done = psql(info, sql="SELECT current_user;", tuples_only=True, method=method)
    assert done.text.strip() == role


def _proc_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def test_a_running_pg_dump_sees_a_passfile_and_no_password(pg: TempCluster, erp_db: str) -> None:
    password = pg.password.get_secret_value()
    with pg_dump(pg.conninfo(erp_db)) as dump:
        # The dump is bigger than a pipe buffer: pg_dump waits for us, alive, meanwhile.
        first = dump.stdout.read(10)
        cmdline = Path(f"/proc/{dump.pid}/cmdline").read_bytes().decode()
        environ = _proc_environ(dump.pid)
        passfile = Path(environ["PGPASSFILE"])
        assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
        assert password not in cmdline
        assert "PGPASSWORD" not in environ
        assert password not in " ".join(dump.argv)
        assert password not in repr(dump)
        while dump.stdout.read(1 << 16):
            pass
    assert first.startswith(b"PGDMP")
    assert not passfile.exists()


# --- errors and logs -----------------------------------------------------------------------


def test_wrong_password_is_connection_failed_and_says_nothing_of_it(
    pg: TempCluster, caplog: pytest.LogCaptureFixture
) -> None:
    info = ConnInfo(
        host=pg.host, port=pg.port, user=pg.superuser, dbname="postgres", password=SecretStr(WRONG)
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectionFailed) as caught:
        server_info(info)
    error = caught.value
    message = str(error)
    for part in (f"host={pg.host}", f"port={pg.port}", "dbname=postgres", f"user={pg.superuser}"):
        assert part in message
    assert "password authentication failed" in message
    assert "password" in error.hint
    assert WRONG not in _everything_said_about(error)
    assert WRONG not in caplog.text
    # Nothing chained: a psycopg error keeps the connection, and so the password, reachable.
    assert error.__cause__ is None and error.__context__ is None


def test_wrong_password_in_a_snapshot_and_in_pg_dump(pg: TempCluster, erp_db: str) -> None:
    info = pg.conninfo(erp_db)
    info = ConnInfo(
        host=info.host, port=info.port, user=info.user, dbname=erp_db, password=SecretStr(WRONG)
    )
    with pytest.raises(ConnectionFailed) as snap_error, exported_snapshot(info):
        pass
    assert WRONG not in _everything_said_about(snap_error.value)
    with pytest.raises(PostgresError) as dump_error, pg_dump(info) as dump:
        dump.stdout.read()
    assert dump_error.value.program == "pg_dump"
    assert "password authentication failed" in dump_error.value.stderr
    assert WRONG not in _everything_said_about(dump_error.value)


def test_the_password_is_scrubbed_from_a_childs_stderr(pg: TempCluster) -> None:
    password = pg.password.get_secret_value()
    # The server echoes the bad value (and psql the statement) into stderr.
    statement = sql.SQL("SELECT {}::int;").format(sql.Literal(password)).as_string()
    with pytest.raises(PostgresError) as caught:
        psql(pg.conninfo(), sql=statement)
    assert "invalid input syntax for type integer" in caught.value.stderr
    assert "********" in caught.value.stderr
    assert password not in _everything_said_about(caught.value)


def test_nothing_logged_while_working_holds_the_password(
    pg: TempCluster, erp_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    password = pg.password.get_secret_value()
    with caplog.at_level(logging.DEBUG):
        with connect(pg.conninfo(erp_db)) as conn:
            conn.execute("SELECT 1")
        with (
            exported_snapshot(pg.conninfo(erp_db)) as (snapshot_id, _),
            pg_dump(pg.conninfo(erp_db), snapshot=snapshot_id) as dump,
        ):
            while dump.stdout.read(1 << 16):
                pass
        psql(pg.conninfo(erp_db), sql="SELECT 1;")
    assert "running " in caplog.text  # the argv of each child is logged…
    assert password not in caplog.text  # …without the password
