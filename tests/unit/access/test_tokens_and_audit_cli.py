"""``respaldo token create|list|revoke`` (a token works until revoked, is shown once and
stored only hashed), ``respaldo audit`` and ``GET /admin/audit``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from respaldo.cli.main import invoke
from respaldo.config import Settings
from respaldo.domain import AuditAction, AuditOutcome, Role
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.operations.jobs import os_user

from .conftest import add_user, bearer, login

pytestmark = pytest.mark.unit


@pytest.fixture
def config(tmp_path: Path, settings: Settings, context: Context) -> Path:
    path = tmp_path / "respaldo.toml"
    path.write_text(f'[catalog]\nurl = "{settings.catalog.url}"\n')
    return path


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = invoke(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_api_token_works_until_revoked(
    config: Path, context: Context, client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(config, capsys, "token", "create", "nightly-ci", "--role", "operator")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("rsp_")
    assert client.get("/probe/create", headers=bearer(token)).status_code == 200
    assert client.get("/probe/approve", headers=bearer(token)).status_code == 403
    # Listed without the token; stored without it.
    code, out, _ = run(config, capsys, "token", "list", "--json")
    (listed,) = json.loads(out)
    assert listed["name"] == "nightly-ci" and listed["revokedAt"] is None
    # rsp_<hex id>_<secret>: the secret is URL-safe base64 and may hold "_" itself (split
    # from the right, a secret ending "_0" looked for "0" in the listing's dates).
    secret = token.split("_", 2)[2]
    assert len(secret) >= 40
    assert token not in out and secret not in out
    with context.catalog.read() as session:
        dumped = " ".join(str(row) for row in session.execute(sa.text("SELECT * FROM api_tokens")))
    assert secret not in dumped
    # A wrong secret with the right id is refused.
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert client.get("/probe/read", headers=bearer(forged)).status_code == 401
    code, _, err = run(config, capsys, "token", "revoke", "nightly-ci")
    assert code == 0, err
    response = client.get("/probe/read", headers=bearer(token))
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    actions = [(e.action, e.actor, e.outcome) for e in audit.entries(context)]
    assert ("token.create", os_user(), AuditOutcome.SUCCESS) in actions
    assert ("token.revoke", os_user(), AuditOutcome.SUCCESS) in actions
    assert all(token not in (e.detail or "") for e in audit.entries(context))


def test_a_token_name_is_taken_once(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, capsys, "token", "create", "ci", "--role", "viewer")[0] == 0
    code, out, err = run(config, capsys, "token", "create", "ci", "--role", "admin")
    assert code == 1 and "already exists" in err and out == ""


def test_respaldo_audit_filters_and_prints_json(
    config: Path, context: Context, client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    add_user(context, "alice", Role.ADMIN)
    login(client, "alice")
    client.post("/auth/token", data={"username": "alice", "password": "wrong password"})
    code, out, err = run(config, capsys, "audit", "--json", "--action", "login")
    assert code == 0, err
    entries = json.loads(out)
    assert [(e["actor"], e["outcome"], e["address"]) for e in entries] == [
        ("alice", "failure", "192.0.2.10"),
        ("alice", "success", "192.0.2.10"),
    ]
    code, out, _ = run(config, capsys, "audit", "--json", "--user", os_user())
    assert [e["action"] for e in json.loads(out)] == ["user.add"]
    code, out, _ = run(config, capsys, "audit", "--json", "--since", "2999-01-01")
    assert json.loads(out) == []
    code, _, err = run(config, capsys, "audit", "--since", "yesterday")
    assert code == 1 and "--since" in err
    assert run(config, capsys, "audit")[0] == 0


def test_get_admin_audit_needs_approve(context: Context, client: TestClient) -> None:
    add_user(context, "olga", Role.OPERATOR)
    add_user(context, "alice", Role.ADMIN)
    operator = bearer(login(client, "olga")["access_token"])
    admin = bearer(login(client, "alice")["access_token"])
    assert client.get("/admin/audit").status_code == 401
    assert client.get("/admin/audit", headers=operator).status_code == 403
    response = client.get("/admin/audit", headers=admin, params={"action": "login"})
    assert response.status_code == 200, response.text
    assert [(e["actor"], e["outcome"]) for e in response.json()] == [
        ("alice", "success"),
        ("olga", "success"),
    ]
    denied = audit.entries(context, action=AuditAction.ACCESS)
    assert [(e.actor, e.target) for e in denied] == [("olga", "GET /admin/audit")]
    page = client.get("/admin/audit", headers=admin, params={"limit": 1, "offset": 1})
    assert len(page.json()) == 1
