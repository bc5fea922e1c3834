"""Fixtures of the access tests: a real SQLite catalog, the real app, a probe route per
permission, users with cheap argon2 parameters, and a clock for the login limits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.api.security import CanApprove, CanCreate, CanRead, Principal
from respaldo.config import Settings
from respaldo.domain import Role
from respaldo.operations import users
from respaldo.operations.auth import Authenticator, load_secret
from respaldo.operations.context import Context
from respaldo.operations.principal import local_principal

PASSWORD = "correct horse battery staple"
SECRET = "k3-Vd9sQx7LmR2pW8zT5nB1yH6cJ4gF0aE"  # 34 bytes, varied: an acceptable key

# The real hasher (argon2id) with the smallest cost: the tests check behaviour, not cost.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "HASHER", CHEAP_HASHER)
    users._dummy_hash.cache_clear()


@dataclass
class Clock:
    """A monotonic clock the test moves by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def write_secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        cache_dir=tmp_path / "cache",
        server={"jwt_secret_file": write_secret(tmp_path / "jwt.key", SECRET)},
    )


@pytest.fixture
def context(settings: Settings) -> Iterator[Context]:
    with Context.open(settings, create=True) as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock()


probe = APIRouter()


def _probe(principal: Principal) -> dict[str, str]:
    return {"name": principal.name, "method": principal.method.value}


@probe.get("/probe/read")
def probe_read(principal: CanRead) -> dict[str, str]:
    return _probe(principal)


@probe.get("/probe/create")
def probe_create(principal: CanCreate) -> dict[str, str]:
    return _probe(principal)


@probe.get("/probe/approve")
def probe_approve(principal: CanApprove) -> dict[str, str]:
    return _probe(principal)


@pytest.fixture
def app(settings: Settings, context: Context, clock: Clock) -> FastAPI:
    authenticator = Authenticator(settings, load_secret(settings), clock=clock)
    app = create_app(settings, context, authenticator=authenticator)
    app.include_router(probe)
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, client=("192.0.2.10", 50000)) as opened:
        yield opened


def add_user(context: Context, name: str, role: Role, password: str = PASSWORD) -> None:
    users.add_user(context, name, role, password, actor=local_principal())


def login(client: TestClient, name: str, password: str = PASSWORD) -> dict[str, Any]:
    """The token response of a successful login (access_token, refresh_token...)."""
    response = client.post("/auth/token", data={"username": name, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
