"""A real ``respaldo serve`` with its page, and headless Chromium (Debian's, through
Playwright's ``executable_path``) to drive it.

The service runs on the logical tests' sample ERP database (their ``respaldo`` fixture),
with no schedule of its own; users are made with ``respaldo user add`` as a person would.

``site`` is a service of the test's own; ``shared_site`` is one service per module, for
the tests that change nothing another test reads (see :func:`shared_serve`).
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
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
from sample.cluster import TempCluster

from respaldo.config import load_settings
from respaldo.domain import Role
from respaldo.operations import users
from respaldo.operations.context import Context
from respaldo.operations.principal import local_principal
from tests.conftest import isolate_env
from tests.integration.conftest import erp_copy
from tests.integration.logical.conftest import (  # noqa: F401 (a fixture)
    PASSPHRASE,
    Respaldo,
    installed,
    respaldo,
)
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
    return _site_config(configured.config, configured.tmp, port)


def _site_config(config: Path, tmp: Path, port: int = ANY_PORT) -> Path:
    secret = tmp / "jwt.secret"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48))
    text = (
        config.read_text()
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
    path = tmp / "site.toml"
    path.write_text(text)
    return path


def add_user(configured: Respaldo, name: str, role: str) -> None:
    """``name`` added as ``respaldo user add`` adds them (the same operation, the same
    local actor in the audit), but in this process: the command's own process cost 2.5-5 s
    of Python start-up per user, twice per test, and its parsing of the password from stdin
    is tested in tests/unit/access/test_users_cli.py."""
    _add_user(configured.config, name, role)


def _add_user(config: Path, name: str, role: str) -> None:
    with Context.open(load_settings(config)) as context:
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


@dataclass(frozen=True)
class SharedServe:
    """A module's ``respaldo serve``: its address and what a :class:`Respaldo` needs."""

    url: str
    pg: TempCluster
    tmp: Path
    dbname: str
    config: Path


@pytest.fixture(scope="module")
def shared_serve(
    pg: TempCluster, erp_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedServe]:
    """What :func:`site` makes (an ERP copy, an installation, two users, a running
    ``respaldo serve``), made once for the module's tests that use :func:`shared_site`,
    and stopped after the module's last test: the making cost 5-8 s a test on a loaded
    machine. Such a test may log in, read pages, be refused and take a backup, but must
    neither depend on what another test left (the backups there, the jobs, the audit log
    are asserted relatively, before and after, or by the test's own entries) nor change
    what another reads (settings, users, backups' times, jobs left running)."""
    tmp = tmp_path_factory.mktemp("shared-site")
    with pytest.MonkeyPatch.context() as env:
        # A test's own environment (clean_env) for the set-up and the service it starts;
        # each test's is made anew after, hence the passphrase again in shared_site.
        isolate_env(env, tmp_path_factory.mktemp("home"))
        env.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
        with erp_copy(pg, erp_template) as dbname, installed(pg, dbname, tmp) as installed_at:
            config = _site_config(installed_at, tmp)
            _add_user(config, "admin", "admin")
            _add_user(config, "viewer", "viewer")
            with serving(config) as process:
                port = listening_port(process)
                yield SharedServe(f"http://127.0.0.1:{port}", pg, tmp, dbname, config)


@pytest.fixture
def shared_site(
    shared_serve: SharedServe,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Site:
    """The module's shared service (:func:`shared_serve`), its commands' output captured
    by this test's ``capsys``."""
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    served = shared_serve
    return Site(served.url, Respaldo(served.pg, served.tmp, served.dbname, served.config, capsys))


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
    # The page runs under a Content-Security-Policy (web/framing.py): whatever it refused
    # (an inline style or script, a file from elsewhere) is a page that works differently
    # for its users than the test saw, and fails the test. Not a refusal to be framed:
    # that one is the policy's purpose (test_no_site_can_frame_the_page_logged_in).
    refused: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text and "frame-ancestors" not in text:
            refused.append(text)

    page.on("console", on_console)
    yield page
    context.close()
    assert refused == [], refused


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    # Evaluated, not added as a <script>: the page's policy refuses inline scripts, and
    # what the test runs through the browser's debugging protocol is not the page's.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
