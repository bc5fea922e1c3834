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


def test_a_name_longer_than_the_key_column_is_counted_like_any_other(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name of 2,000 characters (no account has one) is refused as a wrong login and
    counted, not an error of the catalog's column (PostgreSQL enforces its length)."""
    monkeypatch.setattr(users, "HASHER", CHEAP_HASHER)
    users._dummy_hash.cache_clear()
    clock = Clock()
    long_name = "a" * 2000
    with Context.open(settings, create=True) as ctx:
        app = create_app(
            settings, ctx, authenticator=Authenticator(settings, load_secret(settings), clock=clock)
        )
        clients = [
            TestClient(app, client=(f"192.0.2.{n}", 1), raise_server_exceptions=False)
            for n in (11, 12, 13)
        ]
        with clients[0] as first, clients[1] as second, clients[2] as third:
            data = {"username": long_name, "password": "guess-guess"}
            codes = []
            for _ in range(5):
                codes.append(first.post("/auth/token", data=data).status_code)
                clock.now += 1
            # The name's count, from another address.
            codes.append(second.post("/auth/token", data=data).status_code)
            # Its last character changed: another name, its own count.
            other = {"username": long_name[:-1] + "b", "password": "guess-guess"}
            other_code = third.post("/auth/token", data=other).status_code
    assert codes == [401] * 5 + [429]
    assert other_code == 401
