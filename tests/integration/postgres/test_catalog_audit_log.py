"""On a PostgreSQL catalog too, the audit log refuses UPDATE, DELETE and TRUNCATE."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from psycopg import sql
from sample.cluster import TempCluster
from sqlalchemy.exc import DatabaseError

from respaldo.catalog import AuditLog, open_catalog

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET outcome = 'success'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
)
def test_the_audit_log_is_append_only_on_postgresql(
    pg: TempCluster, new_dbname: str, statement: str
) -> None:
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(new_dbname)))
    secret = pg.password.get_secret_value()
    url = f"postgresql://{pg.superuser}:{secret}@{pg.host}:{pg.port}/{new_dbname}"
    with open_catalog(url, create=True) as catalog:
        with catalog.begin() as session:
            AuditLog(session).append(
                at=datetime.now(UTC),
                actor="alice",
                method="password",
                address="192.0.2.1",
                action="login",
                target="alice",
                outcome="failure",
                detail=None,
            )
        with pytest.raises(DatabaseError, match="append-only"), catalog.begin() as session:
            session.execute(sa.text(statement))
        with catalog.read() as session:
            (entry,) = AuditLog(session).list()
        assert entry.outcome == "failure"
