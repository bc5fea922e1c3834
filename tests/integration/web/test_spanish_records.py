"""The Spanish page's records beside the errors: a restore test's checks (row counts, large
objects, a validation query) with their details, why an alert did not reach its target,
the audit log's details, the size check's reason after the database was emptied, and a
files backup's warnings on its page. Each reads in Spanish where respaldo worded it; rows
an earlier respaldo wrote in words no phrase knows still show, as they were stored; the
English page shows every record as stored, as the CLI and the API do."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from respaldo.catalog import AuditLog, Notifications
from respaldo.operations import audit
from respaldo.operations.context import Context
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.test_alert_shrink import _empty
from tests.integration.logical.test_serve import listening_port, serving
from tests.integration.web.conftest import PASSWORDS, Site, add_user, site_config
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

HOOK = "RESPALDO_WEB_TEST_HOOK_URL"
SCHEMA_QUERY = 'schema_version_query = "SELECT max(version) FROM public.schema_migrations"\n'
VALIDATION = """
[[databases.validations]]
name = "migraciones"
sql = "SELECT count(*) FROM public.schema_migrations"
expect = "2"
"""
NOTIFY = f"""
[notifications]
timeout_seconds = 5

[[notifications.targets]]
name = "ops-hook"
url_env = "{HOOK}"
"""
OLD_DETAIL = "permission admin:approve missing (respaldo 0.9)"
OLD_ERROR = "SMTP AUTH failed: 535 5.7.8 bad credentials"
ENGLISH = (
    "needs ",
    "wrong user name",
    "restore test of",
    "job ",
    "tables match",
    "large objects,",
    "got '",
    "notification target",
    "environment variable",
    "much smaller",
)


def _no_english(text: str) -> None:
    found = [words for words in ENGLISH if words in text]
    assert not found, (found, text)


@pytest.fixture
def site(respaldo: Respaldo, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The page's site with a validation query on erp and one alert target that cannot
    send (its environment variable is not set)."""
    monkeypatch.delenv(HOOK, raising=False)
    text = respaldo.config.read_text()
    assert SCHEMA_QUERY in text
    # A file set holding a named pipe: its files backup skips it, with a warning.
    tree = respaldo.tmp / "adjuntos"
    tree.mkdir()
    (tree / "factura.pdf").write_bytes(b"%PDF factura" * 100)
    os.mkfifo(tree / "cola")
    files = f'\n[[file_sets]]\nname = "adjuntos"\npaths = ["{tree}"]\n'
    respaldo.config.write_text(
        text.replace(SCHEMA_QUERY, SCHEMA_QUERY + VALIDATION, 1) + NOTIFY + files
    )
    config = site_config(respaldo)
    served = dataclasses.replace(respaldo, config=config)
    add_user(served, "admin", "admin")
    add_user(served, "viewer", "viewer")
    with serving(config) as process:
        yield Site(f"http://127.0.0.1:{listening_port(process)}", served)


def _old_rows(respaldo: Respaldo) -> None:
    """An audit entry and a delivery as an earlier respaldo wrote them, in words that no
    phrase of this one knows."""
    now = datetime.now(UTC)
    with Context.open(respaldo.settings()) as ctx, ctx.catalog.begin() as session:
        AuditLog(session).append(
            at=now,
            actor="ana",
            method="password",
            address="10.1.2.3",
            action="access",
            target="GET /audit",
            outcome="denied",
            detail=OLD_DETAIL,
        )
        Notifications(session).add(
            sent_at=now,
            level="critical",
            kind="backup",
            key=None,
            target="ops-mail",
            ok=False,
            error=OLD_ERROR,
        )


def _ended_job_entry(respaldo: Respaldo) -> str:
    """The audit entry of the restore test's end (job_audit: once the job ended)."""
    found: list[str] = []

    def ended() -> bool:
        with Context.open(respaldo.settings()) as ctx:
            entries = audit.entries(ctx, limit=50)
        found[:] = [
            e.detail or ""
            for e in entries
            if e.action == "restore_test" and re.fullmatch(r"job \d+", e.detail or "")
        ]
        return bool(found)

    wait_for("the restore test's end in the audit log", ended)
    return found[0]


def _backup_on_the_page(site: Site, page: Page, completed: int) -> str:
    """A full backup of erp started on the page; its id once it completed (the
    ``completed``-th)."""
    page.goto(f"{site.url}/")
    page.get_by_label("Base de datos", exact=True).select_option("erp")
    page.get_by_role("button", name="Crear Backup Manual").click()
    # The script reloads the page when the job has ended.
    done = page.locator("tr[data-status=completed]")
    expect(done).to_have_count(completed)
    backup = done.first.get_attribute("data-backup")
    assert backup
    return backup


