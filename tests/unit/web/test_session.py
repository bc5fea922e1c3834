"""The page's session, CSRF and access rules, against the real app and a real SQLite
catalog (no database server: these routes refuse before anything would run)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.unit.access.conftest import (  # noqa: F401 (fixtures)
    PASSWORD,
    Clock,
    add_user,
    cheap_hashes,
    clock,
    context,
    settings,
)

from respaldo.catalog.models import AuthSession
from respaldo.config import Settings
from respaldo.domain import AuditAction, JobKind, JobStatus, Role, TriggeredBy
from respaldo.operations import audit, jobs, users
from respaldo.operations.api_tokens import create_token
from respaldo.operations.auth import RACE_WINDOW, Authenticator, load_secret
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest
from respaldo.operations.principal import local_principal
from respaldo.web import session
from respaldo.web.site import create_site

pytestmark = pytest.mark.unit


@pytest.fixture
def site(settings: Settings, context: Context, clock: Clock) -> FastAPI:  # noqa: F811
    authenticator = Authenticator(settings, load_secret(settings), clock=clock)
    return create_site(settings, context, authenticator=authenticator)


@pytest.fixture
def browser(site: FastAPI) -> Iterator[TestClient]:
    with TestClient(site, base_url="http://testserver", follow_redirects=False) as client:
        yield client


def _csrf(browser: TestClient) -> str:
    answer = browser.get("/login")
    assert answer.status_code == 200
    token = browser.cookies.get(session.CSRF_COOKIE)
    assert token
    return str(token)


def _login(browser: TestClient, name: str, password: str = PASSWORD) -> None:
    token = _csrf(browser)
    answer = browser.post(
        "/login", data={"username": name, "password": password, "csrf": token, "next": "/jobs"}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/jobs"


def test_pages_ask_for_a_login_and_come_back(browser: TestClient) -> None:
    answer = browser.get("/jobs")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/jobs"


def test_the_page_runs_only_its_own_files(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    # A full Content-Security-Policy, which the page can bear: none of its HTML has an
    # inline script, style or handler (the Chromium tests fail on anything it refuses).
    login = browser.get("/login")
    add_user(context, "ana", Role.ADMIN)
    _login(browser, "ana")
    for path in ("/jobs", "/databases", "/audit", "/alerts", "/schedule", "/drills", ""):
        answer = browser.get(path) if path else login
        assert answer.status_code == 200, path
        assert answer.headers["content-security-policy"] == (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'"
        ), path
        html = answer.text.lower()
        assert "<style" not in html and " style=" not in html, path
        assert re.findall(r"<script(?![^>]*\ssrc=)", html) == [], path
        assert re.findall(r"\son[a-z]+=", html) == [], path


def test_session_cookies_are_httponly_and_strict(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    add_user(context, "ana", Role.OPERATOR)
    _login(browser, "ana")
    cookies = [c for c in browser.cookies.jar if c.name.startswith("respaldo_")]
    assert {c.name for c in cookies} >= {
        session.ACCESS_COOKIE,
        session.REFRESH_COOKIE,
        session.CSRF_COOKIE,
    }
    for cookie in cookies:
        assert cookie.has_nonstandard_attr("HttpOnly"), cookie.name
        assert cookie.get_nonstandard_attr("SameSite", "").lower() == "strict", cookie.name
    assert browser.get("/jobs").status_code == 200


def test_a_wrong_password_is_an_error_on_the_page_and_audited(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    add_user(context, "ana", Role.ADMIN)
    token = _csrf(browser)
    answer = browser.post("/login", data={"username": "ana", "password": "nope", "csrf": token})
    assert answer.status_code == 401
    assert "Usuario o contraseña incorrectos." in answer.text
    assert session.ACCESS_COOKIE not in browser.cookies
    (entry,) = audit.entries(context, user="ana")
    assert (entry.action, entry.outcome) == ("login", "failure")


def test_a_login_without_the_forms_token_is_refused(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    add_user(context, "ana", Role.ADMIN)
    _csrf(browser)
    answer = browser.post("/login", data={"username": "ana", "password": PASSWORD})
    assert answer.status_code == 403
    assert session.ACCESS_COOKIE not in browser.cookies


# Browsers read a backslash as a slash in a URL's path: "/\\evil.example" is
# "//evil.example", another host.
EVIL_TARGETS = (
    "https://evil.example/",
    "//evil.example/x",
    "javascript:alert(1)",
    "/\\evil.example",
    "/\\/evil.example/x",
)


def test_next_never_leads_to_another_site(browser: TestClient, context: Context) -> None:  # noqa: F811
    add_user(context, "ana", Role.ADMIN)
    token = _csrf(browser)
    for target in EVIL_TARGETS:
        browser.cookies.clear()
        token = _csrf(browser)
        answer = browser.post(
            "/login",
            data={"username": "ana", "password": PASSWORD, "csrf": token, "next": target},
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/", target


def test_posts_need_the_csrf_token_and_change_nothing_without_it(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    add_user(context, "ana", Role.ADMIN)
    _login(browser, "ana")
    before = jobs.list_jobs(context)
    for data in ({"database": "erp"}, {"database": "erp", "csrf": "x" * 43}):
        answer = browser.post("/backups", data=data, headers={"Accept": "application/json"})
        assert answer.status_code == 403
    assert jobs.list_jobs(context) == before


def test_a_viewer_is_refused_changes_and_the_refusal_is_audited(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    add_user(context, "vera", Role.VIEWER)
    _login(browser, "vera")
    token = browser.cookies.get(session.CSRF_COOKIE)
    answer = browser.post(
        "/backups", data={"csrf": token, "database": "erp"}, headers={"Accept": "application/json"}
    )
    assert answer.status_code == 403
    page = browser.get("/")
    assert "Crear Backup Manual" not in page.text
    assert browser.get("/audit").status_code == 403
    denied = [e.target for e in audit.entries(context, user="vera") if e.outcome == "denied"]
    assert set(denied) == {"POST /backups", "GET /audit"}


def test_an_expired_session_is_renewed_by_its_refresh_token(
    browser: TestClient,
    context: Context,  # noqa: F811
    site: FastAPI,
) -> None:
    add_user(context, "ana", Role.ADMIN)
    _login(browser, "ana")
    old = browser.cookies.get(session.ACCESS_COOKIE)
    # An access token that no longer verifies: the browser keeps its refresh token.
    refresh = browser.cookies.get(session.REFRESH_COOKIE)
    browser.cookies.clear()
    answer = browser.get(
        "/jobs",
        cookies={session.ACCESS_COOKIE: "expired.or.forged", session.REFRESH_COOKIE: refresh or ""},
    )
    assert answer.status_code == 200
    renewed = answer.cookies.get(session.ACCESS_COOKIE)
    assert renewed and renewed != old
    # The refresh token was used once: sent again, it opens nothing.
    again = browser.get(
        "/jobs",
        cookies={session.ACCESS_COOKIE: "expired.or.forged", session.REFRESH_COOKIE: refresh or ""},
    )
    assert again.status_code == 303
    assert site.state.authenticator.access_ttl == timedelta(minutes=15)


def test_logout_revokes_the_session_everywhere(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    add_user(context, "ana", Role.ADMIN)
    _login(browser, "ana")
    access = browser.cookies.get(session.ACCESS_COOKIE)
    refresh = browser.cookies.get(session.REFRESH_COOKIE)
    token = browser.cookies.get(session.CSRF_COOKIE)
    assert browser.post("/logout", data={"csrf": token}).status_code == 303
    # The old tokens, sent again, open nothing: not the page, not the API.
    browser.cookies.set(session.ACCESS_COOKIE, access or "")
    browser.cookies.set(session.REFRESH_COOKIE, refresh or "")
    assert browser.get("/jobs").status_code == 303
    api = browser.get("/admin/jobs", headers={"Authorization": f"Bearer {access}"})
    assert api.status_code == 401


def test_the_language_follows_the_browser_and_the_switch(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    add_user(context, "ana", Role.ADMIN)
    _login(browser, "ana")
    spanish = browser.get("/").text
    assert "Crear Backup Manual" in spanish
    # Links are paths: the page works behind a proxy whatever host name it is reached by.
    assert 'href="/jobs"' in spanish
    assert "http://testserver" not in spanish
    english = browser.get("/", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert "Create manual backup" in english.text
    token = browser.cookies.get(session.CSRF_COOKIE)
    switched = browser.post("/language", data={"language": "en", "csrf": token, "next": "/"})
    assert switched.status_code == 303
    assert "Create manual backup" in browser.get("/", headers={"Accept-Language": "es"}).text


def test_the_erps_own_token_opens_the_page_with_its_permissions(
    tmp_path: Path,
    settings: Settings,  # noqa: F811
    context: Context,  # noqa: F811
) -> None:
    from tests.unit.access.test_erp_jwt import AUDIENCE, ISSUER, _pem, _rsa, erp_token

    key = _rsa()
    public = tmp_path / "erp.pub"
    public.write_bytes(_pem(key))
    erp = {"issuer": ISSUER, "audience": AUDIENCE, "public_key_file": str(public)}
    with_erp = Settings.model_validate(
        {**settings.model_dump(), "server": {**settings.server.model_dump(), "erp_jwt": erp}}
    )
    app = create_site(with_erp, context)
    with TestClient(app, follow_redirects=False) as client:
        refused = client.post("/login/token", data={"token": erp_token(_rsa())})
        assert refused.status_code == 401
        assert session.ACCESS_COOKIE not in client.cookies
        # A user name that would pass for an API token in the log: refused, audited once.
        posing = client.post("/login/token", data={"token": erp_token(key, sub="token:ci")})
        assert posing.status_code == 401
        assert session.ACCESS_COOKIE not in client.cookies
        logins = [(e.actor, e.detail) for e in audit.entries(context, action=AuditAction.LOGIN)]
        assert len(logins) == 2 and logins[0][0] == "-"
        assert "'token:ci', is not a valid user name" in (logins[0][1] or "")
        answer = client.post("/login/token", data={"token": erp_token(key), "next": "/jobs"})
        assert answer.status_code == 200
        assert 'content="0;url=/jobs"' in answer.text
        page = client.get("/")
        assert page.status_code == 200
        assert "maria@erp" in page.text
        assert "Crear Backup Manual" not in page.text  # the token grants admin:read only
        # A token that grants nothing: every view refused (403) and audited, the job's
        # JSON the page's script polls too.
        client.cookies.clear()
        client.post("/login/token", data={"token": erp_token(key, sub="nadie", permissions=[])})
        for path in ("/", "/jobs/1.json"):
            assert client.get(path).status_code == 403, path
        denied = [e.target for e in audit.entries(context, user="nadie") if e.outcome == "denied"]
        assert denied == ["GET /jobs/1.json", "GET /"]


def test_the_erp_sign_in_never_continues_to_another_site(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    # Its page continues by a meta refresh and a link, which no redirect quotes.
    token = create_token(context, "erp-page", Role.VIEWER, actor=local_principal()).token
    for target in EVIL_TARGETS:
        answer = browser.post("/login/token", data={"token": token, "next": target})
        assert answer.status_code == 200, target
        assert 'content="0;url=/"' in answer.text, target
        assert 'href="/"' in answer.text, target


def test_cancelling_a_job_needs_approve_as_in_the_api(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    # POST /admin/jobs/{id}/cancel needs admin:approve; the page's form is the same change.
    job = jobs.submit(context, JobRequest(JobKind.PRUNE, None, TriggeredBy.CLI, "test")).id
    add_user(context, "otto", Role.OPERATOR)
    _login(browser, "otto")
    assert f"/jobs/{job}/cancel" not in browser.get("/jobs").text
    token = browser.cookies.get(session.CSRF_COOKIE)
    answer = browser.post(
        f"/jobs/{job}/cancel", data={"csrf": token}, headers={"Accept": "application/json"}
    )
    assert answer.status_code == 403
    assert jobs.get(context, job).status is JobStatus.QUEUED
    denied = [e.target for e in audit.entries(context, user="otto") if e.outcome == "denied"]
    assert denied == [f"POST /jobs/{job}/cancel"]
    browser.cookies.clear()
    add_user(context, "ana", Role.ADMIN)
    _login(browser, "ana")
    assert f"/jobs/{job}/cancel" in browser.get("/jobs").text
    token = browser.cookies.get(session.CSRF_COOKIE)
    answer = browser.post(
        f"/jobs/{job}/cancel", data={"csrf": token}, headers={"Accept": "application/json"}
    )
    assert answer.status_code == 202, answer.text
    assert jobs.get(context, job).status is JobStatus.CANCELLED


def test_an_operator_cannot_take_a_pinned_snapshot_from_the_page(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    # The form offers a full backup; a forged kind=snapshot would pin it, which needs
    # admin:approve as POST /admin/backups/{id}/pin does.
    add_user(context, "otto", Role.OPERATOR)
    _login(browser, "otto")
    token = browser.cookies.get(session.CSRF_COOKIE)
    answer = browser.post(
        "/backups",
        data={"csrf": token, "database": "erp", "kind": "snapshot"},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 403, answer.text
    assert jobs.list_jobs(context) == []
    (entry,) = [e for e in audit.entries(context, user="otto") if e.action == "backup.create"]
    assert (entry.target, entry.outcome.value) == ("erp", "denied")


def test_a_csrf_token_of_another_session_is_refused(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    # Eve takes a token with her own session, then puts it in Ana's browser as the
    # cookie as well (a sibling site of the same domain can write cookies): the token
    # must belong to Ana's session, not merely equal the cookie.
    job = jobs.submit(context, JobRequest(JobKind.PRUNE, None, TriggeredBy.CLI, "test")).id
    add_user(context, "eve", Role.VIEWER)
    add_user(context, "ana", Role.ADMIN)
    _login(browser, "eve")
    eves = str(browser.cookies.get(session.CSRF_COOKIE))
    browser.cookies.clear()
    _login(browser, "ana")
    anas = {
        name: str(browser.cookies.get(name))
        for name in (session.ACCESS_COOKIE, session.REFRESH_COOKIE)
    }
    ours = str(browser.cookies.get(session.CSRF_COOKIE))
    browser.cookies.clear()
    json = {"Accept": "application/json"}
    tossed = {**anas, session.CSRF_COOKIE: eves}
    answer = browser.post(f"/jobs/{job}/cancel", data={"csrf": eves}, headers=json, cookies=tossed)
    assert answer.status_code == 403, answer.text
    assert jobs.get(context, job).status is JobStatus.QUEUED
    # Ana's page gives her her own token again, and hers works.
    page = browser.get("/jobs", cookies=tossed)
    assert page.status_code == 200
    assert ours != eves and f'data-csrf="{ours}"' in page.text
    mine = {**anas, session.CSRF_COOKIE: ours}
    answer = browser.post(f"/jobs/{job}/cancel", data={"csrf": ours}, headers=json, cookies=mine)
    assert answer.status_code == 202, answer.text


def test_the_script_is_told_how_a_job_ended_in_the_pages_language(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    # The toast after a backup, restore or restore test says how its job ended: in
    # Spanish ("Cancelado", "Fallido"), not the API's "cancelled", "failed".
    job = jobs.submit(context, JobRequest(JobKind.PRUNE, None, TriggeredBy.CLI, "test")).id
    jobs.cancel(context, job)
    add_user(context, "ana", Role.VIEWER)
    _login(browser, "ana")
    spanish = browser.get(f"/jobs/{job}.json").json()
    assert (spanish["status"], spanish["statusLabel"]) == ("cancelled", "Cancelado")
    english = browser.get(f"/jobs/{job}.json", headers={"Accept-Language": "en"}).json()
    assert english["statusLabel"] == "Cancelled"


def test_a_request_racing_the_renewal_leaves_the_renewed_session_alone(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    # Two requests of one page (a poll and a click) after the access token expired: the
    # first renews the session, the second's refresh token is used already. Its answer
    # must not delete the cookies the first one set, or the browser is logged out.
    add_user(context, "ana", Role.ADMIN)
    _login(browser, "ana")
    stale = {
        session.ACCESS_COOKIE: "expired.or.forged",
        session.REFRESH_COOKIE: str(browser.cookies.get(session.REFRESH_COOKIE)),
    }
    browser.cookies.clear()
    first = browser.get("/jobs", cookies=stale)
    assert first.status_code == 200
    assert first.cookies.get(session.REFRESH_COOKIE)
    browser.cookies.clear()
    second = browser.get("/jobs", cookies=stale)
    assert second.status_code == 303  # this request itself is not served
    set_cookies = second.headers.get_list("set-cookie")
    assert not [c for c in set_cookies if c.startswith(("respaldo_session=", "respaldo_refresh="))]


def test_the_scripts_fragments_answer_401_once_the_session_ended(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    # The running-jobs table is fetched by the script and put in place: a redirect to
    # the login page put the whole login page inside the table.
    assert browser.get("/jobs/table").status_code == 401
    assert browser.get("/jobs/1.json").status_code == 401
    add_user(context, "ana", Role.VIEWER)
    _login(browser, "ana")
    assert browser.get("/jobs/table").status_code == 200


def test_a_sign_in_with_a_token_is_audited_as_a_login(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    # Like a password login on the page: who came in with which kind of token, and every
    # refused token (never the token itself).
    token = create_token(context, "erp-page", Role.VIEWER, actor=local_principal()).token
    assert browser.post("/login/token", data={"token": token}).status_code == 200
    assert browser.post("/login/token", data={"token": token + "x"}).status_code == 401
    logins = audit.entries(context, action=AuditAction.LOGIN)
    outcomes = sorted((e.actor, e.outcome.value, e.method) for e in logins)
    assert outcomes == [("-", "failure", None), ("token:erp-page", "success", "api_token")]
    assert all(token not in (e.detail or "") for e in logins)


def _stale(browser: TestClient) -> dict[str, str]:
    """The browser's cookies with its access token expired: the next request renews."""
    return {
        session.ACCESS_COOKIE: "expired.or.forged",
        session.REFRESH_COOKIE: str(browser.cookies.get(session.REFRESH_COOKIE)),
    }


