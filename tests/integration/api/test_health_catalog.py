"""``GET /health`` and ``GET /metrics`` with a PostgreSQL catalog that stops answering:
the unauthenticated caller learns that the catalog fails, never its host, port, role or
password; the server's log has the reason, without the password."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.api import create_app
from respaldo.api.metrics import CATALOG_FAILS as METRICS_CATALOG_FAILS
from respaldo.config import Settings
from respaldo.operations.context import Context
from respaldo.operations.health import CATALOG_FAILS

pytestmark = pytest.mark.integration

PASSWORD = "Zq8-health-catalog-pw"


@pytest.fixture
def catalog_role(pg: TempCluster) -> Iterator[str]:
    """A role of its own owning a catalog database of the same name, dropped after."""
    name = f"h_{uuid.uuid4().hex[:10]}"
    pg.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(PASSWORD)
        )
    )
    pg.execute(
        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name))
    )
    yield name
    pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_health_hides_the_catalog_servers_error_from_an_unauthenticated_caller(
    pg: TempCluster, catalog_role: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql://{catalog_role}:{PASSWORD}@{pg.host}:{pg.port}/{catalog_role}"
    settings = Settings(catalog={"url": url}, cache_dir=tmp_path / "cache")
    with (
        Context.open(settings, create=True) as context,
        TestClient(create_app(settings, context)) as client,
    ):
        assert client.get("/health").status_code == 200
        # The catalog's password changes under the service (rotated, say) and its
        # sessions end: the next connection is refused by the server.
        pg.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(catalog_role), sql.Literal("rotated-" + PASSWORD)
            )
        )
        pg.execute(
            sql.SQL(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {}"
            ).format(sql.Literal(catalog_role))
        )
        with caplog.at_level(logging.WARNING):
            response = client.get("/health")
            scraped = client.get("/metrics")
    assert response.status_code == 503
    assert response.json()["catalog"] == {"name": "catalog", "ok": False, "error": CATALOG_FAILS}
    assert (scraped.status_code, scraped.text) == (503, METRICS_CATALOG_FAILS + "\n")
    for secret in (PASSWORD, catalog_role, str(pg.port), pg.host):
        assert secret not in response.text and secret not in scraped.text
    for logger in ("respaldo.operations.health", "respaldo.api.metrics"):
        logged = "\n".join(r.getMessage() for r in caplog.records if r.name == logger)
        assert catalog_role in logged  # the reason is in the log, for the operator
        assert PASSWORD not in logged
