"""The 401/403 matrix of ``require(permission)``: a probe route per permission, called
with no token, malformed ones, an expired one, one signed with another key, and a
token of each role (password logins and API tokens)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi.testclient import TestClient

from respaldo.domain import AuditAction, AuditOutcome, Permission, Role
from respaldo.operations import api_tokens, audit
from respaldo.operations.context import Context
from respaldo.operations.principal import local_principal

from .conftest import SECRET, add_user, bearer, login

pytestmark = pytest.mark.unit

GRANTED = {
    Role.VIEWER: {Permission.READ},
    Role.OPERATOR: {Permission.READ, Permission.CREATE},
    Role.ADMIN: set(Permission),
}


def _claims(name: str, sid: str, **changes: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": "respaldo",
        "sub": name,
        "sid": sid,
        "typ": "access",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    claims.update(changes)
    return claims


def _sid(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sid"])


@pytest.fixture
def admin_token(context: Context, client: TestClient) -> str:
    add_user(context, "alice", Role.ADMIN)
    return str(login(client, "alice")["access_token"])


BAD_CREDENTIALS: dict[str, Callable[[str], dict[str, str]]] = {
    "no token": lambda good: {},
    "not bearer": lambda good: {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    "malformed": lambda good: bearer("not-a-jwt"),
    "truncated": lambda good: bearer(good[:-10]),
    "expired": lambda good: bearer(
        jwt.encode(
            _claims(
                "alice",
                _sid(good),
                iat=datetime.now(UTC) - timedelta(hours=1),
                exp=datetime.now(UTC) - timedelta(minutes=1),
            ),
            SECRET,
            algorithm="HS256",
        )
    ),
    "another key": lambda good: bearer(
        jwt.encode(_claims("alice", _sid(good)), "x" * 20 + "another-key-0123456789")
    ),
    "alg none": lambda good: bearer(
        jwt.encode(_claims("alice", _sid(good)), None, algorithm="none")  # type: ignore[arg-type]
    ),
    "refresh token as bearer": lambda good: bearer("rsp_notatoken"),
    "wrong type": lambda good: bearer(
        jwt.encode(_claims("alice", _sid(good), typ="refresh"), SECRET, algorithm="HS256")
    ),
    "unknown session": lambda good: bearer(
        jwt.encode(_claims("alice", "0" * 32), SECRET, algorithm="HS256")
    ),
}


# Every protected route of this module's own (GET /admin/audit, POST /auth/logout) and
# a probe route per permission; the expected status with the admin's good token. The
# logout ends the good token's session: it comes last.
PROTECTED = [
    ("GET", "/probe/read", 200),
    ("GET", "/probe/create", 200),
    ("GET", "/probe/approve", 200),
    ("GET", "/admin/audit", 200),
    ("POST", "/auth/logout", 204),
]


@pytest.mark.parametrize("case", list(BAD_CREDENTIALS))
def test_bad_credentials_are_401_with_www_authenticate(
    client: TestClient, admin_token: str, case: str
) -> None:
    # Every route in turn with one catalog, client and login (one each per route showed
    # nothing more).
    for method, path, ok in PROTECTED:
        headers = BAD_CREDENTIALS[case](admin_token)
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer", path
        assert response.headers["content-type"] == "application/problem+json", path
        body = response.json()
        assert body["status"] == 401 and body["detail"] and body["hint"], path
        # The good token is the same user's: only what was wrong with it made the 401.
        good = client.request(method, path, headers=bearer(admin_token))
        assert good.status_code == ok, path


@pytest.mark.parametrize("role", list(Role))
def test_each_role_of_a_password_login_gets_exactly_its_permissions(
    context: Context, client: TestClient, role: Role
) -> None:
    add_user(context, f"u-{role}", role)
    token = login(client, f"u-{role}")["access_token"]
    for permission in Permission:
        response = client.get(f"/probe/{permission.name.lower()}", headers=bearer(token))
        expected = 200 if permission in GRANTED[role] else 403
        assert response.status_code == expected, (role, permission, response.text)
        if expected == 200:
            assert response.json() == {"name": f"u-{role}", "method": "password"}
        else:
            assert response.headers["content-type"] == "application/problem+json"
            assert str(permission) in response.json()["detail"]


@pytest.mark.parametrize("role", list(Role))
def test_each_role_of_an_api_token_gets_exactly_its_permissions(
    context: Context, client: TestClient, role: Role
) -> None:
    created = api_tokens.create_token(context, f"ci-{role}", role, actor=local_principal())
    for permission in Permission:
        response = client.get(f"/probe/{permission.name.lower()}", headers=bearer(created.token))
        expected = 200 if permission in GRANTED[role] else 403
        assert response.status_code == expected, (role, permission, response.text)


def test_a_refused_permission_is_audited_as_denied(context: Context, client: TestClient) -> None:
    add_user(context, "vera", Role.VIEWER)
    token = login(client, "vera")["access_token"]
    assert client.get("/probe/approve", headers=bearer(token)).status_code == 403
    (entry,) = audit.entries(context, action=AuditAction.ACCESS)
    assert (entry.actor, entry.outcome, entry.target) == (
        "vera",
        AuditOutcome.DENIED,
        "GET /probe/approve",
    )
    assert entry.address == "192.0.2.10" and entry.method == "password"


def test_a_role_change_or_removal_takes_effect_at_once(
    context: Context, client: TestClient
) -> None:
    add_user(context, "bob", Role.ADMIN)
    token = login(client, "bob")["access_token"]
    assert client.get("/probe/approve", headers=bearer(token)).status_code == 200
    from respaldo.operations import users

    users.remove_user(context, "bob", actor=local_principal())
    response = client.get("/probe/read", headers=bearer(token))
    assert response.status_code == 401
    assert "logged out" in response.json()["detail"] or "removed" in response.json()["detail"]
