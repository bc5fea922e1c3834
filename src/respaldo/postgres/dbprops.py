"""A database's own properties: owner, grants, settings, comment, as pg_dump records them.

A ``pg_dump -Fc`` archive (PostgreSQL 11 and later) holds, besides the database's
contents, entries about the database itself: ``DATABASE`` (``CREATE DATABASE`` and
``ALTER DATABASE … OWNER TO``), ``DATABASE PROPERTIES`` (``CONNECTION LIMIT``,
``IS_TEMPLATE``, ``ALTER DATABASE … SET`` and ``ALTER ROLE … IN DATABASE … SET``), and the
``COMMENT``, ``ACL`` (``GRANT``/``REVOKE … ON DATABASE``) and ``SECURITY LABEL`` entries
tagged ``DATABASE <name>``. pg_restore prints them only with ``--create``, and a restore
into an existing (staging) database does not use ``--create``: without this module they
would be lost, and a restored database would let every role connect.

:func:`read_properties` lets pg_restore itself render them (``--create --list``, then
``--create --use-list --file=-`` on just those entries), reading only the archive's table
of contents, and :func:`parse_properties` turns that SQL into statements aimed at any
database name: each statement must be one of the known forms that name the database
right after a fixed prefix, where the name is replaced. Anything else is refused rather
than run against the wrong database. :func:`apply_properties` runs them in one
transaction (or rolls them back: a dry run that finds a missing role before an hour of
restoring).

:func:`database_privileges` and :func:`revoke_privilege` serve ``restore --replace``:
what the database being replaced allowed is a ceiling for the one swapped in.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psycopg
from psycopg import sql

from respaldo.errors import QueryFailed
from respaldo.postgres.commands import RunningCommand, pg_restore_offline
from respaldo.postgres.connection import ConnInfo
from respaldo.postgres.encodings import decode_script
from respaldo.postgres.server import (
    LOCALE_OPTIONS,
    LOCALE_PROVIDERS,
    Connection,
    _guarded,
    connect,
    session,
)

# A line of ``pg_restore --list``: "3340; 0 0 COMMENT - DATABASE "My DB" owner1".
_LIST_LINE = re.compile(
    r"^\d+; \d+ \d+ (?P<desc>DATABASE PROPERTIES|DATABASE|ACL|COMMENT|SECURITY LABEL) - "
    r"(?P<rest>.*)$"
)
# An identifier as pg_dump writes one: quoted (doubled quotes inside) or bare.
_IDENT = r'(?:"(?:[^"]|"")+"|[^\s";,()]+)'
# Statements that name the database: (prefix)(name)(rest). The name is replaced.
_RETARGETED = tuple(
    re.compile(rf"^({prefix})({_IDENT})(\s.*|)$", re.DOTALL)
    for prefix in (
        r"ALTER DATABASE ",
        r"COMMENT ON DATABASE ",
        rf"SECURITY LABEL FOR {_IDENT} ON DATABASE ",
        rf"ALTER ROLE {_IDENT} IN DATABASE ",
        r"(?:GRANT|REVOKE) (?:GRANT OPTION FOR )?[A-Z][A-Z ,]*? ON DATABASE ",
    )
)
# Session settings pg_restore puts first, and the grantor switches of ACL entries:
# they name no database and run as they are.
_SESSION = re.compile(
    r"^(?:SET |RESET |SELECT pg_catalog\.set_config\()", re.DOTALL | re.IGNORECASE
)
_CREATE = re.compile(rf"^CREATE DATABASE ({_IDENT})\s", re.DOTALL)
_SET_PARAMETER = re.compile(r"^SET ([A-Za-z_][A-Za-z0-9_.]*) = ", re.IGNORECASE)


def quote_ident(name: str) -> str:
    """``name`` as an always-quoted SQL identifier. Pure."""
    return '"' + name.replace('"', '""') + '"'


def _unquote(ident: str) -> str:
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident


def database_entries(listing: str) -> list[str]:
    """The lines of a ``pg_restore --create --list`` output that are about the database
    itself (not its contents), for ``--use-list``. Pure."""
    kept = []
    for line in listing.splitlines():
        match = _LIST_LINE.match(line)
        if match is None:
            continue
        desc, rest = match.group("desc"), match.group("rest")
        if desc.startswith("DATABASE") or rest.startswith("DATABASE "):
            kept.append(line)
    return kept


def _quoted_end(text: str, start: int, quote: str, backslashes: bool) -> int:
    """Index after the literal or quoted identifier opened at ``start``."""
    i = start + 1
    while i < len(text):
        c = text[i]
        if backslashes and c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    raise ValueError("a quoted string or name does not end")


def split_statements(script: str) -> list[str]:
    """The SQL statements of a pg_restore script, without comments and psql meta-commands.

    Quotes (``'…'``, ``E'…'``, ``"…"``) are respected, so a ``;`` or ``--`` inside a
    comment's text does not split it. A backslash outside quotes inside a statement (a
    psql meta-command hidden in it) is refused with ValueError, as is an unterminated
    statement. Pure.
    """
    statements: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(script):
        c = script[i]
        if not "".join(current).strip() and c == "\\":
            # A psql meta-command line between statements (\connect, \restrict, …).
            end = script.find("\n", i)
            i = len(script) if end < 0 else end + 1
            continue
        if script.startswith("--", i):
            end = script.find("\n", i)
            i = len(script) if end < 0 else end + 1
            continue
        if c in "'\"":
            escape = c == "'" and i > 0 and script[i - 1] in "Ee"
            end = _quoted_end(script, i, c, escape)
            current.append(script[i:end])
            i = end
            continue
        if c == "\\":
            raise ValueError("a backslash outside quotes inside a statement")
        if c == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(c)
        i += 1
    if "".join(current).strip():
        raise ValueError("the last statement does not end with ';'")
    return [s for s in statements if s]


@dataclass(frozen=True)
class DatabaseProperties:
    """The statements that give a database the backed-up one's properties.

    ``source`` is the backed-up database's name. Each statement is held as the text
    before and after the database's name (``after`` None: a session statement without
    it); :meth:`statements_for` puts any name in.
    """

    source: str | None
    parts: tuple[tuple[str, str | None], ...]
    create_options: tuple[tuple[str, str], ...] = ()
    """The encoding and locale options of the dump's ``CREATE DATABASE`` (option, value):
    the database must be created with them (:func:`locale_differences`,
    :func:`respaldo.postgres.server.create_database`)."""

    def statements_for(self, name: str) -> list[str]:
        """The statements, naming database ``name``."""
        quoted = quote_ident(name)
        return [
            before if after is None else before + quoted + after for before, after in self.parts
        ]

    @property
    def empty(self) -> bool:
        return all(after is None for _, after in self.parts)


def parse_properties(script: str) -> DatabaseProperties:
    """Turn pg_restore's SQL for the database entries into :class:`DatabaseProperties`.

    ``CREATE DATABASE`` is left out (the database exists: respaldo created it). Every
    other statement must be a session setting or one of the known forms naming the
    database; all must name the same database. ValueError otherwise, naming the
    statement's start. Pure.
    """
    statements = split_statements(script)
    source: str | None = None
    create_options: tuple[tuple[str, str], ...] = ()
    parts: list[tuple[str, str | None]] = []
    for statement in statements:
        created = _CREATE.match(statement)
        if created is not None:
            source = _unquote(created.group(1))
            create_options = _locale_options(statement[created.end() :])
            continue
        if _SESSION.match(statement):
            parts.append((statement, None))
            continue
        for pattern in _RETARGETED:
            match = pattern.match(statement)
            if match is not None:
                break
        else:
            raise ValueError(f"unexpected statement: {statement[:60]!r}")
        named = _unquote(match.group(2))
        if source is None:
            source = named
        elif named != source:
            raise ValueError(f"a statement names another database: {statement[:60]!r}")
        parts.append((match.group(1), match.group(3)))
    return DatabaseProperties(source, tuple(parts), create_options)


# pg_dump's CREATE DATABASE: "WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER =
# libc LOCALE = 'es_ES.UTF-8'" (or LC_COLLATE and LC_CTYPE; ICU_LOCALE, ICU_RULES,
# BUILTIN_LOCALE). Literals are standard strings ('' inside).
_OPTION = re.compile(r"\b([A-Z_]+) = ('(?:[^']|'')*'|[A-Za-z0-9_.]+)")


def _locale_options(text: str) -> tuple[tuple[str, str], ...]:
    """The encoding and locale options of the rest of a CREATE DATABASE statement, values
    unquoted; others (TEMPLATE, TABLESPACE) are left out. Pure."""
    found = []
    for key, raw in _OPTION.findall(text):
        value = raw[1:-1].replace("''", "'") if raw.startswith("'") else raw
        if key in LOCALE_OPTIONS or (key == "LOCALE_PROVIDER" and value in LOCALE_PROVIDERS):
            found.append((key, value))
    return tuple(found)


_LOCALES = frozenset({"LOCALE", "LC_COLLATE", "LC_CTYPE"})


def create_options_for(
    options: Sequence[tuple[str, str]], server_major: int
) -> tuple[tuple[str, str], ...]:
    """``options`` (a dump's :attr:`DatabaseProperties.create_options`) as a server of
    ``server_major`` must be given them to create the same database. Pure.

    A dump of a server older than 15 names no ``LOCALE_PROVIDER``: every database was
    libc then. A 15+ server given only the locale takes template0's provider, which is
    ICU on many (``initdb --locale-provider=icu``), and text would no longer sort as it
    did; so ``LOCALE_PROVIDER libc`` is added when the dump has a locale but no provider.
    Everything else is kept as it is.
    """
    kept = tuple(options)
    keys = {key for key, _ in kept}
    if server_major >= 15 and "LOCALE_PROVIDER" not in keys and keys & _LOCALES:
        return (*kept, ("LOCALE_PROVIDER", "libc"))
    return kept


# Which pg_database columns each option sets (the first a server has; 17 renamed
# daticulocale to datlocale).
_COLUMNS = {
    "ENCODING": ("encoding_name",),
    "LOCALE": ("datcollate", "datctype"),
    "LC_COLLATE": ("datcollate",),
    "LC_CTYPE": ("datctype",),
    "LOCALE_PROVIDER": ("datlocprovider",),
    "ICU_LOCALE": ("datlocale|daticulocale",),
    "BUILTIN_LOCALE": ("datlocale",),
    "ICU_RULES": ("daticurules",),
}


def locale_differences(
    conninfo: ConnInfo,
    name: str,
    options: Sequence[tuple[str, str]],
    conn: Connection | None = None,
) -> list[str]:
    """The options of ``options`` that database ``name`` does not have, as
    ``KEY 'value'`` (an option whose column this server lacks counts as different),
    asked on ``conn`` if given (:func:`~respaldo.postgres.server.session`). Raises
    QueryFailed, ConnectionFailed."""
    query = (
        "SELECT pg_catalog.pg_encoding_to_char(d.encoding), pg_catalog.to_jsonb(d)"
        " FROM pg_catalog.pg_database d WHERE d.datname = %s"
    )
    with session(conninfo, conn) as asked:
        row = _guarded(
            conninfo,
            "reading a database's encoding and locale",
            lambda: asked.execute(query, (name,)).fetchone(),
        )
    if row is None:
        raise QueryFailed(f"database {name!r} does not exist")
    actual = {**dict(row[1]), "encoding_name": str(row[0])}
    wanted = {"libc": "c", "icu": "i", "builtin": "b"}
    differing = []
    for key, value in options:
        expected = wanted[value] if key == "LOCALE_PROVIDER" else value
        for column in _COLUMNS[key]:
            names = column.split("|")
            have = next((actual[n] for n in names if n in actual), None)
            # Encoding names are case-insensitive ("utf8" is UTF8).
            if (str(have).upper() if key == "ENCODING" else have) != (
                expected.upper() if key == "ENCODING" else expected
            ):
                differing.append(f"{key} '{value}'")
                break
    return differing


def feed_archive(command: RunningCommand, chunks: Iterator[bytes]) -> None:
    """Write ``chunks`` to the command until it has read what it needs and exits (the
    rest is not fetched); raises PostgresError if it failed. Used for everything read
    from a dump's table of contents alone (see also :func:`respaldo.postgres.toc.read_listing`)."""
    try:
        with command:
            try:
                for data in chunks:
                    command.stdin.write(data)
            except BrokenPipeError:
                pass  # it read the table of contents it needs and exited; wait() says how
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            close()


Archive = Iterator[bytes] | Path
"""A dump for the readers of its table of contents: a ``pg_dump -Fc`` archive's bytes from
its start, or a ``pg_dump -Fd`` directory holding at least its ``toc.dat`` (pg_restore
cannot read a directory-format table of contents from a pipe)."""


def read_offline(options: list[str], archive: Archive, *, bindir: Path | str | None) -> bytes:
    """Run :func:`pg_restore_offline` with ``options`` on ``archive``; its stdout."""
    if isinstance(archive, Path):
        command = pg_restore_offline([*options, str(archive)], bindir=bindir)
        feed_archive(command, iter(()))
    else:
        command = pg_restore_offline(options, bindir=bindir)
        feed_archive(command, archive)
    return command.captured_stdout()


def read_properties(
    archive: Callable[[], Archive],
    *,
    no_owner: bool = False,
    bindir: Path | str | None = None,
    tmp_dir: Path | None = None,
) -> DatabaseProperties:
    """The database properties held in a dump (see :data:`Archive`).

    ``archive`` is called twice and must yield the archive from its start each time;
    only its table of contents is read (pg_restore exits after it, and the rest is not
    fetched). ``no_owner`` leaves out ``ALTER DATABASE … OWNER TO`` as
    ``pg_restore --no-owner`` does. The script is read in the encoding it declares
    (:func:`~respaldo.postgres.encodings.decode_script`). Raises PostgresError
    (pg_restore failed) or ValueError (its output holds a statement this module does not
    know, or bytes not in its encoding).
    """
    listing = read_offline(["--create", "--list"], archive(), bindir=bindir)
    entries = database_entries(listing.decode("utf-8", "replace"))
    if not entries:
        return DatabaseProperties(None, ())
    with tempfile.TemporaryDirectory(prefix="respaldo-toc-", dir=tmp_dir) as tmp:
        use_list = Path(tmp) / "entries.list"
        use_list.write_text("\n".join(entries) + "\n", encoding="utf-8")
        options = ["--create", f"--use-list={use_list}", "--file=-"]
        if no_owner:
            options.append("--no-owner")
        script = read_offline(options, archive(), bindir=bindir)
    # In the dump's encoding (a LATIN1 database's comment), which the script declares.
    return parse_properties(decode_script(script))


def apply_properties(
    conninfo: ConnInfo,
    statements: Sequence[str],
    *,
    commit: bool,
    conn: Connection | None = None,
) -> None:
    """Run ``statements`` in one transaction on ``conninfo`` (any database of the server);
    commit it, or roll it back (a dry run that finds missing roles or privileges before a
    long restore). A session setting of a parameter the server does not have is left
    out: pg_restore renders the statements offline, with no server to ask, and so sets
    the parameters of its own major version (``transaction_timeout = 0`` from a
    pg_restore 17+ for a 15 server); such a line only resets a timeout. A setting of
    ``client_encoding`` is left out too: the statements are text already (read in the
    dump's encoding), sent in the connection's own (UTF8).

    On ``conn`` (an autocommit session the caller keeps: :func:`~respaldo.postgres.server.session`)
    if given, in a transaction block of its own; the session's settings that the
    statements change (``SET search_path``, timeouts) are reset to the session's own
    after a commit, so that the caller's next questions on it are asked as before.
    Raises QueryFailed with the server's message, ConnectionFailed."""
    if conn is not None:

        def in_block() -> None:
            with conn.transaction(force_rollback=not commit):
                _run_statements(conn, statements)
            if commit:
                conn.execute("RESET ALL")

        _guarded(conninfo, "applying the database's properties", in_block)
        return
    with connect(conninfo) as own:
        try:
            _guarded(
                conninfo,
                "applying the database's properties",
                lambda: _run_statements(own, statements),
            )
            if commit:
                own.commit()
        finally:
            with contextlib.suppress(psycopg.Error):
                own.rollback()


def _run_statements(conn: Connection, statements: Sequence[str]) -> None:
    # Statements rendered by pg_dump from the backup, with the database's name put in as
    # a quoted identifier: trusted as pg_restore trusts them.
    known = {str(row[0]).lower() for row in conn.execute("SELECT name FROM pg_catalog.pg_settings")}
    for statement in statements:
        setting = _SET_PARAMETER.match(statement)
        if setting is not None and (
            setting.group(1).lower() not in known or setting.group(1).lower() == "client_encoding"
        ):
            continue
        conn.execute(statement.encode())


class Privilege(NamedTuple):
    """One privilege on a database: who granted it to whom ("" for PUBLIC), which one
    (``CONNECT``, ``CREATE``, ``TEMPORARY``), and whether with grant option."""

    grantor: str
    grantee: str
    privilege: str
    grantable: bool

    def describe(self) -> str:
        who = self.grantee or "PUBLIC"
        return f"{self.privilege}{' WITH GRANT OPTION' if self.grantable else ''} to {who}"


@dataclass(frozen=True)
class DatabasePrivileges:
    """A database's owner and every privilege on it (the defaults spelt out)."""

    owner: str
    privileges: frozenset[Privilege]

    def allows(self, privilege: Privilege) -> bool:
        """Whether this database gives ``privilege`` (grantor aside) to its grantee."""
        return any(
            p.grantee == privilege.grantee
            and p.privilege == privilege.privilege
            and (p.grantable or not privilege.grantable)
            for p in self.privileges
        )


_PRIVILEGES = """
SELECT pg_catalog.pg_get_userbyid(d.datdba),
       pg_catalog.pg_get_userbyid(a.grantor),
       CASE WHEN a.grantee = 0 THEN '' ELSE pg_catalog.pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_database d,
       pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a
 WHERE d.datname = %s
"""


def database_privileges(conninfo: ConnInfo, name: str) -> DatabasePrivileges:
    """Owner and privileges of database ``name`` (a NULL ACL as the defaults it means:
    the owner's own and PUBLIC's CONNECT and TEMPORARY). Raises QueryFailed if there is
    no such database."""
    with connect(conninfo, autocommit=True) as conn:
        rows = _guarded(
            conninfo,
            f"reading the privileges on {name!r}",
            lambda: conn.execute(_PRIVILEGES.encode(), (name,)).fetchall(),
        )
    if not rows:
        raise QueryFailed(f"database {name!r} does not exist")
    return DatabasePrivileges(
        str(rows[0][0]),
        frozenset(Privilege(str(r[1]), str(r[2]), str(r[3]), bool(r[4])) for r in rows),
    )


def set_owner(conninfo: ConnInfo, name: str, owner: str) -> None:
    """``ALTER DATABASE name OWNER TO owner``. Raises QueryFailed."""
    statement = sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
        sql.Identifier(name), sql.Identifier(owner)
    )
    with connect(conninfo, autocommit=True) as conn:
        _guarded(conninfo, f"changing the owner of {name!r}", lambda: conn.execute(statement))


