"""A real ``respaldo serve`` with its page, and headless Chromium (Debian's, through
Playwright's ``executable_path``) to drive it.

The service runs on the logical tests' sample ERP database (their ``respaldo`` fixture),
with no schedule of its own; users are made with ``respaldo user add`` as a person would.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from respaldo.config import load_settings
from respaldo.domain import Role
from respaldo.operations import users
from respaldo.operations.context import Context
from respaldo.operations.principal import local_principal
from tests.integration.logical.conftest import Respaldo, respaldo  # noqa: F401 (a fixture)
from tests.integration.logical.test_serve import ANY_PORT, listening_port, serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = (
    Path(__file__).resolve().parents[3]
    / ".venv"
    / "npm"
    / "node_modules"
    / "axe-core"
    / "axe.min.js"
)
# Chromium as root in a sandboxless container, and without the background connections that
# this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORDS = {"admin": "correct horse battery staple", "viewer": "viewer's own passphrase"}


@dataclass
class Site:
    """The served page: its address, the respaldo behind it, and its users."""

    url: str
    respaldo: Respaldo

    def login(self, page: Page, user: str) -> None:
        page.goto(f"{self.url}/login")
        page.get_by_label("Usuario").fill(user)
        page.get_by_label("Contraseña").fill(PASSWORDS[user])
        page.get_by_role("button", name="Iniciar sesión").click()
        page.wait_for_url(f"{self.url}/")


def site_config(configured: Respaldo, port: int = ANY_PORT) -> Path:
    """The logical tests' config with a server section and no schedule."""
    secret = configured.tmp / "jwt.secret"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48))
    text = (
        configured.config.read_text()
        + f"""
[schedules]
time_zone = "UTC"
full = "off"
incremental = "off"
restore_test = "off"
cleanup = "off"
verify = "off"

[server]
listen = "127.0.0.1:{port}"
jwt_secret_file = "{secret}"
"""
    )
    path = configured.tmp / "site.toml"
    path.write_text(text)
    return path


def add_user(configured: Respaldo, name: str, role: str) -> None:
    """``name`` added as ``respaldo user add`` adds them (the same operation, the same
    local actor in the audit), but in this process: the command's own process cost 2.5-5 s
    of Python start-up per user, twice per test, and its parsing of the password from stdin
    is tested in tests/unit/access/test_users_cli.py."""
    with Context.open(load_settings(configured.config)) as context:
        users.add_user(context, name, Role(role), PASSWORDS[name], actor=local_principal())


@pytest.fixture
def site(respaldo: Respaldo) -> Iterator[Site]:  # noqa: F811 (the fixture)
    config = site_config(respaldo)
    served = dataclasses.replace(respaldo, config=config)
    add_user(served, "admin", "admin")
    add_user(served, "viewer", "viewer")
    with serving(config) as process:
        port = listening_port(process)
        yield Site(f"http://127.0.0.1:{port}", served)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        locale="es-MX", extra_http_headers={"Accept-Language": "es-MX,es;q=0.9"}
    )
    context.set_default_timeout(120_000)  # a loaded CI machine; every wait is on a condition
    # expect() has its own default of 5 s, which the page's own reload after a restore
    # test (a job of many seconds on a loaded machine) missed in CI.
    expect.set_options(timeout=120_000)
    page = context.new_page()
    yield page
    context.close()


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
