"""``respaldo serve`` on an address other machines reach, without TLS and without a
trusted reverse proxy, sends passwords and tokens in clear text: it says so as it starts
(it is not refused: the schedule it runs must not stop for it)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from respaldo.cli.main import invoke
from respaldo.config import ServerSettings
from respaldo.operations.listen import clear_text_warning

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("server", "warned"),
    [
        ({}, False),  # 127.0.0.1:8080
        ({"listen": "localhost:8080"}, False),
        ({"listen": "127.0.0.2:8080"}, False),
        ({"listen": "[::1]:8080"}, False),
        ({"listen": "0.0.0.0:8080"}, True),
        ({"listen": "[::]:8080"}, True),
        ({"listen": "192.0.2.7:8080"}, True),
        ({"listen": "backup.example.com:8080"}, True),
        ({"listen": "0.0.0.0:8080", "trusted_proxies": ["192.0.2.1"]}, False),
        (
            {"listen": "0.0.0.0:8443", "tls_certificate": "/c.pem", "tls_key": "/k.pem"},
            False,
        ),
    ],
)
def test_clear_text_is_warned_off_loopback_without_tls_or_proxy(
    server: dict[str, object], warned: bool
) -> None:
    warning = clear_text_warning(ServerSettings.model_validate(server))
    assert (warning is not None) == warned
    if warning is not None:
        assert "passwords and tokens cross the network in clear text" in warning
        assert "tls_certificate" in warning and "trusted_proxies" in warning


def test_serve_logs_it_as_it_starts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # No catalog: serve stops right after the warning, which came first.
    config = tmp_path / "respaldo.toml"
    config.write_text(
        f'cache_dir = "{tmp_path / "cache"}"\n'
        f'[catalog]\nurl = "sqlite:///{tmp_path / "none.db"}"\n'
        '[server]\nlisten = "0.0.0.0:8080"\n'
    )
    with caplog.at_level(logging.WARNING, logger="respaldo.cli.serve_cmd"):
        assert invoke(["--config", str(config), "serve"]) == 1
    said = [r.getMessage() for r in caplog.records if r.name == "respaldo.cli.serve_cmd"]
    assert said == [
        "[server] listen = '0.0.0.0:8080' is reachable from the network and serves plain "
        "HTTP: passwords and tokens cross the network in clear text. Set [server] "
        "tls_certificate and tls_key, or listen on 127.0.0.1 behind a reverse proxy that "
        "speaks HTTPS and name it in [server] trusted_proxies (docs/api.md)"
    ]
