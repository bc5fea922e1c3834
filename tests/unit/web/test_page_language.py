"""The page in Spanish says everything in Spanish: the words of respaldo's own vocabulary
(job kinds, checks, copy roles, who started a backup, audit actions and outcomes, alert
kinds) are translated, not printed as the catalog stores them."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import get_args

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.unit.access.conftest import SECRET, add_user, cheap_hashes, write_secret  # noqa: F401
from tests.unit.api.conftest import FAST_KDF, completed_backup, token_headers
from tests.unit.web.test_session import _login

from respaldo import reasons
from respaldo.catalog import (
    BackupCopies,
    BackupRecords,
    Deliveries,
    DrillRuns,
    Jobs,
    Notifications,
)
from respaldo.config import Settings
from respaldo.domain import (
    AuditAction,
    AuditOutcome,
    BackupKind,
    CopyStatus,
    JobKind,
    JobStatus,
    Role,
    TriggeredBy,
)
from respaldo.operations import audit, drill, status
from respaldo.operations.context import Context
from respaldo.operations.drill import Check, DrillResult
from respaldo.operations.files_backup import backup_files
from respaldo.operations.repositories import init_repositories
from respaldo.web import i18n, pages
from respaldo.web.session import CSRF_COOKIE
from respaldo.web.site import create_site

pytestmark = pytest.mark.unit

DAY = timedelta(days=1)


@pytest.fixture
def context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "correct horse (test)")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("a")
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        repositories=[
            {"name": "local", "url": f"file://{tmp_path / 'repo'}"},
            {"name": "offsite", "url": f"file://{tmp_path / 'offsite'}"},
        ],
        databases=[{"name": "erp", "dsn": "postgresql://u@127.0.0.1:1/erp"}],
        file_sets=[{"name": "docs", "paths": [docs]}],
        cache_dir=tmp_path / "cache",
        server={"jwt_secret_file": write_secret(tmp_path / "jwt.key", SECRET)},
    )
    init_repositories(settings, kdf=FAST_KDF)
    with Context.open(settings, create=True) as opened:
        yield opened


@pytest.fixture
def site(context: Context) -> FastAPI:
    return create_site(context.settings, context)


def _cells(html: str) -> list[str]:
    """The text of every table cell and definition of a page, tags and spaces removed."""
    found = re.findall(r"<(?:td|dd)\b[^>]*>(.*?)</(?:td|dd)>", html, flags=re.S)
    return [" ".join(unescape(re.sub(r"<[^>]+>", " ", cell)).split()) for cell in found]


def _column(html: str, index: int) -> list[str]:
    """The cells of column ``index`` of every table row of a page."""
    rows = re.findall(r"<tr\b[^>]*>(.*?)</tr>", html, flags=re.S)
    return [found[index] for row in rows if len(found := _cells(row)) > index]


def _words(cells: list[str]) -> set[str]:
    return {word for cell in cells for word in re.split(r"[\s·—:(),]+", cell) if word}


def test_every_word_of_respaldos_vocabulary_is_spanish_on_the_spanish_page(
    site: FastAPI, context: Context
) -> None:
    now = datetime.now(UTC)
    completed_backup(context, "erp", BackupKind.FULL, now - timedelta(hours=1))
    # A real backup (its page reads its manifest), copied to the mirror.
    backup = backup_files(context, "docs", triggered_by=TriggeredBy.SCHEDULE).view.id
    with context.catalog.begin() as session:
        jobs = Jobs(session)
        for kind in JobKind:
            row = jobs.submit(kind, target="erp", triggered_by=TriggeredBy.CLI, requested_by="t")
            jobs.start(row.id, pid=1)
            jobs.finish(row.id, JobStatus.FAILED, error="boom")
        Notifications(session).add(
            sent_at=now,
            level="critical",
            kind="backup",
            key=None,
            target="mail",
            ok=True,
            error=None,
        )
        # An alert the target has not taken yet, and one given up.
        deliveries = Deliveries(session)
        for _n in range(2):
            kept = deliveries.add(
                created_at=now, target="mail", level="critical", kind="backup", key=None, alert="{}"
            )
        deliveries.end(kept.id, state="given_up", now=now, error="refused")
    for action in AuditAction:
        audit.record(context, "ana", action, None, AuditOutcome.DENIED)
    add_user(context, "ana", Role.ADMIN)
    with TestClient(site, follow_redirects=False) as browser:
        _login(browser, "ana")
        paths = ("/jobs", "/databases", f"/backups/{backup}", "/audit", "/alerts", "/schedule")
        answers = {path: browser.get(path) for path in paths}
    assert {p: a.status_code for p, a in answers.items()} == dict.fromkeys(paths, 200)
    cells = {path: _cells(answer.text) for path, answer in answers.items()}
    # Where the page shows names from the configuration (a schedule's) or sentences the
    # operations write (a check's reason), only the column of respaldo's own words.
    cells["/schedule"] = _column(answers["/schedule"].text, 1)
    cells["/databases"] = _column(answers["/databases"].text, 0)
    shown = {path: _words(found) for path, found in cells.items()}
    vocabulary = {
        "/jobs": {k.value for k in JobKind},
        "/schedule": {k.value for k in JobKind},
        "/databases": {"rpo", "size", "server", "restore_test", "copy", "repository"},
        f"/backups/{backup}": {"primary", "mirror", "schedule"},
        "/audit": {a.value for a in AuditAction} | {o.value for o in AuditOutcome},
        "/alerts": {"backup"},
    }
    leaks = {path: sorted(shown[path] & words) for path, words in vocabulary.items()}
    assert all(not words for words in leaks.values()), f"English on the Spanish page: {leaks}"
    # ... and they read as the Spanish catalog has them.
    assert "Prueba de restauración" in cells["/jobs"]
    alerts_said = " ".join(cells["/alerts"])
    assert "en espera" in alerts_said and "abandonada" in alerts_said
    # The kind as the status and the CLI name it (logical, physical), not "Completo
    # (lógico)" beside "Físico".
    assert "Antigüedad del backup · Lógico" in cells["/databases"]
    assert {"Principal", "Programado"} <= set(cells[f"/backups/{backup}"])
    assert "Inicio de sesión" in cells["/audit"]


def test_a_backup_a_prune_deleted_from_its_primary_says_when_on_its_page_and_in_the_api(
    site: FastAPI, context: Context
) -> None:
    # Expired while its mirror could not be reached: its page and GET /admin/backups/{id}
    # failed reading the manifest the primary no longer holds ("no backup ... in
    # file:///..."), and no field said when or why it went.
    backup = completed_backup(context, "erp", BackupKind.FULL, datetime.now(UTC) - 9 * DAY)
    gone = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    with context.catalog.begin() as session:
        BackupCopies(session).mark(backup, "offsite", CopyStatus.COMPLETED)
        BackupRecords(session).deleted_from_primary(backup, now=gone)
    add_user(context, "ana", Role.VIEWER)
    api = token_headers(context, "viewer", Role.VIEWER)
    with TestClient(site, follow_redirects=False) as browser:
        _login(browser, "ana")
        spanish = browser.get(f"/backups/{backup}")
        english = browser.get(f"/backups/{backup}", headers={"Accept-Language": "en"})
        answer = browser.get(f"/admin/backups/{backup}", headers=api)
        style = browser.get("/static/respaldo.css").text
    assert (spanish.status_code, english.status_code, answer.status_code) == (200, 200, 200)
    # Each badge of the page has its colour, the primary's "deleted" too (it had none:
    # grey as no other status was).
    badges = set(re.findall(r'class="badge (status-[a-z_]+)"', spanish.text))
    assert "status-deleted" in badges
    coloured = {
        name
        for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", style)
        if "background" in body
        for name in re.findall(r"\.(status-[a-z_]+)", selectors)
    }
    assert badges <= coloured, badges - coloured
    detail = answer.json()
    assert detail["backup"]["primaryDeletedAt"] == "2026-12-01T03:00:00Z"
    assert detail["manifest"] is None
    assert [(c["repository"], c["status"]) for c in detail["copies"]] == [
        ("local", "deleted"),
        ("offsite", "completed"),
    ]
    said = " ".join(_cells(spanish.text))
    assert "se eliminó del repositorio local (caducado por una depuración, o a mano)" in said
    assert "Eliminado del principal" in unescape(spanish.text)
    assert "Principal Eliminado" in said  # the primary's row of the copies
    said = " ".join(_cells(english.text))
    assert "it was deleted from repository local (expired by a prune, or by hand)" in said


def test_every_label_of_the_pages_vocabulary_has_its_spanish() -> None:
    es = i18n.translations("es")
    for table in pages.VOCABULARY.values():
        for value, message in table.items():
            same = {"API", "Backup"}  # Spanish says them so too
            assert es.gettext(message) != message or message in same, (value, message)


def _checked_good_unchecked_and(context: Context, damaged: str) -> tuple[str, str]:
    """Two full backups of erp, one verified and one never checked, and backup
    ``damaged`` marked as failed verification; returns the first two."""
    now = datetime.now(UTC)
    good = completed_backup(context, "erp", BackupKind.FULL, now - timedelta(hours=3))
    unchecked = completed_backup(context, "erp", BackupKind.FULL, now - timedelta(hours=2))
    with context.catalog.begin() as session:
        records = BackupRecords(session)
        records.set_verified(good, now)
        records.set_verified(damaged, now, verified=False, problem="damaged: 3 chunks lost")
    return good, unchecked


def test_a_backup_that_failed_verification_is_marked_so_not_as_merely_unchecked(
    site: FastAPI, context: Context
) -> None:
    # 'respaldo list' says yes / no / failed; the page said ✗ for both "never checked"
    # and "repair found it cannot be restored", under a green "completed" badge.
    damaged = backup_files(context, "docs").view.id  # a real one: its page reads it
    good, unchecked = _checked_good_unchecked_and(context, damaged)
    add_user(context, "ana", Role.VIEWER)
    with TestClient(site, follow_redirects=False) as browser:
        _login(browser, "ana")
        listing = browser.get("/").text
        detail = browser.get(f"/backups/{damaged}").text
    rows = {
        backup: _cells(row)[5]
        for backup, row in re.findall(
            r'<tr data-backup="([^"]+)"[^>]*>(.*?)</tr>', listing, flags=re.S
        )
    }
    assert rows == {good: "✓", unchecked: "✗", damaged: "✗ Verificación fallida"}
    assert 'title="damaged: 3 chunks lost"' in listing
    assert "Verificación fallida" in detail


def test_a_backup_that_failed_verification_is_not_offered_for_restore(
    site: FastAPI, context: Context
) -> None:
    # Its restore would stop at the verification: the page offered it all the same,
    # next to the good backups that would restore.
    damaged = completed_backup(context, "erp", BackupKind.FULL, datetime.now(UTC))
    good, unchecked = _checked_good_unchecked_and(context, damaged)
    add_user(context, "jefa", Role.ADMIN)
    with TestClient(site, follow_redirects=False) as browser:
        _login(browser, "jefa")
        listing = browser.get("/").text
    offered = set(re.findall(r'data-restore="([^"]+)"', listing))
    assert offered == {good, unchecked}


def test_the_schedule_shows_its_runs_at_the_hour_its_cron_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # '0 3 * * *' in America/Mexico_City runs at 03:00 there: the page said 09:00:00,
    # UTC without saying so, beside the cron that says 3.
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "correct horse (test)")
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        repositories=[{"name": "local", "url": f"file://{tmp_path / 'repo'}"}],
        databases=[{"name": "erp", "dsn": "postgresql://u@127.0.0.1:1/erp"}],
        schedules={"time_zone": "America/Mexico_City", "full": "0 3 * * *"},
        cache_dir=tmp_path / "cache",
        server={"jwt_secret_file": write_secret(tmp_path / "jwt.key", SECRET)},
    )
    init_repositories(settings, kdf=FAST_KDF)
    with Context.open(settings, create=True) as context:
        add_user(context, "ana", Role.VIEWER)
        with TestClient(create_site(settings, context), follow_redirects=False) as browser:
            _login(browser, "ana")
            page = browser.get("/schedule").text
    rows = re.findall(r"<tr>(.*?)</tr>", page, flags=re.S)
    full = next(row for row in rows if "full:erp" in row)
    runs = [unescape(run) for run in re.findall(r"<li>(.*?)</li>", full)]
    assert len(runs) == 3, full
    assert all(re.search(r", 0?3:00:00 -0600 \(", run) for run in runs), runs


def test_a_failure_reason_reads_in_spanish_with_the_engines_words_as_written(
    site: FastAPI, context: Context
) -> None:
    engine = 'relation "finanzas.facturas" does not exist'
    backup = completed_backup(context, "erp", BackupKind.FULL, datetime.now(UTC))
    checks = [Check("restore", True, "1024 bytes in 0.5 s"), Check("row counts", False, engine)]
    failure = DrillResult(1, backup, "erp", False, None, checks).found_failure()
    with context.catalog.begin() as session:
        jobs = Jobs(session)
        row = jobs.submit(
            JobKind.DRILL, target="erp", triggered_by=TriggeredBy.CLI, requested_by="t"
        )
        jobs.start(row.id, pid=1)
        jobs.finish(row.id, JobStatus.FAILED, error=failure)
        run = DrillRuns(session).start(backup, database="erp", scratch_name="s", job_id=row.id)
        DrillRuns(session).finish(
            run.id,
            passed=False,
            restore_seconds=0.5,
            checks=[c.to_json() for c in checks],
            error=failure,
        )
    add_user(context, "ana", Role.VIEWER)
    with TestClient(site, follow_redirects=False) as browser:
        _login(browser, "ana")
        shown = {path: unescape(browser.get(path).text) for path in ("/jobs", "/drills")}
    said = f"la prueba de restauración falló: recuento de filas: {engine}"
    assert said in shown["/jobs"]
    assert said in shown["/drills"]
    assert f"recuento de filas — {engine}" in " ".join(shown["/drills"].split())
    assert "the restore test failed" not in shown["/jobs"] + shown["/drills"]


def test_the_health_reasons_read_in_the_pages_language(site: FastAPI, context: Context) -> None:
    # A full backup past its RPO, no restore test, a server that does not answer: the
    # reasons in Spanish, the server's own error as it wrote it; in English as the API
    # and 'respaldo status' say them.
    completed_backup(
        context, "erp", BackupKind.FULL, datetime.now(UTC) - timedelta(hours=30, minutes=1)
    )
    add_user(context, "ana", Role.VIEWER)
    with TestClient(site, follow_redirects=False) as browser:
        _login(browser, "ana")
        spanish = _column(browser.get("/databases").text, 2)
        english = _column(browser.get("/databases", headers={"Accept-Language": "en"}).text, 2)
    assert (
        "el backup lógico más reciente se completó hace 30 h, por encima de su RPO de 26 h"
        in spanish
    )
    assert "nunca se ha superado ninguna prueba de restauración" in spanish
    libpq = 'connection to server at "127.0.0.1", port 1 failed: Connection refused'
    down = [cell for cell in spanish if cell.startswith("no se puede conectar con el servidor: ")]
    assert len(down) == 1 and libpq in down[0], spanish  # libpq's words as it wrote them
    assert "the newest logical backup completed 30 h ago, more than its RPO of 26 h" in english
    assert "no restore test ever passed" in english
    assert any(c.startswith("the server cannot be reached: ") and libpq in c for c in english)


def test_an_operations_error_reads_in_the_pages_language(site: FastAPI, context: Context) -> None:
    # Refused at once (a restore test of a database with no backup yet: the toast's and
    # the error page's words), and recorded by a job that failed (the jobs list).
    recorded = (
        "cannot connect to PostgreSQL (host=127.0.0.1 port=1 dbname=erp user=u): "
        'connection to server at "127.0.0.1", port 1 failed: Connection refused'
    )
    with context.catalog.begin() as session:
        jobs = Jobs(session)
        row = jobs.submit(
            JobKind.BACKUP, target="erp", triggered_by=TriggeredBy.CLI, requested_by="t"
        )
        jobs.start(row.id, pid=1)
        jobs.finish(row.id, JobStatus.FAILED, error=recorded)
        running = jobs.submit(
            JobKind.BACKUP,
            target="erp",
            triggered_by=TriggeredBy.CLI,
            requested_by="t",
            exclusive_key="backup:erp",
        )
        jobs.start(running.id, pid=1)
    add_user(context, "ana", Role.ADMIN)
    said: dict[str, tuple[str, str | None]] = {}
    busy: dict[str, str] = {}
    listed: dict[str, str] = {}
    with TestClient(site, follow_redirects=False) as browser:
        _login(browser, "ana")
        token = browser.cookies.get(CSRF_COOKIE)
        for language in ("es", "en"):
            headers = {"Accept-Language": language}
            answer = browser.post(
                "/drills",
                data={"csrf": token, "database": "erp"},
                headers={**headers, "Accept": "application/json"},
            )
            assert answer.status_code == 422, answer.text
            said[language] = (answer.json()["detail"], answer.json()["hint"])
            page = browser.post("/drills", data={"csrf": token, "database": "erp"}, headers=headers)
            assert said[language][0] in unescape(page.text)
            answer = browser.post(
                "/backups",
                data={"csrf": token, "database": "erp"},
                headers={**headers, "Accept": "application/json"},
            )
            assert answer.status_code == 409, answer.text
            busy[language] = answer.json()["detail"]
            listed[language] = " ".join(
                unescape(browser.get("/jobs", headers=headers).text).split()
            )
    assert said["es"] == (
        "database: no hay ningún backup lógico o físico completado de erp que probar",
        "haga uno con 'respaldo backup erp'",
    )
    assert said["en"] == (
        "database: no completed logical or physical backup of erp to test",
        "take one with 'respaldo backup erp'",
    )
    engine = 'connection to server at "127.0.0.1", port 1 failed: Connection refused'
    assert (
        "no se puede conectar a PostgreSQL (host=127.0.0.1 port=1 dbname=erp user=u): " + engine
    ) in listed["es"]
    assert recorded in listed["en"]
    assert busy == {
        "es": f"el trabajo {running.id} (backup de erp) está en curso",
        "en": f"job {running.id} (backup of erp) is running",
    }


def _drill_check_names() -> set[str]:
    """Every check name operations/drill.py writes as a literal (``Check("roles", ...)``,
    ``name = "large objects"``), read from its source so that a new check counts."""
    tree = ast.parse(Path(drill.__file__).read_text())
    names = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Check"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }
    names |= {
        node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["name"]
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }
    return names


def test_every_status_check_and_drill_check_has_its_spanish_on_the_page(
    site: FastAPI, context: Context
) -> None:
    # The verify:<repository> item's check had no label: the page would print "verify".
    assert set(get_args(status.Check)) <= set(pages.VOCABULARY["check"])
    named = _drill_check_names()
    assert {"restore", "roles", "large objects", "contents", "copies"} <= named
    # pg_amcheck is a program's name, said as such in every language.
    assert named - {"pg_amcheck"} <= set(reasons._CHECKS)
    # A restore test with every check the drill writes, on the Spanish page.
    backup = completed_backup(context, "erp", BackupKind.FULL, datetime.now(UTC))
    checks = [Check(name, True, "") for name in sorted(named)]
    with context.catalog.begin() as session:
        run = DrillRuns(session).start(backup, database="erp", scratch_name="s", job_id=None)
        DrillRuns(session).finish(
            run.id, passed=True, restore_seconds=0.5, checks=[c.to_json() for c in checks]
        )
    add_user(context, "ana", Role.VIEWER)
    with TestClient(site, follow_redirects=False) as browser:
        _login(browser, "ana")
        html = browser.get("/drills").text
    shown = [
        " ".join(unescape(re.sub(r"<[^>]+>", " ", item)).split())
        for item in re.findall(r'<ul class="checks">(.*?)</ul>', html, flags=re.S)[0].split("</li>")
        if item.strip()
    ]
    es = i18n.translations("es")
    said = {line.split(": ", 1)[1] for line in shown}  # "✓ superada: NAME"
    assert said == {es.gettext(reasons._CHECKS.get(n, n)) for n in named}
    assert not said & (named - {"pg_amcheck"}), said  # no check as respaldo stores it
    assert "roles del servidor" in said
