"""A restore asks its questions of the configured database on one session.

Before, every probe and step of ``restore --target-database NEW`` opened a session of its
own on the configured database (14 of them: the server's version twice, the target's
name, the tools' server, the abandoned staging databases, CREATE DATABASE, the locale,
the properties' dry run and their application, the sessions' settings, the rename, the
subscriptions), each a backend start and its catalog caches (docs/benchmarks.md,
sessions 19 and 20). The sessions are counted where they are opened (psycopg's
``connect``, wrapped, still connecting): the server's own session statistics are
flushed asynchronously, after the restore has returned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import table_checksums

pytestmark = pytest.mark.integration


@contextmanager
def _counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[tuple[str, str]]]:
    """The sessions opened in the block, by (database, application_name)."""
    opened: Counter[tuple[str, str]] = Counter()
    real_connect = psycopg.connect

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened[(str(kwargs.get("dbname")), str(kwargs.get("application_name")))] += 1
        return real_connect(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(psycopg, "connect", counting)
        yield opened


def test_restore_opens_few_sessions_on_the_configured_database(
    respaldo: Respaldo, pg: TempCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_id = respaldo.backup()["id"]
    with _counting(monkeypatch) as opened:
        respaldo.restore(backup_id, "erp_sessions", "--jobs", "2")

    on_configured = {key: n for key, n in opened.items() if key[0] == respaldo.dbname}
    # The version (a session without statements: it decides the others' options), the
    # one for the questions and steps before the load, the staging database's hold, and
    # the hand-over (properties, rename, subscriptions).
    assert sum(on_configured.values()) == 4, on_configured
    assert sum(n for (_, app), n in on_configured.items() if app.startswith("respaldo-hold:")) == 1
    assert table_checksums(pg, "erp_sessions") == table_checksums(pg, respaldo.dbname)


def test_a_restore_test_opens_few_sessions_where_it_manages_its_database(
    respaldo: Respaldo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restore test manages its throwaway database from "postgres" and asks there what
    a restore asks. It opened 12 sessions there: 8 before its load, one each (the
    abandoned databases, the tools' server, CREATE DATABASE, the locale's server and the
    locale, the properties' dry run, the sessions' settings' version and their
    privileges), the hold, and 3 to drop its database (its subscriptions, whether it is a
    template, the drop). Now 4, every check kept."""
    backup_id = respaldo.backup()["id"]
    with _counting(monkeypatch) as opened:
        run = respaldo.run("drill", backup_id, "--json")
    assert run.code == 0, str(run)
    result = run.json()
    assert result["passed"] is True
    assert [c["name"] for c in result["checks"]] == [
        "restore",
        "row counts",
        "large objects",
        "roles",
    ]
    on_postgres = {key: n for key, n in opened.items() if key[0] == "postgres"}
    holds = sum(n for (_, app), n in on_postgres.items() if app.startswith("respaldo-hold:"))
    # The version (no statement: it decides the others' options), the one for the
    # questions and steps before the load, the throwaway database's hold, and the one
    # that drops it after the checks.
    assert holds == 1, on_postgres
    assert sum(on_postgres.values()) == 4, on_postgres
    assert (
        respaldo.pg.scalar("SELECT count(*) FROM pg_database WHERE datname LIKE 'respaldo_drill_%'")
        == 0
    )
