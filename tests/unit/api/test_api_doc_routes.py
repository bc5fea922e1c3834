"""docs/api.md's route table names the routes the API serves, each with its permission.

The permission matrix (test_route_permissions.ROUTES) is proved against the running app
and must hold every route it serves; here the page's table must be that matrix, row for
row: a route documented that does not exist, or with another method or permission than
the one the app checks, fails. The ``/auth/`` routes the page names must be served too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import Permission
from tests.unit.api.test_route_permissions import OPEN, ROUTES

pytestmark = pytest.mark.unit

PAGE = Path(__file__).resolve().parents[3] / "docs" / "api.md"
_ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) ([^`]+)`((?:, `/[a-z]+`)*) \| ([^|]+) \|")
_PERMISSIONS: dict[str, Permission | None] = {"read": Permission.READ, "none": OPEN}
_PERMISSIONS |= {"create": Permission.CREATE, "approve": Permission.APPROVE}


def _canonical(path: str) -> str:
    """Any placeholder is `{}`; query strings (`[?status=&limit=]`) are not the route."""
    return re.sub(r"\{[^}]*\}", "{}", path.split("[")[0])


def documented() -> set[tuple[str, str, Permission | None]]:
    rows: set[tuple[str, str, Permission | None]] = set()
    for line in PAGE.read_text().splitlines():
        row = _ROW.match(line)
        if not row:
            continue
        method, path, more, cell = row.groups()
        base = _canonical(path)
        # `POST /admin/backups/{id}/pin`, `/unpin`: the same route with its last part changed
        paths = [
            base,
            *(base.rsplit("/", 1)[0] + "/" + t for t in re.findall(r"`/([a-z]+)`", more)),
        ]
        # "create (approve for `"type": "snapshot"`)": both, by body
        needed = [_PERMISSIONS[w] for w in re.findall(r"\b(read|create|approve|none)\b", cell)]
        assert needed, line
        rows |= {(method, p, n) for p in paths for n in needed}
    return rows


def test_the_route_table_is_the_permission_matrix() -> None:
    served = {(r.method, _canonical(r.path), r.permission) for r in ROUTES}
    # The snapshot backup is a second row of the matrix (the same route, another body).
    assert documented() == served


def test_a_wrong_row_would_be_found() -> None:
    assert ("POST", "/admin/backups/{}/unpin", Permission.APPROVE) in documented()
    assert ("GET", "/admin/audit", Permission.READ) not in documented()


def test_the_auth_routes_it_names_are_served() -> None:
    named = set(re.findall(r"`(POST|GET) (/auth/[a-z/]+)`", PAGE.read_text()))
    assert len(named) >= 3
    schema = create_app(Settings()).openapi()["paths"]
    served = {(m.upper(), p) for p, operations in schema.items() for m in operations}
    assert named <= served, named - served
