"""Every form of the page that changes something, against every role: refused (403,
audited) without the permission the API asks for the same change, and every such route
of the page is in this matrix (a new one must be added here to pass). Every page that
shows something asks for the permission of the API route that answers the same."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from tests.unit.access.conftest import (  # noqa: F401 (fixtures)
    PASSWORD,
    add_user,
    cheap_hashes,
    clock,
    context,
    settings,
)
from tests.unit.access.test_permissions import GRANTED
from tests.unit.web.test_session import _login, browser, site  # noqa: F401 (fixtures)

from respaldo.domain import JobKind, Permission, Role, TriggeredBy
from respaldo.operations import audit, jobs
from respaldo.operations.context import Context
from respaldo.web import pages, session

# The page's posts that change something, and the permission each needs ({job}: a
# queued job; the backup need not exist: the permission is checked first).
CHANGES = {
    "/backups": Permission.CREATE,
    "/backups/{backup_id}/restore": Permission.APPROVE,
    "/jobs/{job_id}/cancel": Permission.APPROVE,
    "/drills": Permission.APPROVE,
}
# Posts that change only the browser's own session or language.
SESSION = {"/login", "/login/token", "/logout", "/language"}

# The page's views -> the API route that answers the same, and the permission both need
# (None: no route of the API shows it). {backup_id}, {job_id} need not exist: the
# permission is checked first.
VIEWS: dict[str, tuple[str | None, Permission]] = {
    "/": ("/admin/backups", Permission.READ),
    "/backups/{backup_id}": ("/admin/backups/{backup_id}", Permission.READ),
    "/jobs": ("/admin/jobs", Permission.READ),
    "/jobs/table": ("/admin/jobs", Permission.READ),
    "/jobs/{job_id}.json": ("/admin/jobs/{job_id}", Permission.READ),
    "/drills": ("/admin/restore-tests", Permission.READ),
    "/databases": ("/admin/status", Permission.READ),
    # A preview deletes nothing: whoever may read the backups may see what prune would do.
    "/retention": ("/admin/retention", Permission.READ),
    "/audit": ("/admin/audit", Permission.APPROVE),
    "/schedule": (None, Permission.READ),
    "/alerts": (None, Permission.READ),
}
# Views anyone may open.
OPEN_VIEWS = {"/login"}


def test_every_post_of_the_page_is_in_the_matrix() -> None:
    posts = {
        str(getattr(r, "path", ""))
        for r in pages.router.routes
        if "POST" in getattr(r, "methods", set())
    }
    assert posts == set(CHANGES) | SESSION


@pytest.mark.parametrize("path", list(CHANGES))
def test_each_change_needs_its_permission(
    browser: TestClient,  # noqa: F811
    context: Context,  # noqa: F811
    path: str,
) -> None:
    # Every role in turn on one catalog and site (one per role showed nothing more): a
    # user and a queued job of each role's own, its browser session alone.
    for role in Role:
        name = f"someone-{role.value}"
        job = jobs.submit(context, jobs.JobRequest(JobKind.PRUNE, None, TriggeredBy.CLI, "t")).id
        add_user(context, name, role)
        browser.cookies.clear()
        _login(browser, name)
        token = browser.cookies.get(session.CSRF_COOKIE)
        url = path.format(backup_id="20261128T083000Z-1a2b3c4d", job_id=job)
        answer = browser.post(url, data={"csrf": token}, headers={"Accept": "application/json"})
        denied = [e.target for e in audit.entries(context, user=name) if e.outcome == "denied"]
        if CHANGES[path] in GRANTED[role]:
            assert answer.status_code != 403, (role, answer.text)
            assert denied == [], role
        else:
            assert answer.status_code == 403, (role, answer.text)
            assert denied == [f"POST {url}"], role


def test_every_view_of_the_page_is_in_the_matrix() -> None:
    views = {
        str(getattr(r, "path", ""))
        for r in pages.router.routes
        if "GET" in getattr(r, "methods", set())
    }
    assert views == set(VIEWS) | OPEN_VIEWS


@pytest.mark.parametrize("path", list(VIEWS))
def test_each_view_needs_the_permission_of_its_api_route(
    browser: TestClient,  # noqa: F811
    context: Context,  # noqa: F811
    path: str,
) -> None:
    # Every role in turn on one catalog and site (one per role showed nothing more): a
    # user of each role's own, its browser session alone.
    for role in Role:
        name = f"someone-{role.value}"
        add_user(context, name, role)
        browser.cookies.clear()
        # The same user through the API (a bearer token) and through the page (its session).
        login = browser.post("/auth/token", data={"username": name, "password": PASSWORD})
        assert login.status_code == 200, login.text
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        _login(browser, name)
        api_path, permission = VIEWS[path]
        ids = {"backup_id": "20261128T083000Z-1a2b3c4d", "job_id": "987654"}
        url = path.format(**ids)
        shown = browser.get(url)
        answered = browser.get(api_path.format(**ids), headers=bearer) if api_path else None
        denied = [str(e.target) for e in audit.entries(context, user=name) if e.outcome == "denied"]
        if permission in GRANTED[role]:
            assert shown.status_code not in (401, 403), (role, shown.text)
            assert answered is None or answered.status_code not in (401, 403), (
                role,
                answered.text,
            )
            assert denied == [], role
        else:
            assert shown.status_code == 403, (role, shown.text)
            assert api_path is not None and answered is not None
            assert answered.status_code == 403, (role, answered.text)
            # Each refusal is audited, the page's as the API's.
            assert sorted(denied) == sorted([f"GET {api_path.format(**ids)}", f"GET {url}"]), role
