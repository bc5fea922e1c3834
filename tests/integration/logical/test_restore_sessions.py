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
from typing import Any

import psycopg
import pytest
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import table_checksums

pytestmark = pytest.mark.integration


def test_restore_opens_few_sessions_on_the_configured_database(
    respaldo: Respaldo, pg: TempCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_id = respaldo.backup()["id"]
    opened: Counter[tuple[str, str]] = Counter()
    real_connect = psycopg.connect

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened[(str(kwargs.get("dbname")), str(kwargs.get("application_name")))] += 1
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", counting)
    respaldo.restore(backup_id, "erp_sessions", "--jobs", "2")
    monkeypatch.setattr(psycopg, "connect", real_connect)

    on_configured = {key: n for key, n in opened.items() if key[0] == respaldo.dbname}
    # The version (a session without statements: it decides the others' options), the
    # one for the questions and steps before the load, the staging database's hold, and
    # the hand-over (properties, rename, subscriptions).
    assert sum(on_configured.values()) == 4, on_configured
    assert sum(n for (_, app), n in on_configured.items() if app.startswith("respaldo-hold:")) == 1
    assert table_checksums(pg, "erp_sessions") == table_checksums(pg, respaldo.dbname)
