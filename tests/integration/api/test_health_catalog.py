"""``GET /health`` and ``GET /metrics`` with a PostgreSQL catalog that stops answering:
the unauthenticated caller learns that the catalog fails, never its host, port, role or
password; the server's log has the reason, without the password. The API's other routes
answer 503 with the same sentence (not a 500 "unexpected error"), and change nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sample.cluster import TempCluster

from respaldo.api import create_app
from respaldo.api.metrics import CATALOG_FAILS as METRICS_CATALOG_FAILS
from respaldo.config import Settings
from respaldo.domain import Role
from respaldo.operations.context import Context
from respaldo.operations.health import CATALOG_FAILS
from tests.integration.api.conftest import CATALOG_PASSWORD, CatalogRole, token

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


def test_the_api_answers_503_while_the_catalog_refuses_and_changes_nothing(
    pg: TempCluster, catalog_role: CatalogRole, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Before, every route answered 500 "an unexpected error stopped the request" with a
    # traceback in the log: a client (the BackupManager page, a script) could not tell
    # a catalog that is restarting, worth a retry, from a bug.
    settings = Settings(
        catalog={"url": catalog_role.url},
        cache_dir=tmp_path / "cache",
        databases=[{"name": "erp", "dsn": "postgresql://respaldo@127.0.0.1/erp"}],
    )
    with Context.open(settings, create=True) as context:
        headers = token(settings, "admin", Role.ADMIN)
        app = create_app(settings, context)
        with TestClient(app, headers=headers, raise_server_exceptions=False) as client:
            assert client.get("/admin/backups").status_code == 200
            catalog_role.refuse()
            with caplog.at_level(logging.WARNING, logger="respaldo.api.problems"):
                answers = [
                    client.get("/admin/backups"),
                    client.get("/admin/jobs"),
                    client.post("/admin/backups", json={"type": "full", "database": "erp"}),
                ]
            catalog_role.accept()
            assert client.get("/admin/jobs").json() == []  # nothing was queued
    for answer in answers:
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert (body["detail"], body["error"]) == (CATALOG_FAILS, "CatalogUnavailable")
        assert "catalog" in body["hint"]
        for secret in (CATALOG_PASSWORD, catalog_role.name, str(pg.port), pg.host):
            assert secret not in answer.text
    told = [r.getMessage() for r in caplog.records if r.name == "respaldo.api.problems"]
    assert len(told) == 3 and all(catalog_role.name in m for m in told), told
    assert not any(CATALOG_PASSWORD in m or "Traceback" in m for m in told)
