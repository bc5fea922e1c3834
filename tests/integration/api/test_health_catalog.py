"""``GET /health`` and ``GET /metrics`` with a PostgreSQL catalog that stops answering:
the unauthenticated caller learns that the catalog fails, never its host, port, role or
password; the server's log has the reason, without the password."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sample.cluster import TempCluster

from respaldo.api import create_app
from respaldo.api.metrics import CATALOG_FAILS as METRICS_CATALOG_FAILS
from respaldo.config import Settings
from respaldo.operations.context import Context
from respaldo.operations.health import CATALOG_FAILS
from tests.integration.api.conftest import CATALOG_PASSWORD, CatalogRole

pytestmark = pytest.mark.integration


def test_health_hides_the_catalog_servers_error_from_an_unauthenticated_caller(
    pg: TempCluster, catalog_role: CatalogRole, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = catalog_role.url
    settings = Settings(catalog={"url": url}, cache_dir=tmp_path / "cache")
    with (
        Context.open(settings, create=True) as context,
        TestClient(create_app(settings, context)) as client,
    ):
        assert client.get("/health").status_code == 200
        # The catalog's password changes under the service (rotated, say) and its
        # sessions end: the next connection is refused by the server.
        catalog_role.refuse()
        with caplog.at_level(logging.WARNING):
            response = client.get("/health")
            scraped = client.get("/metrics")
    assert response.status_code == 503
    assert response.json()["catalog"] == {"name": "catalog", "ok": False, "error": CATALOG_FAILS}
    assert (scraped.status_code, scraped.text) == (503, METRICS_CATALOG_FAILS + "\n")
    for secret in (CATALOG_PASSWORD, catalog_role.name, str(pg.port), pg.host):
        assert secret not in response.text and secret not in scraped.text
    for logger in ("respaldo.operations.health", "respaldo.api.metrics"):
        logged = "\n".join(r.getMessage() for r in caplog.records if r.name == logger)
        assert catalog_role.name in logged  # the reason is in the log, for the operator
        assert CATALOG_PASSWORD not in logged