def test_the_records_beside_the_errors_and_a_files_backups_warnings_read_in_spanish(
    site: Site, page: Page
) -> None:
    respaldo = site.respaldo
    # A failed backup's alert, which reaches no target.
    assert respaldo.run("backup", "unreachable").code == 1
    _old_rows(respaldo)

    # A login that failed; a viewer refused the audit log.
    page.goto(f"{site.url}/login")
    page.get_by_label("Usuario").fill("admin")
    page.get_by_label("Contraseña").fill(PASSWORDS["admin"] + " not")
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page.get_by_role("alert")).to_have_text("Usuario o contraseña incorrectos.")
    site.login(page, "viewer")
    refused = page.goto(f"{site.url}/audit")
    assert refused is not None and refused.status == 403
    page.context.clear_cookies()

    # A backup and a restore test started on the page, the restore test's checks each
    # with what it found. The backup is the service's own: one the CLI took after the
    # service had opened the repository is not in the service's index, and its restore
    # test fails ("chunk is not in the index"), a fault of its own.
    site.login(page, "admin")
    backup = _backup_on_the_page(site, page, 1)
    page.goto(f"{site.url}/drills")
    page.get_by_label("Base de datos", exact=True).select_option("erp")
    page.get_by_role("button", name="Ejecutar una prueba de restauración").click()
    drill = page.locator("tr[data-drill]")
    expect(drill.locator(".badge")).to_have_text("Aprobado")
    checks = drill.locator("ul.checks li")
    expect(checks.filter(has_text="recuento de filas")).to_have_text(
        re.compile(r"✓ superada: recuento de filas — \d+ tablas coinciden con la instantánea")
    )
    expect(checks.filter(has_text="objetos grandes —")).to_have_text(
        re.compile(
            # The sample's scale decides how many: one is said in the singular.
            r"✓ superada: objetos grandes — (1 objeto grande, \d+ bytes, coincide"
            r"|\d+ objetos grandes, \d+ bytes, coinciden) con la instantánea"
        )
    )
    expect(checks.filter(has_text="validación")).to_have_text(
        "✓ superada: validación: migraciones — se obtuvo '2', se esperaba '2'"
    )
    _no_english(drill.inner_text())
    ended = _ended_job_entry(respaldo)
    job = ended.split()[1]

    page.goto(f"{site.url}/audit")
    log = page.locator("main table").nth(1)
    expect(log).to_contain_text("Denegado — requiere admin:approve")
    expect(log).to_contain_text("Fallo — usuario o contraseña incorrectos")
    expect(log).to_contain_text(re.compile(r"Éxito — backup lógico de erp, trabajo \d+"))
    expect(log).to_contain_text(
        f"Éxito — prueba de restauración del backup más reciente de erp ({backup}) "
        f"iniciada; trabajo {job}"
    )
    expect(log).to_contain_text(f"Éxito — trabajo {job}")
    # An earlier respaldo's words: as stored.
    expect(log).to_contain_text(f"Denegado — {OLD_DETAIL}")
    _no_english(log.inner_text().replace(OLD_DETAIL, ""))

    page.goto(f"{site.url}/alerts")
    # The last table lists every attempt; the first, the alert to ops-hook that still
    # waits for its target (its URL's variable is not set).
    tables = page.locator("main table")
    expect(tables).to_have_count(2)
    waiting, sent = tables.first, tables.last
    expect(waiting).to_contain_text("ops-hook")
    _no_english(waiting.inner_text())
    expect(sent).to_contain_text(
        f"✗ destino de notificación ops-hook: la variable de entorno {HOOK} (url_env) no "
        "está definida"
    )
    expect(sent).to_contain_text(f"✗ {OLD_ERROR}")
    _no_english(sent.inner_text())

    # The database emptied, its next backup much smaller: the size check's reason with
    # its sizes and share as Spanish writes them (the alert's says the same facts).
    _empty(respaldo)
    _backup_on_the_page(site, page, 2)
    page.goto(f"{site.url}/databases")
    section = page.locator("section").filter(
        has=page.get_by_role("heading", name=re.compile(r"^erp\b"))
    )
    expect(section).to_contain_text(
        re.compile(
            r"el backup lógico más reciente es mucho menor que el anterior: "
            r"\d+(,\d)? [KMG]?B, el \d+\u00a0% de \d+(,\d)? [KMG]?B \(límite 50\u00a0%\)"
        )
    )
    _no_english(section.inner_text())

    # In English: every record as stored, as the CLI and the API show it.
    page.get_by_label("Idioma").select_option("en")
    expect(page.get_by_label("Language")).to_be_visible()  # the page came back in English
    page.goto(f"{site.url}/audit")
    log = page.locator("main table").nth(1)
    expect(log).to_contain_text("Denied — needs admin:approve")
    expect(log).to_contain_text(f"Success — job {job}")
    page.goto(f"{site.url}/alerts")
    expect(page.locator("main table").last).to_contain_text(
        f"notification target ops-hook: environment variable {HOOK} (url_env) is not set"
    )
    page.goto(f"{site.url}/drills")
    expect(page.locator("tr[data-drill] ul.checks")).to_contain_text(
        re.compile(r"row counts — \d+ tables match the snapshot")
    )

    # A files backup's warnings on its page, in Spanish; in English, as stored, as the CLI
    # and the API show it. Last, as its backup would be one more completed row above; here,
    # not in a test of its own: its own site cost 8-12 s on a loaded machine.
    page.get_by_label("Language").select_option("es")
    expect(page.get_by_label("Idioma")).to_be_visible()  # the page came back in Spanish
    # Taken by the CLI: the backup's page reads its manifest, whoever wrote it.
    taken = respaldo.run("backup", "adjuntos", "--json")
    assert taken.code == 0, taken.err
    files = json.loads(taken.out)["id"]
    pipe = respaldo.tmp / "adjuntos" / "cola"
    page.goto(f"{site.url}/backups/{files}")
    warning = page.locator("p.warning")
    expect(warning, "a files backup's warning, in Spanish").to_have_text(
        f"{pipe}: archivo especial, omitido"
    )
    page.get_by_label("Idioma").select_option("en")
    expect(page.get_by_label("Language")).to_be_visible()
    page.goto(f"{site.url}/backups/{files}")
    expect(warning, "a files backup's warning, in English").to_have_text(
        f"{pipe}: special file, skipped"
    )