_PRIVILEGE_NAMES = frozenset({"CONNECT", "CREATE", "TEMPORARY"})


def revoke_privilege(
    conninfo: ConnInfo, name: str, privilege: Privilege, *, option_only: bool = False
) -> None:
    """Take ``privilege`` away on database ``name`` (with ``option_only``, only its grant
    option), as its grantor (only the grantor's own grant can be revoked) and with what
    was granted on from it (CASCADE). Needs a role that may SET ROLE to the grantor.
    Raises QueryFailed."""
    if privilege.privilege not in _PRIVILEGE_NAMES:
        raise ValueError(f"not a database privilege: {privilege.privilege!r}")
    grantee = sql.SQL("PUBLIC") if not privilege.grantee else sql.Identifier(privilege.grantee)
    revoke = sql.SQL("REVOKE {option}{privilege} ON DATABASE {name} FROM {grantee} CASCADE").format(
        option=sql.SQL("GRANT OPTION FOR " if option_only else ""),
        privilege=sql.SQL(privilege.privilege),
        name=sql.Identifier(name),
        grantee=grantee,
    )
    set_role = sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(privilege.grantor))

    def run() -> None:
        conn.execute(set_role)
        conn.execute(revoke)
        conn.commit()

    with connect(conninfo) as conn:
        _guarded(conninfo, f"revoking {privilege.describe()} on {name!r}", run)
