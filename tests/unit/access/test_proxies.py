"""The client address of the audit log and the login limits: X-Forwarded-For only from
the configured trusted proxies."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import AuditAction, Role
from respaldo.errors import ConfigError
from respaldo.operations import audit
from respaldo.operations.context import Context

from .conftest import add_user, login

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
