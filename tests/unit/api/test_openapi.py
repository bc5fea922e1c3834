"""The OpenAPI schema at /openapi.json describes every field and parameter, and /docs
serves it."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.operations.context import Context

# FastAPI's own: its validation errors are never answered (the problem handler is), and
# the fields of OAuth2's password form (RFC 6749, section 4.3.2) have no descriptions.
NOT_OURS = ("ValidationError", "HTTPValidationError", "Body_token_auth_token_post")


def undescribed(schema: dict[str, Any]) -> list[str]:
    """Every property of a component schema and every parameter without a description."""
    missing = []
    for name, component in schema["components"]["schemas"].items():
        if name in NOT_OURS:
            continue
        for prop, spec in component.get("properties", {}).items():
            if not spec.get("description"):
                missing.append(f"{name}.{prop}")
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if not parameter.get("description"):
                    missing.append(f"{method.upper()} {path} ?{parameter['name']}")
    return missing


def test_every_field_and_parameter_is_described(settings: Settings, context: Context) -> None:
    with TestClient(create_app(settings, context)) as client:
        schema = client.get("/openapi.json").json()
        docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/admin/backups" in schema["paths"]
    assert undescribed(schema) == []


def test_the_docs_page_loads_nothing_from_another_site(
    settings: Settings, context: Context
) -> None:
    # The page shares its origin (and so its cookies and the web page's forms) with the
    # API: a script from a CDN (FastAPI's default, unpinned, no integrity check) could
    # drive both. Its files are served from here, and the browser is told so.
    with TestClient(create_app(settings, context)) as client:
        docs = client.get("/docs")
        assert docs.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
        assert sources and all(s.startswith("/docs/static/") for s in sources), sources
        policy = docs.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "http" not in policy, policy
        for source in sources:
            served = client.get(source)
            assert served.status_code == 200 and len(served.content) > 100, source
        assert client.get("/redoc").status_code == 404
        assert client.get("/docs/static/%2e%2e/__init__.py").status_code == 404


def test_the_error_answers_are_declared_as_problems(settings: Settings, context: Context) -> None:
    with TestClient(create_app(settings, context)) as client:
        schema = client.get("/openapi.json").json()
    restore = schema["paths"]["/admin/backups/{backup_id}/restore"]["post"]
    assert set(restore["responses"]) >= {"202", "404", "409", "422", "503"}
    assert "application/problem+json" in restore["responses"]["422"]["content"]


def test_the_restore_test_of_a_database_is_described_as_it_runs(
    settings: Settings, context: Context
) -> None:
    """Since 749a7d5 POST /admin/backups/test {database} tests the newest backup of each
    kind the database relies on; /docs (and a client generated from the schema) still said
    "the newest completed full backup", a physical one only without it."""
    with TestClient(create_app(settings, context)) as client:
        schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/admin/backups/test"]["post"]
    field = schema["components"]["schemas"]["RestoreTestBody"]["properties"]["database"]
    for said in (operation["description"], field["description"]):
        assert "each kind" in said and "full backup" not in said, said
