"""The PostgreSQL major versions the integration suite runs against.

``None`` is the system's newest installation (Debian 12's 15 here: every test runs on
it); ``18`` the ``respaldo[pg18]`` extra, which ``make setup`` installs. A test asks for
both with ``@ON_EVERY_MAJOR``: the session fixtures that start clusters (``pg``,
``archiving_session``) take the major from the ``pg_major`` fixture, parametrized
indirectly, so a test of each major gets a cluster of that major. Only a few
representative tests do (CI time): see the marks.

A major that is not installed is a failure, never a skip: a suite that silently skips
PostgreSQL 18 proves nothing about it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.errors import ToolNotFound
from respaldo.postgres import find_bindir
from respaldo.postgres.toolsets import BUNDLED_MAJOR, find_tools

SYSTEM: int | None = None
"""The system's newest installation (what ``TempCluster`` uses by default)."""

MAJORS = [pytest.param(BUNDLED_MAJOR, id="pg18"), pytest.param(SYSTEM, id="system")]

ON_EVERY_MAJOR = pytest.mark.parametrize("pg_major", MAJORS, indirect=True, scope="session")
"""Run the test once on the system's PostgreSQL and once on PostgreSQL 18."""

ON_PG18 = pytest.mark.parametrize(
    "pg_major", [pytest.param(BUNDLED_MAJOR, id="pg18")], indirect=True, scope="session"
)
"""Run the test on PostgreSQL 18 only (what only 17+ has, or the 18 side of a pair)."""


ARCHIVING_INITDB_OPTIONS: dict[int | None, tuple[str, ...]] = {BUNDLED_MAJOR: ("--wal-segsize=64",)}
"""initdb options of the archiving cluster of each major (tests/integration/physical): the
18 one has 64 MiB WAL segments, so that its point-in-time recovery also proves a segment
size other than 16 MiB (the system's keeps the default), one cluster for both."""


ARCHIVING_SETTINGS: dict[int | None, dict[str, str]] = {BUNDLED_MAJOR: {"summarize_wal": "on"}}
"""Server settings of the archiving cluster of each major: on 18, WAL summaries, so that
its physical backups after the first are incremental (what respaldo does by default where
the server can), restored through pg_combinebackup by the drill and PITR tests too."""


def server_bindir(major: int | None) -> Path:
    """The bin directory of PostgreSQL ``major`` (None: the system's newest); fails the
    test, naming what to install, when there is none."""
    if major is None:
        return find_bindir()
    try:
        return find_tools("server", major).bindir
    except ToolNotFound as exc:
        pytest.fail(f"{exc} ({exc.hint}); make setup installs respaldo[pg18]")
