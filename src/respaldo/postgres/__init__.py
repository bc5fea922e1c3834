"""PostgreSQL as a source: the one place that runs PostgreSQL programs and talks to servers.

Words used throughout this package:

cluster
    One PostgreSQL server instance (one data directory, one port). Roles and tablespaces
    belong to the cluster; everything else belongs to one of its databases.
database
    One database inside a cluster: what ``pg_dump`` dumps and ``pg_restore`` restores.
conninfo
    How to reach a database: a :class:`ConnInfo` parsed from a libpq DSN or URI, plus a
    password held apart as a ``SecretStr``. The password never appears in argv, ``repr``,
    ``str``, logs or error messages; it reaches child programs through a private 0600
    passfile (or ``PGPASSWORD`` in the child's environment only) and psycopg as a keyword.
bindir
    The directory holding ``pg_dump``, ``pg_restore``, ``pg_dumpall`` and ``psql``; which
    one serves which server is :mod:`respaldo.postgres.toolsets`' choice (a database's
    ``pg_bin_dir``, the system's installations, the ``respaldo[pg18]`` extra). Called
    without one, a program is taken from the newest ``/usr/lib/postgresql/<major>/bin``.
major version
    The first number of a PostgreSQL version (15 for 15.4). A client program must be of
    the same or a newer major version than the server it dumps.
globals
    The cluster-wide objects a database dump does not contain: roles, their memberships
    and tablespaces (``pg_dumpall --globals-only``).
exported snapshot
    A transaction snapshot published with ``pg_export_snapshot()``: ``pg_dump --snapshot``
    dumps exactly what the exporting transaction sees, so row counts taken in that
    transaction describe the dump exactly. It is valid only while that transaction is open.
running command
    A :class:`RunningCommand`: a child program whose stdout the caller reads (pg_dump)
    or whose stdin the caller writes (pg_restore). Leaving it waits for the child and
    raises :class:`~respaldo.errors.PostgresError` with the child's stderr if it failed.

Layer rule: this package knows nothing of chunks, repositories, storage or the catalog;
it imports only :mod:`respaldo.errors`, :mod:`respaldo.domain`, :mod:`respaldo.config` and
:mod:`respaldo.childenv` from respaldo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from respaldo.lazy_exports import resolver

if TYPE_CHECKING:
    from respaldo.postgres.commands import (
        CompletedCommand,
        RunningCommand,
        ToolVersion,
        find_bindir,
        pg_dump,
        pg_dumpall_globals,
        pg_restore,
        psql,
        statement_errors,
        tool_path,
        tool_version,
    )
    from respaldo.postgres.connection import ChildConnection, ConnInfo, child_connection
    from respaldo.postgres.server import (
        CountingSnapshot,
        ExportedSnapshot,
        ServerInfo,
        check_pg_dump_version,
        check_tool_compatible,
        connect,
        count_rows,
        counting_snapshot,
        create_database,
        database_exists,
        drop_database,
        exported_snapshot,
        hash_partition_leaves,
        pause_autovacuum,
        rename_database,
        resume_autovacuum,
        server_info,
        server_major,
        terminate_connections,
        unexpected_objects,
    )

# Imported on first use (PEP 562): a process imports only the modules it uses. The
# WAL commands, started once per WAL file, import a few submodules of this package,
# and importing them all (psycopg) cost more than the push itself.
_WHERE = {
    "ChildConnection": "respaldo.postgres.connection",
    "CompletedCommand": "respaldo.postgres.commands",
    "ConnInfo": "respaldo.postgres.connection",
    "CountingSnapshot": "respaldo.postgres.server",
    "ExportedSnapshot": "respaldo.postgres.server",
    "RunningCommand": "respaldo.postgres.commands",
    "ServerInfo": "respaldo.postgres.server",
    "ToolVersion": "respaldo.postgres.commands",
    "check_pg_dump_version": "respaldo.postgres.server",
    "check_tool_compatible": "respaldo.postgres.server",
    "child_connection": "respaldo.postgres.connection",
    "connect": "respaldo.postgres.server",
    "count_rows": "respaldo.postgres.server",
    "counting_snapshot": "respaldo.postgres.server",
    "create_database": "respaldo.postgres.server",
    "database_exists": "respaldo.postgres.server",
    "drop_database": "respaldo.postgres.server",
    "exported_snapshot": "respaldo.postgres.server",
    "find_bindir": "respaldo.postgres.commands",
    "hash_partition_leaves": "respaldo.postgres.server",
    "pause_autovacuum": "respaldo.postgres.server",
    "resume_autovacuum": "respaldo.postgres.server",
    "pg_dump": "respaldo.postgres.commands",
    "pg_dumpall_globals": "respaldo.postgres.commands",
    "pg_restore": "respaldo.postgres.commands",
    "psql": "respaldo.postgres.commands",
    "rename_database": "respaldo.postgres.server",
    "server_info": "respaldo.postgres.server",
    "server_major": "respaldo.postgres.server",
    "statement_errors": "respaldo.postgres.commands",
    "terminate_connections": "respaldo.postgres.server",
    "tool_path": "respaldo.postgres.commands",
    "tool_version": "respaldo.postgres.commands",
    "unexpected_objects": "respaldo.postgres.server",
}


__getattr__ = resolver(__name__, _WHERE)


__all__ = [
    "ChildConnection",
    "CompletedCommand",
    "ConnInfo",
    "CountingSnapshot",
    "ExportedSnapshot",
    "RunningCommand",
    "ServerInfo",
    "ToolVersion",
    "check_pg_dump_version",
    "check_tool_compatible",
    "child_connection",
    "connect",
    "count_rows",
    "counting_snapshot",
    "create_database",
    "database_exists",
    "drop_database",
    "exported_snapshot",
    "find_bindir",
    "hash_partition_leaves",
    "pause_autovacuum",
    "pg_dump",
    "pg_dumpall_globals",
    "pg_restore",
    "psql",
    "rename_database",
    "resume_autovacuum",
    "server_info",
    "server_major",
    "statement_errors",
    "terminate_connections",
    "tool_path",
    "tool_version",
    "unexpected_objects",
]
