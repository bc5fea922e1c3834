"""Every HTTP route the documentation names (``GET /metrics``, ``POST /login/token``, the
web page's ``/jobs``...) is served by the app with that method.

api.md's route table is checked row by row against the permission matrix
(test_api_doc_routes.py); here every other mention in README.md and docs/*.md is asked
of the app itself: a route that moved or a method that changed answers 404 or 405.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from respaldo.config import Settings
from respaldo.operations.context import Context
from respaldo.web.site import create_site

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_NAMED = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[A-Za-z0-9_/{}.-]*)")
# docs/web.md's table of pages: each page's path, a GET.
_PAGE = re.compile(r"^\| [^|]+ \| `(/[a-z/{}]*)` \|", re.M)


def named() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for doc in DOCS:
        text = doc.read_text()
        found |= {(m, p.rstrip(".")) for m, p in _NAMED.findall(text)}
    found |= {("GET", p) for p in _PAGE.findall((ROOT / "docs" / "web.md").read_text())}
    return found


NAMED = sorted(named())


def test_the_docs_name_routes() -> None:
    assert ("GET", "/metrics") in NAMED and ("POST", "/auth/token") in NAMED
    assert ("GET", "/retention") in NAMED  # a page of web.md
    assert len(NAMED) > 20


def _unrouted(client: TestClient, method: str, path: str) -> bool:
    """Whether no route answers ``method path`` (a 404 of a route, for an id that does
    not exist, is a respaldo problem with its own detail)."""
    answer = client.request(method, re.sub(r"\{[^}]*\}", "0", path), follow_redirects=False)
    if answer.status_code == 405:
        return True
    return answer.status_code == 404 and bool(answer.json().get("detail") == "Not Found")


def test_every_route_the_docs_name_is_served(settings: Settings, context: Context) -> None:
    with TestClient(create_site(settings, context)) as client:
        assert _unrouted(client, "GET", "/admin/nothing")
        assert _unrouted(client, "DELETE", "/metrics")
        wrong = [f"{m} {p}" for m, p in NAMED if _unrouted(client, m, p)]
    assert not wrong, wrong
