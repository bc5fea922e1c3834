"""How to reach a database, and how to hand that to a child program without leaking the password.

A :class:`ConnInfo` is parsed from any libpq DSN (``host=db port=5432 dbname=erp``) or URI
(``postgresql://backup@db:5432/erp``). The password, if any, is kept apart as a
``SecretStr``: :meth:`ConnInfo.dsn` (what goes into argv), ``str``, ``repr`` and
:meth:`ConnInfo.describe` (what goes into messages) never contain it.

:func:`child_connection` turns a ConnInfo into what a child program needs: argv-safe
connection arguments and an environment in which libpq finds the password, either through
``PGPASSFILE`` naming a 0600 file in a private 0700 directory (the default: the
environment of a process can be read by its owner via /proc, and older systems showed it
to everyone in ``ps``) or through ``PGPASSWORD`` in the child's environment only.
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal, NamedTuple

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import SecretStr

from respaldo.childenv import libpq_environment
from respaldo.config import DatabaseSettings, read_secret_file
from respaldo.domain import validate_database_name
from respaldo.errors import ConfigError
from respaldo.privatedir import private_dir
from respaldo.redaction import replace_secret

log = logging.getLogger(__name__)

MASK = "********"

# Parameters held as fields of ConnInfo; everything else libpq accepts goes to ``params``.
_FIELDS = ("host", "port", "user", "dbname")
# A password-like parameter inside ``params`` would travel in argv; refuse it instead.
_REFUSED_PARAMS = {"sslpassword"}


@dataclass(frozen=True)
class ConnInfo:
    """Where a database is and who connects to it; the password is held apart.

    ``None`` fields are left to libpq's defaults (``PGHOST``, the Unix socket, port 5432,
    the OS user name). ``params`` holds any other libpq parameter (``sslmode``,
    ``application_name``, ``connect_timeout``, …). Instances are immutable and hashable.
    ``dbname`` must pass :func:`~respaldo.domain.validate_database_name` (ConfigError).
    """

    host: str | None = None
    port: int | None = None
    user: str | None = None
    dbname: str | None = None
    params: Mapping[str, str] = field(default_factory=dict, hash=False, compare=True)
    password: SecretStr | None = None

    def __post_init__(self) -> None:
        if self.dbname is not None:
            validate_database_name(self.dbname)
        keys = set(self.params)
        if "password" in keys:
            raise ValueError("pass the password as ConnInfo(password=...), not in params")
        if bad := keys & set(_FIELDS):
            raise ValueError(f"{', '.join(sorted(bad))} must be given as fields, not params")
        if bad := keys & _REFUSED_PARAMS:
            raise ConfigError(
                f"connection parameter {', '.join(sorted(bad))} is not supported",
                hint="it would be visible in the process list; use an unencrypted client key "
                "file with mode 0600 instead",
            )
        # Freeze a private copy so that a caller mutating its dict cannot change us.
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @classmethod
    def parse(cls, dsn: str, *, password: SecretStr | str | None = None) -> ConnInfo:
        """Parse a libpq key=value DSN or a ``postgresql://`` URI.

        A password found inside ``dsn`` is moved into :attr:`password`; an explicit
        ``password`` argument wins over it. Raises ConfigError for a string libpq cannot
        parse (the message does not quote it: it might hold a password), for a non-numeric
        or multi-host port, and for refused parameters.
        """
        try:
            parsed = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            raise ConfigError(
                "invalid PostgreSQL connection string",
                hint="use key=value pairs (host=db dbname=erp) or a postgresql:// URI",
            ) from None
        dsn_password = parsed.pop("password", None)
        values = {k: None if v is None else str(v) for k, v in parsed.items()}
        port_text = values.pop("port", None)
        port: int | None = None
        if port_text:
            try:
                port = int(port_text)
            except ValueError:
                raise ConfigError(
                    f"port {port_text!r} in the connection string is not a single number",
                    hint="multi-host connection strings are not supported",
                ) from None
        if password is None and dsn_password:
            password = str(dsn_password)
        return cls(
            host=values.pop("host", None) or None,
            port=port,
            user=values.pop("user", None) or None,
            dbname=values.pop("dbname", None) or None,
            params={k: v for k, v in values.items() if v is not None},
            password=SecretStr(password) if isinstance(password, str) else password,
        )

    @classmethod
    def from_settings(cls, db: DatabaseSettings) -> ConnInfo:
        """The ConnInfo of a configured database, with its password from settings or file.

        Raises ConfigError when the password file cannot be read or is readable by others.
        """
        password = db.password
        if password is None and db.password_file is not None:
            password = SecretStr(read_secret_file(db.password_file, "password_file"))
        return cls.parse(db.dsn, password=password)

    def with_dbname(self, dbname: str) -> ConnInfo:
        """The same server, user and password, another database."""
        return replace(self, dbname=dbname)

    def libpq_params(self) -> dict[str, str]:
        """All connection parameters except the password, as strings for libpq."""
        out = {k: str(v) for k in _FIELDS if (v := getattr(self, k)) is not None}
        out.update(self.params)
        return out

    def dsn(self) -> str:
        """A key=value DSN without the password: safe for argv and logs."""
        return make_conninfo("", **self.libpq_params())

    def describe(self) -> str:
        """``host=… port=… dbname=… user=…`` for messages; ``(default)`` where libpq decides."""
        return " ".join(
            f"{k}={v if (v := getattr(self, k)) is not None else '(default)'}"
            for k in ("host", "port", "dbname", "user")
        )

    def secrets(self) -> tuple[str, ...]:
        """The strings to scrub from any text a child program or server sends back."""
        if self.password is None:
            return ()
        raw = self.password.get_secret_value()
        forms = {raw, urllib.parse.quote(raw, safe=""), urllib.parse.quote_plus(raw)}
        return tuple(sorted((f for f in forms if f), key=len, reverse=True))

    def __str__(self) -> str:
        return self.describe()

    def __repr__(self) -> str:
        password = "SecretStr('**********')" if self.password is not None else "None"
        params = dict(self.params)
        return (
            f"ConnInfo(host={self.host!r}, port={self.port!r}, user={self.user!r}, "
            f"dbname={self.dbname!r}, params={params!r}, password={password})"
        )


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of every secret replaced by a mask.

    Defensive: PostgreSQL programs do not print passwords, but a server error can echo a
    statement or a value, and a message must never carry a password onward.
    """
    for secret in secrets:
        text = replace_secret(text, secret, MASK)  # a short one only where it stands alone
    return text


