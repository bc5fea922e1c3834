"""The page driven in headless Chromium against a real ``respaldo serve``: the
specification's BackupManager flows, roles, CSRF, languages and accessibility."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Page, expect

from tests.integration.logical.test_jobs import jobs
from tests.integration.web.conftest import PASSWORDS, Site, serious_violations
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _rows(site: Site, database: str) -> dict[str, int]:
    found = site.respaldo.pg.query("SELECT count(*) FROM finanzas.facturas", dbname=database)
    return {"finanzas.facturas": int(found[0][0])}


def test_an_admin_backs_up_restores_and_tests_a_restore_from_the_page(
    site: Site, page: Page
) -> None:
    page.goto(f"{site.url}/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.get_by_label("Usuario").fill("admin")
    page.get_by_label("Contraseña").fill("not the password")
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page.get_by_role("alert")).to_have_text("Usuario o contraseña incorrectos.")
    assert serious_violations(page) == []

    site.login(page, "admin")
    expect(page.get_by_role("heading", name="Backups")).to_be_visible()
    assert serious_violations(page) == []

    create = page.get_by_role("button", name="Crear Backup Manual")
    page.get_by_label("Base de datos", exact=True).select_option("erp")
    create.click()
    busy = page.locator("#create-backup")
    expect(busy).to_have_text("Creando...")
    expect(busy).to_be_disabled()
    expect(page.locator(".toast").first).to_have_text("Backup iniciado")
    # The script reloads the page when the job has ended.
    completed = page.locator("tr[data-status=completed]")
    expect(completed).to_have_count(1)
    expect(completed.locator(".badge")).to_have_text("Completado")
    expect(completed.locator("td").nth(5)).to_have_text("✗")  # not tested yet
    backup_id = completed.get_attribute("data-backup")
    assert backup_id

    completed.get_by_role("button", name="Restaurar").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(
        "¿Está seguro de restaurar este backup? Esto detendrá el sistema."
    )
    target = dialog.get_by_label("Nombre de la base de datos nueva").input_value()
    assert target.startswith("erp_restored_")
    # The script reloads the page once the job has ended: wait for that reload, or the
    # next goto can be cut off by it (net::ERR_ABORTED).
    with page.expect_navigation():
        dialog.get_by_role("button", name="Restaurar").click()
        expect(page.locator(".toast").first).to_have_text("Restauración iniciada")
    wait_for_jobs(site, "restore")
    restored = [j for j in jobs(site.respaldo) if j["kind"] == "restore"]
    assert restored[0]["status"] == "completed", restored
    assert _rows(site, restored[0]["target"]) == _rows(site, site.respaldo.dbname)

    page.goto(f"{site.url}/backups/{backup_id}")
    expect(page.get_by_role("heading", name=f"Backup {backup_id}")).to_be_visible()
    expect(page.get_by_text("dump", exact=True)).to_be_visible()
    # The sample's documents are large objects: the page says the backup recorded them.
    expect(page.get_by_text(re.compile(r"^\d+ objetos grandes \(.+\) registrados"))).to_be_visible()
    assert serious_violations(page) == []

    page.goto(f"{site.url}/drills")
    page.get_by_role("button", name="Ejecutar una prueba de restauración").click()
    expect(page.locator(".toast").first).to_have_text("Prueba de restauración iniciada")
    passed = page.locator("tr[data-drill]")
    expect(passed.locator(".badge")).to_have_text("Aprobado")
    expect(passed.locator("ul.checks li").first).to_be_visible()
    assert serious_violations(page) == []
    page.goto(f"{site.url}/")
    # The restore test proved the backup: now it reads verified.
    expect(page.locator(f"tr[data-backup='{backup_id}'] td").nth(5)).to_have_text("✓")

    # A backup of a database that is down: the red badge.
    page.goto(f"{site.url}/")
    page.get_by_label("Base de datos", exact=True).select_option("unreachable")
    page.get_by_role("button", name="Crear Backup Manual").click()
    failed = page.locator("tr[data-status=failed]")
    expect(failed.locator(".badge")).to_have_text("Fallido")
    colour = failed.locator(".badge").evaluate("b => getComputedStyle(b).backgroundColor")
    assert colour == "rgb(253, 226, 225)"  # --bad-bg

    for path in ("/jobs", "/databases", "/schedule", "/retention", "/audit", "/alerts"):
        page.goto(f"{site.url}{path}")
        assert serious_violations(page) == [], path

    # At a phone's width nothing runs off the side: wide tables scroll in their own box.
    page.set_viewport_size({"width": 375, "height": 740})
    for path in ("/", "/jobs", "/databases"):
        page.goto(f"{site.url}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)
    page.set_viewport_size({"width": 1280, "height": 800})

    page.goto(f"{site.url}/audit")
    page.get_by_label("Idioma").select_option("en")
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    page.goto(f"{site.url}/")
    expect(page.get_by_role("button", name="Create manual backup")).to_be_visible()
    expect(page.locator("tr[data-status=failed] .badge")).to_have_text("Failed")


def wait_for_jobs(site: Site, kind: str) -> None:

    wait_for(
        f"the {kind} job to end",
        lambda: any(
            j["kind"] == kind and j["status"] not in ("queued", "running")
            for j in jobs(site.respaldo)
        ),
    )


def test_a_viewer_sees_no_action_and_a_forged_post_is_refused(
    shared_site: Site, page: Page
) -> None:
    record = shared_site.respaldo.backup()
    shared_site.login(page, "viewer")
    expect(page.locator(f"tr[data-backup='{record['id']}']")).to_be_visible()
    expect(page.get_by_role("button", name="Crear Backup Manual")).to_have_count(0)
    expect(page.get_by_role("button", name="Restaurar")).to_have_count(0)
    expect(page.get_by_role("link", name="Registro de auditoría")).to_have_count(0)
    # The retention preview deletes nothing: a viewer sees it, as GET /admin/retention.
    page.get_by_role("link", name="Retención").click()
    expect(page.get_by_role("heading", name="Retención")).to_be_visible()
    expect(page.locator("tr", has_text=record["id"]).locator(".badge")).to_have_text("Conservar")
    before = jobs(shared_site.respaldo)

    token = page.locator("body").get_attribute("data-csrf")
    forged = page.request.post(
        f"{shared_site.url}/backups/{record['id']}/restore",
        form={"csrf": token or "", "mode": "new"},
        headers={"Accept": "application/json"},
    )
    assert forged.status == 403
    created = page.request.post(
        f"{shared_site.url}/backups",
        form={"csrf": token or "", "database": "erp"},
        headers={"Accept": "application/json"},
    )
    assert created.status == 403
    refused = page.goto(f"{shared_site.url}/audit")
    assert refused is not None
    assert refused.status == 403
    assert jobs(shared_site.respaldo) == before

    # Logged in with every right, a post without the page's CSRF token is refused too.
    page.context.clear_cookies()
    shared_site.login(page, "admin")
    no_token = page.request.post(
        f"{shared_site.url}/backups",
        form={"database": "erp"},
        headers={"Accept": "application/json"},
    )
    assert no_token.status == 403
    other_token = page.request.post(
        f"{shared_site.url}/backups",
        form={"csrf": "x" * 43, "database": "erp"},
        headers={"Accept": "application/json"},
    )
    assert other_token.status == 403
    assert jobs(shared_site.respaldo) == before

    audit = shared_site.respaldo.run_process("audit", "--json")
    assert audit.code == 0, str(audit)
    denied = [e for e in audit.json() if e["outcome"] == "denied" and e["actor"] == "viewer"]
    assert {e["target"] for e in denied} >= {
        f"POST /backups/{record['id']}/restore",
        "POST /backups",
        "GET /audit",
    }


def test_logout_ends_the_session(shared_site: Site, page: Page) -> None:
    shared_site.login(page, "admin")
    page.get_by_role("button", name="Cerrar sesión").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(f"{shared_site.url}/jobs")
    expect(page).to_have_url(re.compile(r"/login\?next=/jobs$"))


def test_the_accessibility_check_finds_what_it_must(page: Page) -> None:
    # The check the pages pass above does fail a page with a serious violation.
    page.set_content('<html lang="en"><body><main><input type="text"></main></body></html>')
    found = serious_violations(page)
    assert any(v.startswith("label:") for v in found), found


def test_the_api_docs_page_runs_from_respaldo_alone(shared_site: Site, page: Page) -> None:
    # Swagger UI from respaldo's own files under its Content-Security-Policy: the page
    # lists the API's operations, and the browser refused nothing and fetched nothing
    # from another origin.
    refused: list[str] = []
    elsewhere: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
    page.on(
        "request", lambda r: None if r.url.startswith(shared_site.url) else elsewhere.append(r.url)
    )
    page.goto(f"{shared_site.url}/docs")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert page.locator(".opblock-summary-path", has_text="/admin/backups").count() > 0
    assert refused == [] and elsewhere == [], (refused, elsewhere)


def test_health_reasons_and_operation_errors_read_in_the_pages_language(
    site: Site, page: Page
) -> None:
    # The browser asks for Spanish (the page fixture's Accept-Language: es-MX).
    site.login(page, "admin")
    page.get_by_label("Base de datos", exact=True).select_option("unreachable")
    page.get_by_role("button", name="Crear Backup Manual").click()
    expect(page.locator("tr[data-status=failed] .badge")).to_have_text("Fallido")
    failed = [j for j in jobs(site.respaldo) if j["kind"] == "backup"]
    recorded = failed[0]["error"]
    # respaldo's own frame of the error (the connection, or pg_dump's exit) is Spanish on
    # the jobs page; what the server's library wrote stays as written.
    frames = {
        "cannot connect to PostgreSQL (": "no se puede conectar a PostgreSQL (",
        "pg_dump exited with status ": "pg_dump terminó con el estado ",
    }
    english, spanish = next((e, s) for e, s in frames.items() if recorded.startswith(e))
    page.goto(f"{site.url}/jobs")
    error = page.locator("tr").filter(has_text="Fallido").locator(".error").first
    expect(error).to_contain_text(spanish)
    assert english not in error.inner_text()
    engine = " ".join(recorded.split(": ", 1)[1].split())
    assert engine[-40:] in " ".join(error.inner_text().split())

    # The health page: the server that does not answer, and no backup ever completed.
    page.goto(f"{site.url}/databases")
    section = page.locator("section").filter(
        has=page.get_by_role("heading", name=re.compile(r"^unreachable\b"))
    )
    expect(section).to_contain_text("no se puede conectar con el servidor: ")
    expect(section).to_contain_text("nunca se completó ningún backup lógico")
    assert "the server cannot be reached" not in section.inner_text()

    # A refused action's toast: a restore test of a database with no backup.
    page.goto(f"{site.url}/drills")
    page.get_by_label("Base de datos", exact=True).select_option("unreachable")
    page.get_by_role("button", name="Ejecutar una prueba de restauración").click()
    expect(page.locator(".toast").first).to_have_text(
        "Error al iniciar la prueba de restauración: database: no hay ningún backup lógico "
        "o físico completado de unreachable que probar"
    )

    # In English (the switch): the same words as the API and the CLI.
    page.get_by_label("Idioma").select_option("en")
    expect(page.get_by_role("heading", name="Restore tests")).to_be_visible()
    page.goto(f"{site.url}/jobs")
    expect(page.locator("tr").filter(has_text="Failed").locator(".error").first).to_contain_text(
        english
    )
    page.goto(f"{site.url}/databases")
    section = page.locator("section").filter(
        has=page.get_by_role("heading", name=re.compile(r"^unreachable\b"))
    )
    expect(section).to_contain_text("the server cannot be reached: ")
    expect(section).to_contain_text("no logical backup was ever completed")


@contextmanager
def decoy_site(content: str) -> Iterator[str]:
    """Another origin on this host (same site: only the port differs) serving the page
    ``content``; its address. A real server: Chromium refuses a loopback frame or form
    in a page that does not come from a local address."""
    body = f"<!doctype html><title>decoy</title>{content}".encode()

    class Decoy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Decoy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/decoy.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_no_site_can_frame_the_page_logged_in(shared_site: Site, page: Page) -> None:
    # Another port of the same host is the same *site*: SameSite=Strict sends the
    # session's cookies into its frame. The page must refuse to be framed, or a decoy
    # over a transparent frame gets its buttons clicked (clickjacking).
    shared_site.login(page, "admin")
    with decoy_site(f'<iframe src="{shared_site.url}/drills"></iframe>') as decoy:
        with page.expect_response(f"{shared_site.url}/drills") as framed:
            page.goto(decoy)
        page.wait_for_load_state("load")
    assert framed.value.status == 200  # it was sent logged in: only the header stops it
    inner = page.frames[1]
    assert inner.url.startswith("chrome-error://"), inner.url
    expect(page.frame_locator("iframe").get_by_role("button")).to_have_count(0)
    assert "frame-ancestors 'none'" in framed.value.headers["content-security-policy"]
    assert framed.value.headers["x-frame-options"] == "DENY"


def test_after_logout_back_shows_nothing_the_session_saw(shared_site: Site, page: Page) -> None:
    # On a shared machine the next person presses "Back": a page kept in the browser's
    # cache would show the audit log and the users to them.
    shared_site.login(page, "admin")
    page.goto(f"{shared_site.url}/audit")
    expect(page.get_by_role("heading", name="Usuarios")).to_be_visible()
    page.get_by_role("button", name="Cerrar sesión").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.go_back()
    expect(page).to_have_url(re.compile(r"/login\?next=/audit$"))
    expect(page.get_by_role("heading", name="Usuarios")).to_have_count(0)
    # The API's tokens are never stored either (RFC 6749 5.1); the static files keep
    # their ETag and are revalidated.
    tokens = page.request.post(
        f"{shared_site.url}/auth/token", form={"username": "admin", "password": PASSWORDS["admin"]}
    )
    assert tokens.status == 200
    assert tokens.headers["cache-control"] == "no-store"
    style = page.request.get(f"{shared_site.url}/static/respaldo.css")
    assert style.headers.get("etag") and "cache-control" not in style.headers


def test_a_login_name_cannot_command_the_terminal_that_reads_the_audit_log(
    shared_site: Site, page: Page
) -> None:
    # Anyone who reaches the port can fail a login; the name is audited as typed. Its
    # escape sequences must reach `respaldo audit`'s terminal as text, not be obeyed
    # (clear the screen, climb up to overwrite the entries above, retitle the window).
    name = "mallory\x1b[2J\x1b[1A\x1b]0;owned\x07\u202e"
    refused = page.request.post(
        f"{shared_site.url}/auth/token", form={"username": name, "password": "guess"}
    )
    assert refused.status == 401
    shown = shared_site.respaldo.run("audit")
    assert shown.code == 0, str(shown)
    assert not any(c in shown.out for c in "\x1b\x07\u202e"), repr(shown.out)
    assert "mallory\\x1b[2J\\x1b[1A" in shown.out.replace("\n", "")
    assert shared_site.respaldo.run("audit", "--json").json()[0]["actor"] == name


def test_a_form_posted_from_another_origin_with_the_cookies_changes_nothing(
    shared_site: Site, page: Page
) -> None:
    # Same site (another port of this host): the browser sends the SameSite=Strict
    # session with the decoy's form, which cannot know the page's CSRF token.
    shared_site.login(page, "admin")
    before = jobs(shared_site.respaldo)
    form = (
        f'<form method="post" action="{shared_site.url}/drills"><input name="database" value="erp">'
        "</form><script>document.forms[0].submit()</script>"
    )
    with decoy_site(form) as decoy, page.expect_response(f"{shared_site.url}/drills") as posted:
        page.goto(decoy)
    assert posted.value.request.method == "POST"
    assert "respaldo_session=" in (posted.value.request.header_value("cookie") or "")
    assert posted.value.status == 403
    assert jobs(shared_site.respaldo) == before


def test_the_retention_page_says_when_prune_would_refuse_for_the_clock(
    site: Site, page: Page
) -> None:
    """Backups stopped ten days ago: the page listed "Caducar" and nothing more, while
    every prune refused and deleted nothing; it now says the refusal, in Spanish."""
    from tests.integration.api.test_routes import stopped_ten_days_ago

    ids = [site.respaldo.backup()["id"] for _ in range(3)]
    stopped_ten_days_ago(site.respaldo, ids)
    site.login(page, "viewer")
    page.get_by_role("link", name="Retención").click()
    refused = page.locator("[data-refused]")
    expect(refused).to_contain_text("la depuración se negó, no se eliminó nada")
    expect(refused).to_contain_text("10 días después de que se completara el backup más reciente")