def _deleted(answer: httpx.Response) -> set[str]:
    """The session cookies an answer deletes (sets empty and expired)."""
    return {
        name
        for name in (session.ACCESS_COOKIE, session.REFRESH_COOKIE)
        for header in answer.headers.get_list("set-cookie")
        if header.startswith(f'{name}=""') and "Max-Age=0" in header
    }


def test_the_browser_of_a_removed_user_is_logged_out_once(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    # Removing a user deletes their sessions: the refresh token is no session's at all,
    # not one another request just used. The browser must forget it, or every page it
    # asks for adds a failed renewal to the audit log until the cookie expires.
    add_user(context, "ana", Role.ADMIN)
    _login(browser, "ana")
    stale = _stale(browser)
    users.remove_user(context, "ana", actor=local_principal())
    browser.cookies.clear()
    answer = browser.get("/jobs", cookies=stale)
    assert answer.status_code == 303
    assert _deleted(answer) == {session.ACCESS_COOKIE, session.REFRESH_COOKIE}
    failures = [e for e in audit.entries(context) if e.action == AuditAction.REFRESH]
    assert len(failures) == 1


def test_a_refresh_token_used_before_the_last_renewal_ends_the_session(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    # Only the token the last renewal replaced can be a request racing it; an older one
    # (replayed, or a browser that lost two renewals) ends the browser's session.
    add_user(context, "ana", Role.ADMIN)
    _login(browser, "ana")
    oldest = _stale(browser)
    browser.cookies.clear()
    renewed = browser.get("/jobs", cookies=oldest)
    assert renewed.status_code == 200
    browser.cookies.clear()
    again = browser.get("/jobs", cookies=_stale_from(renewed))
    assert again.status_code == 200
    browser.cookies.clear()
    answer = browser.get("/jobs", cookies=oldest)
    assert answer.status_code == 303
    assert _deleted(answer) == {session.ACCESS_COOKIE, session.REFRESH_COOKIE}


def test_a_race_is_only_a_race_for_a_moment(
    browser: TestClient,
    context: Context,  # noqa: F811
) -> None:
    # The token the last renewal replaced, sent long after it: not a request racing the
    # renewal but a browser that never got its answer; it is logged out.
    add_user(context, "ana", Role.ADMIN)
    _login(browser, "ana")
    stale = _stale(browser)
    browser.cookies.clear()
    assert browser.get("/jobs", cookies=stale).status_code == 200
    with context.catalog.begin() as db:
        (row,) = db.scalars(sa.select(AuthSession)).all()
        assert row.rotated_at is not None
        row.rotated_at -= RACE_WINDOW + timedelta(seconds=1)
    browser.cookies.clear()
    answer = browser.get("/jobs", cookies=stale)
    assert answer.status_code == 303
    assert _deleted(answer) == {session.ACCESS_COOKIE, session.REFRESH_COOKIE}


def _stale_from(answer: httpx.Response) -> dict[str, str]:
    return {
        session.ACCESS_COOKIE: "expired.or.forged",
        session.REFRESH_COOKIE: str(answer.cookies.get(session.REFRESH_COOKIE)),
    }