class ChildConnection(NamedTuple):
    """What a child program needs to connect: argv arguments and its environment."""

    args: list[str]
    env: dict[str, str]

    def __repr__(self) -> str:
        # The environment may hold PGPASSWORD: show only which variables are set.
        return f"ChildConnection(args={self.args!r}, env=<{len(self.env)} variables>)"


def _passfile_line(password: str) -> str:
    # One wildcard line: the file serves this one child, whatever host it resolves to.
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:*:{escaped}\n"


@contextmanager
def child_connection(
    conninfo: ConnInfo,
    *,
    method: Literal["passfile", "env"] = "passfile",
    base_env: Mapping[str, str] | None = None,
    tmp_dir: Path | None = None,
) -> Iterator[ChildConnection]:
    """Yield ``(args, env)`` for running a libpq program against ``conninfo``.

    ``args`` is ``["--dbname", dsn]`` with a password-free DSN. ``env`` holds only what a
    libpq program needs of ``base_env`` (default: ``os.environ``; see
    :func:`respaldo.childenv.libpq_environment`: never the repository passphrase or
    other ``RESPALDO_…`` variables), and where libpq will find the password:
    ``PGPASSFILE`` naming a 0600 file in a fresh 0700 directory, or ``PGPASSWORD``.
    Inherited ``PGPASSWORD``/``PGPASSFILE`` are dropped when a password is given, so ours
    is the one used. The passfile and its directory are removed when the context exits,
    so keep it open until the child has exited (libpq may reconnect late, e.g. the
    workers of ``pg_restore --jobs``). Without a password, the caller's ``PGPASSWORD``
    and ``PGPASSFILE`` are passed on (``~/.pgpass`` is found by libpq itself).

    ``PGCONNECT_TIMEOUT`` defaults to 10 seconds so that an unreachable server fails a
    backup promptly instead of hanging on TCP retries.
    """
    env = libpq_environment(base_env, keep_password=conninfo.password is None)
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    params = conninfo.libpq_params()
    if conninfo.password is None:
        yield ChildConnection(["--dbname", make_conninfo("", **params)], env)
        return
    # A passfile= parameter would override PGPASSFILE and hide our password from libpq.
    params.pop("passfile", None)
    # Only `child` (whose repr hides the environment) holds the password across the yield:
    # an exception in the caller's block passes through this frame, and traceback
    # printers that show local variables (rich, pytest -l) would print the others.
    child = ChildConnection(["--dbname", make_conninfo("", **params)], env)
    del env
    # A password with a line break cannot be written to a passfile; the environment can.
    has_line_break = any(c in conninfo.password.get_secret_value() for c in "\r\n")
    if method == "env" or has_line_break:
        child.env["PGPASSWORD"] = conninfo.password.get_secret_value()
        yield child
        return
    # A 0700 directory named after this process, so that the next respaldo removes it if
    # this one is killed before it can; O_EXCL with 0600 means no one else ever had it open.
    directory = private_dir("pgpass", tmp_dir)
    try:
        passfile = directory / "pgpass"
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_passfile_line(conninfo.password.get_secret_value()))
        child.env["PGPASSFILE"] = str(passfile)
        log.debug("passfile for %s at %s", conninfo, passfile)
        yield child
    finally:
        shutil.rmtree(directory, ignore_errors=True)
