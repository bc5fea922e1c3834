"""The shared login limits on a PostgreSQL catalog: two servers, one count (the advisory
lock and the table as PostgreSQL runs them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import Role
from respaldo.operations import users
from respaldo.operations.auth import Authenticator, load_secret
from respaldo.operations.context import Context
from respaldo.operations.principal import local_principal
from tests.unit.access.conftest import CHEAP_HASHER, PASSWORD, SECRET, Clock, write_secret

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(pg: TempCluster, tmp_path: Path) -> Iterator[Settings]:
    name = f"cat_{uuid.uuid4().hex[:10]}"
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    secret = pg.password.get_secret_value()
    yield Settings(
        catalog={"url": f"postgresql://{pg.superuser}:{secret}@{pg.host}:{pg.port}/{name}"},
        cache_dir=tmp_path / "cache",
        server={"jwt_secret_file": write_secret(tmp_path / "jwt.key", SECRET)},
    )
    pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_two_servers_on_a_postgresql_catalog_share_the_login_limit(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(users, "HASHER", CHEAP_HASHER)
    users._dummy_hash.cache_clear()
    clock = Clock()
    with Context.open(settings, create=True) as one, Context.open(settings) as two:
        users.add_user(one, "alice", Role.VIEWER, PASSWORD, actor=local_principal())
        servers = [
            TestClient(
                create_app(
                    settings,
                    ctx,
                    authenticator=Authenticator(settings, load_secret(settings), clock=clock),
                ),
                client=("192.0.2.10", 1),
            )
            for ctx in (one, two)
        ]
        with servers[0] as a, servers[1] as b:
            for server in (a, b, a, b, a):
                data = {"username": "alice", "password": "guess-guess"}
                assert server.post("/auth/token", data=data).status_code == 401
                clock.now += 1
            for server in (a, b):
                data = {"username": "alice", "password": PASSWORD}
                assert server.post("/auth/token", data=data).status_code == 429
