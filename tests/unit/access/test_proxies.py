"""The client address of the audit log and the login limits: X-Forwarded-For only from
the configured trusted proxies."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import AuditAction, Role
from respaldo.errors import ConfigError
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.web.site import create_site

from .conftest import PASSWORD, add_user, login

pytestmark = pytest.mark.unit


def _login_address(
    settings: Settings, context: Context, peer: str, forwarded: str | None
) -> str | None:
    app = create_app(settings, context)
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    with TestClient(app, client=(peer, 1), headers=headers) as client:
        login(client, "alice")
    return audit.entries(context, action=AuditAction.LOGIN)[0].address


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "client"),
    [
        ([], "192.0.2.10", "203.0.113.9", "192.0.2.10"),  # nobody trusted: header ignored
        (["10.0.0.0/8"], "192.0.2.10", "203.0.113.9", "192.0.2.10"),  # peer not a proxy
        (["10.0.0.0/8"], "10.1.2.3", "203.0.113.9", "203.0.113.9"),
        # The client wrote its own X-Forwarded-For; the proxy appended the real address.
        (["10.0.0.0/8"], "10.1.2.3", "1.1.1.1, 203.0.113.9", "203.0.113.9"),
        # Two trusted proxies in a row.
        (["10.0.0.0/8", "::1"], "10.1.2.3", "203.0.113.9, 10.0.0.7", "203.0.113.9"),
        (["10.0.0.0/8"], "10.1.2.3", "203.0.113.9, not-an-address", "10.1.2.3"),
        (["10.0.0.0/8"], "10.1.2.3", None, "10.1.2.3"),
    ],
)
def test_x_forwarded_for_is_believed_only_from_trusted_proxies(
    settings: Settings,
    context: Context,
    trusted: list[str],
    peer: str,
    forwarded: str | None,
    client: str,
) -> None:
    add_user(context, "alice", Role.VIEWER)
    server = settings.server.model_copy(update={"trusted_proxies": trusted})
    settings = settings.model_copy(update={"server": server})
    assert _login_address(settings, context, peer, forwarded) == client


def test_a_trusted_proxy_that_is_not_an_address_is_a_config_error(tmp_path: Path) -> None:
    from respaldo.config import load_settings

    path = tmp_path / "respaldo.toml"
    path.write_text('[server]\ntrusted_proxies = ["10.0.0.0/8", "proxy.example"]\n')
    with pytest.raises(ConfigError, match=r"'proxy\.example' is not an address or network"):
        load_settings(path)


@contextmanager
def _served(settings: Settings, context: Context) -> Iterator[httpx.Client]:
    """The app and page on the HTTP server ``respaldo serve`` runs (uvicorn, as configured there),
    on a loopback port the system gives, and a client of it."""
    from respaldo.cli.serve_cmd import http_server

    # Port 0, the port asked of the listening socket: one found free and let go first
    # could be taken (by any process's next connection) before the server bound it.
    server_settings = settings.server.model_copy(update={"listen": "127.0.0.1:0"})
    settings = settings.model_copy(update={"server": server_settings})
    server = http_server(settings, create_site(settings, context))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():  # it listens, or failed to
            time.sleep(0.01)
        assert server.started
        port = int(server.servers[0].sockets[0].getsockname()[1])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join()


@pytest.mark.parametrize(("trusted", "client"), [([], "127.0.0.1"), (["127.0.0.1"], "203.0.113.9")])
def test_the_served_app_believes_x_forwarded_for_only_from_trusted_proxies(
    settings: Settings, context: Context, trusted: list[str], client: str
) -> None:
    # The HTTP server must not believe the header on its own (uvicorn does, from
    # loopback): a local client would choose its audited address and escape the
    # per-address login limit.
    add_user(context, "alice", Role.VIEWER)
    server = settings.server.model_copy(update={"trusted_proxies": trusted})
    settings = settings.model_copy(update={"server": server})
    with _served(settings, context) as http:
        answer = http.post(
            "/auth/token",
            data={"username": "alice", "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert answer.status_code == 200, answer.text
    assert audit.entries(context, action=AuditAction.LOGIN)[0].address == client


@pytest.mark.parametrize(
    ("trusted", "secure"),
    # A network written with host bits (as the config allows it) trusts the same proxies.
    [([], False), (["127.0.0.1"], True), (["127.0.0.1/8"], True)],
)
def test_the_page_believes_x_forwarded_proto_only_from_trusted_proxies(
    settings: Settings, context: Context, trusted: list[str], secure: bool
) -> None:
    server = settings.server.model_copy(update={"trusted_proxies": trusted})
    settings = settings.model_copy(update={"server": server})
    with _served(settings, context) as http:
        answer = http.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert answer.status_code == 200
    (cookie,) = answer.headers.get_list("set-cookie")
    assert cookie.startswith("respaldo_csrf=")
    assert ("; secure" in cookie.lower()) is secure, cookie
