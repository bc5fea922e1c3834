"""Logging in (API and page) while the PostgreSQL catalog refuses the service: the
unauthenticated caller gets 503 with a fixed sentence (the page's in its language), never
the catalog's host, port, role or password; the log has the reason, without the password."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sample.cluster import TempCluster

from respaldo.config import Settings
from respaldo.domain import Role
from respaldo.operations import users
from respaldo.operations.context import Context
from respaldo.operations.health import CATALOG_FAILS
from respaldo.operations.principal import local_principal
from respaldo.web import session
from respaldo.web.site import create_site
from tests.integration.api.conftest import CATALOG_PASSWORD, CatalogRole

pytestmark = pytest.mark.integration

USER_PASSWORD = "correct horse battery staple"


def test_a_login_while_the_catalog_refuses_tells_nothing_of_it(
    pg: TempCluster, catalog_role: CatalogRole, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = catalog_role.url
    secret = tmp_path / "jwt.key"
    secret.write_text("k3-Vd9sQx7LmR2pW8zT5nB1yH6cJ4gF0aE\n")
    secret.chmod(0o600)
    settings = Settings(
        catalog={"url": url}, cache_dir=tmp_path / "cache", server={"jwt_secret_file": secret}
    )
    with (
        Context.open(settings, create=True) as context,
        TestClient(create_site(settings, context), raise_server_exceptions=False) as client,
    ):
        users.add_user(context, "alice", Role.ADMIN, USER_PASSWORD, actor=local_principal())
        assert client.get("/login").status_code == 200
        csrf = client.cookies.get(session.CSRF_COOKIE)
        catalog_role.refuse()
        with caplog.at_level(logging.WARNING):
            answers = [
                client.post("/auth/token", data={"username": n, "password": USER_PASSWORD})
                for n in ("alice", "nobody")
            ]
            answers.append(
                client.post(
                    "/login",
                    data={"username": "alice", "password": USER_PASSWORD, "csrf": csrf},
                    follow_redirects=False,
                )
            )
    for answer in answers:
        assert answer.status_code == 503, answer.text
        if answer.request.url.path == "/login":  # the page's: its error page, in Spanish
            assert "el catálogo no responde" in answer.text
        else:
            assert answer.json()["detail"] == CATALOG_FAILS
        for leak in (CATALOG_PASSWORD, catalog_role.name, str(pg.port), pg.host, "Traceback"):
            assert leak not in answer.text
    # Unknown and known names: the same answer.
    assert answers[0].text == answers[1].text
    logged = caplog.text
    assert catalog_role.name in logged  # the reason is in the log, for the operator
    assert CATALOG_PASSWORD not in logged
