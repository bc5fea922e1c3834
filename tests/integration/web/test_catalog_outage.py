"""The page while its PostgreSQL catalog's server is stopped: a browser gets the page's
error, in its language, status 503, with /health's sentence and what to do, never the
catalog's host, port, role or password; the API's clients still get its JSON problem."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sample.cluster import TempCluster

from respaldo.config import Settings
from respaldo.domain import Role
from respaldo.operations import users
from respaldo.operations.context import Context
from respaldo.operations.health import CATALOG_FAILS
from respaldo.operations.principal import local_principal
from respaldo.web import session
from respaldo.web.site import create_site
from tests.integration.api.conftest import token

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
SPANISH = {"Accept-Language": "es-MX,es;q=0.9"}


@pytest.fixture
def catalog() -> Iterator[TempCluster]:
    """A cluster of its own, to be stopped: the shared one serves other tests."""
    with TempCluster.create() as cluster:
        yield cluster


def test_a_page_while_the_catalog_is_stopped_is_a_spanish_503_page(
    catalog: TempCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "jwt.key"
    secret.write_text("k3-Vd9sQx7LmR2pW8zT5nB1yH6cJ4gF0aE\n")
    secret.chmod(0o600)
    password = catalog.password.get_secret_value()
    url = f"postgresql://{catalog.superuser}:{password}@{catalog.host}:{catalog.port}/postgres"
    settings = Settings(
        catalog={"url": url}, cache_dir=tmp_path / "cache", server={"jwt_secret_file": secret}
    )
    with (
        Context.open(settings, create=True) as context,
        TestClient(create_site(settings, context), raise_server_exceptions=False) as client,
    ):
        users.add_user(context, "alice", Role.ADMIN, PASSWORD, actor=local_principal())
        bearer = token(settings, "erp", Role.VIEWER)
        assert client.get("/login", headers=SPANISH).status_code == 200
        csrf = client.cookies.get(session.CSRF_COOKIE)
        form = {"username": "alice", "password": PASSWORD, "csrf": csrf}
        assert client.post("/login", data=form, follow_redirects=False).status_code == 303
        assert client.get("/jobs", headers=SPANISH).status_code == 200
        catalog.stop()
        with caplog.at_level(logging.WARNING):
            pages = {
                "GET /jobs": client.get("/jobs", headers=SPANISH),
                "GET /": client.get("/", headers=SPANISH),
                "POST /login": client.post(
                    "/login", data=form, headers=SPANISH, follow_redirects=False
                ),
            }
            english = client.get("/jobs", headers={"Accept-Language": "en"})
            script = client.post(
                "/jobs/1/cancel",
                data={"csrf": csrf},
                headers={**SPANISH, "Accept": "application/json"},
            )
            api = client.get("/admin/jobs", headers=bearer)
        cookies = dict(client.cookies)
    for what, answer in pages.items():
        assert answer.status_code == 503, (what, answer.text)
        assert answer.headers["content-type"].startswith("text/html"), what
        text = answer.text
        assert '<html lang="es">' in text, what
        assert "el catálogo no responde; el registro del servidor dice por qué" in text, what
        assert "inténtelo de nuevo cuando el servidor de base de datos del catálogo" in text
        assert escape(CATALOG_FAILS) not in text, what
        for leak in (password, catalog.superuser, str(catalog.port), catalog.host, "Traceback"):
            assert leak not in text, (what, leak)
    assert english.status_code == 503 and escape(CATALOG_FAILS) in english.text
    assert '<html lang="en">' in english.text
    # The page's script gets its JSON, in the page's language.
    assert script.status_code == 503, script.text
    assert script.json()["detail"].startswith("el catálogo no responde")
    # The API is unchanged: its problem, in English.
    assert api.status_code == 503 and api.json()["error"] == "CatalogUnavailable"
    # The browser's login outlives the outage: its cookies are left as they were.
    assert session.ACCESS_COOKIE in cookies and session.REFRESH_COOKIE in cookies
    told = [r.getMessage() for r in caplog.records if r.name == "respaldo.api.problems"]
    assert len(told) == 6, told  # one line each, as the API's
    assert not any(password in m or "Traceback" in m for m in told), told
