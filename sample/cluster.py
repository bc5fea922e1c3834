"""A throwaway PostgreSQL cluster in a temporary directory, for tests, demos and benchmarks.

:meth:`TempCluster.create` runs ``initdb`` and ``pg_ctl start`` in a fresh temporary
directory. The server refuses to run as root, so when we are root every server program
runs as an unprivileged OS user (``postgres`` by default, created if missing) through
``runuser -u USER --`` with argument lists, never a shell string. The cluster listens on
127.0.0.1 only, on a free port, with scram-sha-256 password authentication for TCP and
the Unix socket (which lives in the temporary directory), and a superuser with a known
password. Durability is traded for speed (``fsync=off``): never keep data in it.

:meth:`TempCluster.destroy` stops it (``pg_ctl stop -m immediate``) and removes the
directory; it is idempotent and also registered with ``atexit`` as a safety net.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from pydantic import SecretStr

from respaldo.postgres import ConnInfo, find_bindir

DEFAULT_SETTINGS: Mapping[str, str] = {
    # Speed over durability: the cluster is thrown away after the run.
    "fsync": "off",
    "synchronous_commit": "off",
    "shared_buffers": "32MB",
    "max_connections": "60",
    # Room for physical backups (pg_basebackup) and WAL archiving tests.
    "wal_level": "replica",
    "max_wal_senders": "10",
    "lc_messages": "C",
}


Query = str | sql.SQL | sql.Composed
"""Test SQL: a plain string (trusted, written by the test) or a composed statement."""


def _query(query: Query) -> bytes | sql.SQL | sql.Composed:
    # Plain strings go as bytes: psycopg accepts those without the LiteralString check,
    # which is meant for application code, not for a test helper running fixed SQL.
    return query.encode() if isinstance(query, str) else query


class ClusterError(RuntimeError):
    """The temporary cluster could not be created, started or stopped; the log tail is in it."""


def _free_port() -> int:
    # The kernel picks a free ephemeral port; another process may still take it before the
    # server binds it, which is why start() retries with a fresh one.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quote_conf(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    # Two test workers may race here; whoever loses finds the user made by the other.
    subprocess.run(
        ["useradd", "--system", "--create-home", "--shell", "/bin/bash", name],
        capture_output=True,
        check=False,
    )
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ClusterError(f"OS user {name!r} does not exist and could not be created") from None


def _make_traversable(path: Path) -> None:
    # The server user must be able to walk down to its data directory; o+x on the parents
    # we own lets it pass through without letting it list or read them.
    for parent in path.parents:
        st = parent.stat()
        if not st.st_mode & stat.S_IXOTH and st.st_uid == os.geteuid():
            parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


@dataclass
class TempCluster:
    """A running throwaway cluster. Use :meth:`create`; call :meth:`destroy` when done."""

    base: Path
    bindir: Path
    port: int
    superuser: str
    password: SecretStr
    os_user: str | None
    host: str = "127.0.0.1"
    settings: dict[str, str] = field(default_factory=dict)
    initdb_options: tuple[str, ...] = ()

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "sock"

    @property
    def logfile(self) -> Path:
        return self.base / "server.log"

    # --- life cycle ------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        base_dir: Path | None = None,
        bindir: Path | str | None = None,
        superuser: str = "respaldo_admin",
        os_user: str = "postgres",
        settings: Mapping[str, str] | None = None,
        initdb_options: Sequence[str] = (),
    ) -> TempCluster:
        """initdb a new cluster in a temporary directory under ``base_dir`` and start it.

        ``initdb_options`` are added to initdb's (``--wal-segsize=64``, say). ``os_user``
        is used only when running as root. Raises ClusterError (with the
        server log) if anything fails; nothing is left behind then.
        """
        found = find_bindir(bindir)
        run_as = os_user if os.geteuid() == 0 else None
        base = Path(tempfile.mkdtemp(prefix="respaldo-pgcluster-", dir=base_dir))
        cluster = cls(
            base=base,
            bindir=found,
            port=0,
            superuser=superuser,
            password=SecretStr(secrets.token_urlsafe(18)),
            os_user=run_as,
            settings={**DEFAULT_SETTINGS, **(settings or {})},
            initdb_options=tuple(initdb_options),
        )
        try:
            cluster._initdb()
            cluster.start()
        except BaseException:
            cluster.destroy()
            raise
        atexit.register(cluster.destroy)
        return cluster

    def _run(
        self, argv: Sequence[str], *, what: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.os_user, "--"] if self.os_user else []
        done = subprocess.run(
            [*prefix, *argv],
            cwd=self.base,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env=None if env is None else {**os.environ, **env},
        )
        if done.returncode != 0:
            log_tail = ""
            with contextlib.suppress(OSError):
                log_tail = self.logfile.read_text(errors="replace")[-4000:]
            raise ClusterError(
                f"{what} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
                + (f"\n--- server log ---\n{log_tail}" if log_tail else "")
            )
        return done

    def _initdb(self) -> None:
        uid = gid = -1
        if self.os_user is not None:
            user = _ensure_os_user(self.os_user)
            uid, gid = user.pw_uid, user.pw_gid
            _make_traversable(self.base)
            os.chown(self.base, uid, gid)
        self.socket_dir.mkdir(mode=0o700)
        pwfile = self.base / "pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.password.get_secret_value() + "\n")
        if self.os_user is not None:
            os.chown(self.socket_dir, uid, gid)
            os.chown(pwfile, uid, gid)
        try:
            self._run(
                [
                    str(self.bindir / "initdb"),
                    f"--pgdata={self.datadir}",
                    f"--username={self.superuser}",
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                    *self.initdb_options,
                ],
                what="initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude_if_exists = 'respaldo_test.conf'\n")

    def _write_settings(self) -> None:
        values = {
            **self.settings,
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
        }
        text = "".join(f"{k} = {_quote_conf(v)}\n" for k, v in values.items())
        path = self.datadir / "respaldo_test.conf"
        path.write_text(text)
        if self.os_user is not None:
            user = pwd.getpwnam(self.os_user)
            os.chown(path, user.pw_uid, user.pw_gid)

    def start(self, *, attempts: int = 4) -> None:
        """Start the server on a free port, retrying with another port if it was taken."""
        error: ClusterError | None = None
        for _ in range(attempts):
            self.port = _free_port()
            self._write_settings()
            try:
                self._pg_ctl_start()
                return
            except ClusterError as exc:
                error = exc
                if "could not bind" not in str(exc) and "already in use" not in str(exc):
                    raise
        assert error is not None
        raise error

    def restart(self, *, log: Path | None = None) -> None:
        """Restart the running server as it is (its port and settings files untouched):
        for a setting only a restart applies. Its output goes to ``log`` (default: the
        cluster's log file)."""
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                f"--pgdata={self.datadir}",
                f"--log={log or self.logfile}",
                "--mode=fast",
                "--wait",
                "--timeout=60",
                "restart",
            ],
            what="pg_ctl restart",
        )

    def start_again(self) -> None:
        """Start a server :meth:`stop` stopped, on its port: clients that knew it find it
        again (:meth:`start` picks a new free port)."""
        self._pg_ctl_start()

    def recreate(self) -> None:
        """Stop the server, remove its data directory, initdb a new cluster there (a new
        system identifier, its WAL names beginning again) and start it on the same port
        with the same settings and superuser password: a production server re-created
        under the same name, as after a rebuild or a logical restore onto a fresh
        ``initdb``."""
        self.stop("fast")
        shutil.rmtree(self.datadir)
        shutil.rmtree(self.socket_dir)
        self._initdb()
        self._write_settings()
        self._pg_ctl_start()

    def _pg_ctl_start(self) -> None:
        """``pg_ctl start`` of the data directory as it is set up (port, settings)."""
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                f"--pgdata={self.datadir}",
                f"--log={self.logfile}",
                "--wait",
                "--timeout=60",
                "start",
            ],
            what="pg_ctl start",
        )

    def standby(self) -> TempCluster:
        """A streaming standby of this server, made as an administrator makes one
        (``pg_basebackup -R -X stream`` into a new directory: the same system identifier,
        settings, superuser and password), started on a free port. Promote it with
        :meth:`promote`; :meth:`destroy` it when done."""
        base = Path(tempfile.mkdtemp(prefix="respaldo-pgstandby-"))
        standby = replace(self, base=base, port=0)
        try:
            if self.os_user is not None:
                user = _ensure_os_user(self.os_user)
                _make_traversable(base)
                os.chown(base, user.pw_uid, user.pw_gid)
            standby.socket_dir.mkdir(mode=0o700)
            if self.os_user is not None:
                os.chown(standby.socket_dir, user.pw_uid, user.pw_gid)
            standby._run(
                [
                    str(self.bindir / "pg_basebackup"),
                    f"--host={self.host}",
                    f"--port={self.port}",
                    f"--username={self.superuser}",
                    f"--pgdata={standby.datadir}",
                    "--write-recovery-conf",
                    "--wal-method=stream",
                    "--checkpoint=fast",
                    "--no-sync",
                ],
                what="pg_basebackup",
                # The password through the environment, never the command line.
                env={"PGPASSWORD": self.password.get_secret_value()},
            )
            standby.start()
        except BaseException:
            standby.destroy()
            raise
        atexit.register(standby.destroy)
        return standby

    def promote(self) -> None:
        """Promote a standby (``pg_ctl promote --wait``): a new timeline."""
        self._run(
            [str(self.bindir / "pg_ctl"), f"--pgdata={self.datadir}", "--wait", "promote"],
            what="pg_ctl promote",
        )

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server if it runs. Idempotent."""
        if not (self.datadir / "postmaster.pid").exists():
            return
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                f"--pgdata={self.datadir}",
                f"--mode={mode}",
                "--wait",
                "stop",
            ],
            what="pg_ctl stop",
        )

    def destroy(self) -> None:
        """Stop the server and remove its directory. Idempotent; never raises."""
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
        atexit.unregister(self.destroy)

    def __enter__(self) -> TempCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    # --- reaching it -----------------------------------------------------------------------

    def conninfo_kwargs(self, dbname: str = "postgres") -> dict[str, Any]:
        """psycopg.connect() keywords for the superuser, password included."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.superuser,
            "password": self.password.get_secret_value(),
            "dbname": dbname,
        }

    def conninfo(self, dbname: str = "postgres", *, user: str | None = None) -> ConnInfo:
        """A respaldo ConnInfo for ``dbname`` as the superuser (or ``user``, no password)."""
        if user is not None:
            return ConnInfo(host=self.host, port=self.port, user=user, dbname=dbname)
        return ConnInfo(
            host=self.host,
            port=self.port,
            user=self.superuser,
            dbname=dbname,
            password=self.password,
        )

    def libpq_env(self, dbname: str = "postgres") -> dict[str, str]:
        """PG* environment variables that point libpq programs (and ``python -m sample``) here."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.superuser,
            "PGPASSWORD": self.password.get_secret_value(),
            "PGDATABASE": dbname,
        }

    def connect(
        self, dbname: str = "postgres", *, autocommit: bool = True
    ) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(autocommit=autocommit, **self.conninfo_kwargs(dbname))

    def execute(
        self, query: Query, params: Sequence[Any] | None = None, *, dbname: str = "postgres"
    ) -> None:
        """Run one statement (or several, without params) in autocommit mode."""
        with self.connect(dbname) as conn:
            conn.execute(_query(query), params)

    def query(
        self, query: Query, params: Sequence[Any] | None = None, *, dbname: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        """Run a query and return all its rows."""
        with self.connect(dbname) as conn:
            return conn.execute(_query(query), params).fetchall()

    def scalar(
        self, query: Query, params: Sequence[Any] | None = None, *, dbname: str = "postgres"
    ) -> Any:
        """The first column of the first row of a query."""
        rows = self.query(query, params, dbname=dbname)
        return rows[0][0] if rows else None
