"""The login limits hold across processes: several API servers on one catalog together
allow ``[server] login_max_failures`` failures per name and per address, not that many
each. Two apps here, each with its own context (its own engine and connections) and its
own Authenticator, as two ``respaldo serve`` processes have."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import Role
from respaldo.operations.auth import Authenticator, load_secret
from respaldo.operations.context import Context

from .conftest import PASSWORD, Clock, add_user, login

pytestmark = pytest.mark.unit


@pytest.fixture
def second(settings: Settings, context: Context, clock: Clock) -> Iterator[TestClient]:
    """A second server on the same catalog, reached from the same address."""
    with Context.open(settings) as other:
        authenticator = Authenticator(settings, load_secret(settings), clock=clock)
        app = create_app(settings, other, authenticator=authenticator)
        with TestClient(app, client=("192.0.2.10", 50001)) as opened:
            yield opened


def _guess(client: TestClient, name: str) -> int:
    response = client.post("/auth/token", data={"username": name, "password": "guess-guess"})
    return int(response.status_code)


def test_two_servers_on_one_catalog_allow_the_failures_once_between_them(
    context: Context, client: TestClient, second: TestClient, clock: Clock
) -> None:
    add_user(context, "alice", Role.VIEWER)
    # Five failures (the default limit), spread over both servers.
    for server in (client, second, client, second, client):
        assert _guess(server, "alice") == 401
        clock.now += 10
    for server in (client, second):
        refused = server.post("/auth/token", data={"username": "alice", "password": PASSWORD})
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "250"
    clock.now += 250
    login(second, "alice")
    # The success cleared alice's failures on both servers (still within the window),
    # not the address's: from another address, four more guesses are answered.
    with TestClient(client.app, client=("198.51.100.7", 1)) as elsewhere:
        for _ in range(4):
            assert _guess(elsewhere, "alice") == 401
        login(elsewhere, "alice")
    # 192.0.2.10 keeps its four failures still in the window: one more, then refused.
    assert _guess(client, "bob") == 401
    assert _guess(second, "carol") == 429


def test_the_address_limit_is_shared_too(
    context: Context, client: TestClient, second: TestClient
) -> None:
    add_user(context, "alice", Role.VIEWER)
    for n in range(5):
        assert _guess(client if n % 2 else second, f"name{n}") == 401
    for server in (client, second):
        refused = server.post("/auth/token", data={"username": "alice", "password": PASSWORD})
        assert refused.status_code == 429
