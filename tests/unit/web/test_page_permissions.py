"""Every form of the page that changes something, against every role: refused (403,
audited) without the permission the API asks for the same change, and every such route
of the page is in this matrix (a new one must be added here to pass)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from tests.unit.access.conftest import (  # noqa: F401 (fixtures)
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


def test_every_post_of_the_page_is_in_the_matrix() -> None:
    posts = {
        str(getattr(r, "path", ""))
        for r in pages.router.routes
        if "POST" in getattr(r, "methods", set())
    }
    assert posts == set(CHANGES) | SESSION


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("path", list(CHANGES))
def test_each_change_needs_its_permission(
    browser: TestClient,  # noqa: F811
    context: Context,  # noqa: F811
    role: Role,
    path: str,
) -> None:
    job = jobs.submit(context, jobs.JobRequest(JobKind.PRUNE, None, TriggeredBy.CLI, "t")).id
    add_user(context, "someone", role)
    _login(browser, "someone")
    token = browser.cookies.get(session.CSRF_COOKIE)
    url = path.format(backup_id="20261128T083000Z-1a2b3c4d", job_id=job)
    answer = browser.post(url, data={"csrf": token}, headers={"Accept": "application/json"})
    denied = [e.target for e in audit.entries(context, user="someone") if e.outcome == "denied"]
    if CHANGES[path] in GRANTED[role]:
        assert answer.status_code != 403, answer.text
        assert denied == []
    else:
        assert answer.status_code == 403, answer.text
        assert denied == [f"POST {url}"]
