"""The web page: the specification's BackupManager and what it was missing.

Server-rendered (Jinja2) over the same application functions and permissions as the
API: a handler reads the form, checks the session and its permission, calls one
function of :mod:`respaldo.operations`, and renders. Forms work without JavaScript (a
post answers with a redirect); ``static/respaldo.js`` runs them in place when it can
(``Accept: application/json``), with the specification's busy button and toasts.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import cache, partial
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from respaldo import reasons
from respaldo.api import problems
from respaldo.api.security import client_address
from respaldo.domain import (
    AuditAction,
    AuditOutcome,
    BackupKind,
    BackupStatus,
    JobStatus,
    Permission,
)
from respaldo.errors import AuthenticationFailed, InvalidInput, RespaldoError, TooManyAttempts
from respaldo.operations import (
    admin,
    alerts,
    audit,
    jobs,
    listing,
    prune_report,
    schedule,
    status,
    users,
    zone,
)
from respaldo.operations.auth import Authenticator
from respaldo.operations.backup_detail import backup_detail
from respaldo.operations.context import Context
from respaldo.operations.health import CATALOG_FAILS, CATALOG_HINT, CATALOG_OUTAGES
from respaldo.operations.jobs import JobInfo
from respaldo.operations.principal import Principal
from respaldo.operations.views import kind_word
from respaldo.operations.workers import Workers
from respaldo.web import i18n, session
from respaldo.web.chart import Series, line_chart
from respaldo.web.framing import NoFraming
from respaldo.web.i18n import N_, Formatter

router = APIRouter(include_in_schema=False)

_TEMPLATES = Path(str(resources.files("respaldo.web") / "templates"))
_STATIC = Path(str(resources.files("respaldo.web") / "static"))


@cache
def _templates(language: str) -> Jinja2Templates:
    # One environment per language: gettext is installed on an environment, and a
    # request must never see another request's language.
    env = Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=select_autoescape(("html",)),
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(i18n.translations(language), newstyle=True)  # type: ignore[attr-defined]
    return Jinja2Templates(env=env)


def install(app: FastAPI) -> None:
    """Serve the page on ``app``: its routes and its static files, never in a frame; a
    catalog outage answered to a page's request as a page (:func:`_outage_as_page`)."""
    app.mount("/static", StaticFiles(directory=_STATIC), name="web-static")
    app.include_router(router)
    app.add_middleware(NoFraming)
    for outage in CATALOG_OUTAGES:
        app.add_exception_handler(outage, _outage_as_page(app.exception_handlers[outage]))


def _outage_as_page(
    api_answer: Callable[[Request, Any], Response | Awaitable[Response]],
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The API's answer to a catalog that does not answer (503, its fixed sentence,
    the reason logged once: :mod:`respaldo.api.problems`), given to a request of the
    page as the page's error in the reader's language: a browser shown the API's
    JSON in English could not read it, nor go anywhere from it."""

    async def answer(request: Request, exc: Exception) -> Response:
        answered = api_answer(request, exc)
        if inspect.isawaitable(answered):
            answered = await answered
        if not _is_page(request):
            return answered
        # No session can be checked (that is what failed): a page without a user, and
        # the browser's cookies left as they are, to be good again once the catalog is.
        csrf, new = session.csrf_token(request)
        page = Page(
            request,
            request.app.state.context,
            None,
            _language(request),
            csrf,
            new,
            session.Session(None),
        )
        message, hint = page.gettext(CATALOG_FAILS), page.gettext(CATALOG_HINT)
        if _wants_json(request):
            body = {"detail": message, "hint": hint}
            return page.finish(JSONResponse(body, status_code=answered.status_code))
        return render(
            page, "error.html", "", status=answered.status_code, message=message, hint=hint
        )

    return answer


def _is_page(request: Request) -> bool:
    """Whether ``request`` went to one of the page's routes (not the API's)."""
    endpoint = getattr(request.scope.get("route"), "endpoint", None)
    return getattr(endpoint, "__module__", None) == __name__


# -- the request's page state ------------------------------------------------------------


@dataclass
class Page:
    """One request's session, language and CSRF token, and what to set on the answer."""

    request: Request
    ctx: Context
    principal: Principal | None
    language: str
    csrf: str
    new_csrf: bool
    state: session.Session

    @property
    def fmt(self) -> Formatter:
        return Formatter(self.language, _zone(self.ctx))

    def can(self, permission: Permission) -> bool:
        return self.principal is not None and self.principal.can(permission)

    def csrf_ok(self, submitted: str | None) -> bool:
        """Whether a form's token is this browser's (see :mod:`respaldo.web.session`)."""
        return session.csrf_ok(self.request, submitted, self.csrf)

    def bind_csrf(self, principal: Principal, access: str) -> None:
        """Give the answer the CSRF token of the login ``principal`` just started."""
        secret = _authenticator(self.request).secret
        self.csrf, self.new_csrf = session.bound_token(secret, principal, access), True

    def gettext(self, message: str, **values: Any) -> str:
        text = i18n.translations(self.language).gettext(message)
        return text % values if values else text

    def finish(self, response: Response) -> Response:
        """Set the cookies this request decided on."""
        if self.new_csrf:
            session.store_csrf(self.request, response, self.csrf)
        if self.state.renewed is not None:
            session.store(self.request, response, self.state.renewed, _refresh_seconds(self))
        elif self.state.ended:
            session.clear(response)
        return response


def _zone(ctx: Context) -> tzinfo:
    """The installation's time zone (``[schedules] time_zone``, else the machine's): the
    page's times read as its cron times do. UTC if it is not a zone (the service's
    schedule refuses to start then, and says why)."""
    try:
        return zone.time_zone(ctx.settings)
    except RespaldoError:
        return UTC


def _refresh_seconds(page: Page) -> int:
    return int(_authenticator(page.request).refresh_ttl.total_seconds())


def _authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


def _workers(request: Request) -> Workers:
    workers: Workers = request.app.state.workers
    return workers


def _address(request: Request) -> str | None:
    # The API's rule for client addresses (trusted proxies), so that the audit log reads
    # the same whichever interface a person used.
    return client_address(request)


def page_state(request: Request) -> Page:
    ctx: Context = request.app.state.context
    state = session.current(request, ctx, _authenticator(request), _address(request))
    csrf, new = session.csrf_token(request)
    page = Page(request, ctx, state.principal, _language(request), csrf, new, state)
    if state.principal is not None:
        renewed = state.renewed
        access = renewed.access_token if renewed else request.cookies.get(session.ACCESS_COOKIE)
        bound = session.bound_token(_authenticator(request).secret, state.principal, access)
        if csrf != bound:  # logged in elsewhere, or a cookie written by someone else
            page.bind_csrf(state.principal, access or "")
    return page


def _language(request: Request) -> str:
    return i18n.choose_language(
        request.cookies.get(session.LANGUAGE_COOKIE), request.headers.get("accept-language")
    )


PageDep = Annotated[Page, Depends(page_state)]


def render(page: Page, template: str, name: str, status: int = 200, **values: Any) -> Response:
    principal = page.principal
    user = None
    if principal is not None:
        role = principal.role.value if principal.role is not None else "erp"
        user = {"name": principal.name, "role_label": page.gettext(role)}
    context = {
        "request": page.request,
        "lang": page.language,
        "csrf": page.csrf,
        "user": user,
        "page": name,
        "fmt": page.fmt,
        "now": datetime.now(UTC),
        "can_create": page.can(Permission.CREATE),
        "can_approve": page.can(Permission.APPROVE),
        "kind_label": lambda kind: _kind_label(page, kind),
        "status_label": lambda status: page.gettext(_STATUS_LABELS.get(str(status), str(status))),
        "label": lambda table, value: _label(page, VOCABULARY[table], value),
        "reason": lambda text: reasons.reason(text, page.gettext, page.fmt.quantity),
        "failed_check": lambda text: reasons.failed_check(text, page.gettext),
        "progress": progress_of,
        # Paths, not absolute URLs: the page works behind a proxy under any host name.
        "url_for": lambda name, **params: str(page.request.app.url_path_for(name, **params)),
        **values,
    }
    response = _templates(page.language).TemplateResponse(
        page.request, template, context, status_code=status
    )
    return page.finish(response)


def _label(page: Page, table: dict[str, str], value: object) -> str:
    text = str(value)
    return page.gettext(table[text]) if text in table else text


def _kind_label(page: Page, kind: object) -> str:
    # The words the CLI and the status use (logical, physical), a label's capital first:
    # "Full (logical)" beside "Physical" named one kind two ways.
    said = page.gettext(kind_word(str(kind)))
    return said[:1].upper() + said[1:]


# respaldo's own vocabulary as the catalog stores it (job kinds, status checks, copy
# roles...), named in the page's language: a Spanish page must not print "drill" or
# "restore_test". A value missing from its table is shown as stored.
_JOB_KIND_LABELS = {
    "backup": N_("Backup"),
    "restore": N_("Restoration"),
    "drill": N_("Restore test"),
    "prune": N_("Cleanup"),
    "verify": N_("Verification"),
    "report": N_("Report"),
    "wal_copy": N_("WAL copy"),
}
_ALERT_KIND_LABELS = {
    **_JOB_KIND_LABELS,
    "copy": N_("Offsite copy"),
    "lock-renewal": N_("Lock renewal"),
    "wal-push": N_("WAL archiving"),
    "test": N_("Test message"),
    "check": N_("Check"),
}
_CHECK_LABELS = {
    "rpo": N_("Backup age"),
    "size": N_("Backup size"),
    "server": N_("Server"),
    "archive": N_("WAL archiving"),
    "restore_test": N_("Restore test"),
    "copy": N_("Copy"),
    "walcopy": N_("WAL copy"),
    "catalog": N_("Catalog"),
    "repository": N_("Repository"),
    "queue": N_("Queue"),
    "swap": N_("Restore swap"),
    "verify": N_("Verification"),
    "notify": N_("Alerts"),
    "stuck": N_("Watchdog"),
    "slot": N_("Replication slot"),
    "prune": N_("Cleanup"),
}
_ROLE_LABELS = {"primary": N_("Primary"), "mirror": N_("Mirror")}
_TRIGGER_LABELS = {"cli": N_("Command line"), "schedule": N_("Scheduled"), "api": N_("API")}
_AUDIT_ACTION_LABELS = {
    "login": N_("Login"),
    "refresh": N_("Session renewed"),
    "logout": N_("Logout"),
    "user.add": N_("User added"),
    "user.remove": N_("User removed"),
    "user.passwd": N_("Password changed"),
    "user.disable": N_("User disabled"),
    "user.enable": N_("User enabled"),
    "token.create": N_("API token created"),
    "token.revoke": N_("API token revoked"),
    "backup.create": N_("Backup started"),
    "backup.delete": N_("Backup deleted"),
    "backup.pin": N_("Backup pinned"),
    "backup.unpin": N_("Backup unpinned"),
    "restore": N_("Restore started"),
    "restore_test": N_("Restore test started"),
    "prune": N_("Expired backups deleted"),
    "snapshot": N_("Snapshot"),
    "job.cancel": N_("Job cancelled"),
    "key.add": N_("Repository key added"),
    "key.remove": N_("Repository key removed"),
    "key.passwd": N_("Repository passphrase changed"),
    "rewind": N_("Repository rewound"),
    "repair": N_("Repository repaired"),
    "access": N_("Access"),
}
_AUDIT_OUTCOME_LABELS = {"success": N_("Success"), "failure": N_("Failure"), "denied": N_("Denied")}
VOCABULARY = {
    "job": _JOB_KIND_LABELS,
    "alert": _ALERT_KIND_LABELS,
    "check": _CHECK_LABELS,
    "role": _ROLE_LABELS,
    "trigger": _TRIGGER_LABELS,
    "action": _AUDIT_ACTION_LABELS,
    "outcome": _AUDIT_OUTCOME_LABELS,
}
"""The tables of ``label(table, value)`` in the templates."""

_STATUS_LABELS = {
    "pending": N_("Pending"),
    "in_progress": N_("In progress"),
    "completed": N_("Completed"),
    "failed": N_("Failed"),
    # A backup's part in its primary once deleted there, a mirror waiting (backup_detail).
    "deleted": N_("Deleted"),
    "queued": N_("Queued"),
    "running": N_("Running"),
    "cancelled": N_("Cancelled"),
    "skipped": N_("Skipped"),
    "passed": N_("Passed"),
    "green": N_("OK"),
    "amber": N_("Warning"),
    "red": N_("Critical"),
    "critical": N_("Critical"),
    "warning": N_("Warning"),
    "success": N_("Success"),
    "resolved": N_("Resolved"),
    "report": N_("Report"),
    "viewer": N_("viewer"),
    "operator": N_("operator"),
    "admin": N_("admin"),
    "erp": N_("ERP"),
}


@dataclass(frozen=True)
class Progress:
    done: int
    total: int | None
    rate: float | None
    left: float | None


def progress_of(job: JobInfo) -> Progress | None:
    """Bytes done, total, rate and time left of a running job, from its row."""
    if job.progress_done is None:
        return None
    rate = left = None
    if (
        job.started_at is not None
        and job.heartbeat_at is not None
        and job.status is JobStatus.RUNNING
    ):
        # The progress is stored with each renewal of the lease: both times are the
        # catalog's clock, this machine's may be off it.
        elapsed = (job.heartbeat_at - job.started_at).total_seconds()
        if elapsed > 0 and job.progress_done > 0:
            rate = job.progress_done / elapsed
            if job.progress_total:
                left = max(job.progress_total - job.progress_done, 0) / rate
    return Progress(job.progress_done, job.progress_total, rate, left)


# -- access ----------------------------------------------------------------------------


class _Redirect(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _login_redirect(page: Page) -> Response:
    target = page.request.url.path
    return page.finish(RedirectResponse(f"/login?next={quote(target)}", status_code=303))


def _guard(page: Page, permission: Permission) -> Response | None:
    """None when the page may be shown; else the answer (login, or 403)."""
    if page.principal is None:
        return _login_redirect(page)
    if not page.principal.can(permission):
        return _deny(page, page.principal, permission)
    return None


def _deny(page: Page, principal: Principal, permission: Permission) -> Response:
    """403 for a principal that lacks ``permission``, audited as the API's refusals are."""
    audit.record(
        page.ctx,
        principal,
        AuditAction.ACCESS,
        f"{page.request.method} {page.request.url.path}",
        AuditOutcome.DENIED,
        f"needs {permission}",
    )
    return _refused(page, 403, page.gettext("You do not have the permission to do this."))


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _action(
    page: Page,
    permission: Permission,
    csrf: str | None,
    run: Callable[[Principal], Any],
    back: str,
) -> Response:
    """A form post: CSRF, session, permission, then ``run``; JSON for the page's script,
    a redirect for a plain form."""
    if not page.csrf_ok(csrf):
        return page.finish(_refused(page, 403, page.gettext("The form expired; reload the page.")))
    if page.principal is None:
        if _wants_json(page.request):
            return page.finish(_refused(page, 401, page.gettext("Log in again.")))
        return _login_redirect(page)
    if not page.principal.can(permission):
        return page.finish(_deny(page, page.principal, permission))
    try:
        result = run(page.principal)
    except RespaldoError as exc:
        return _failed(page, exc)
    if _wants_json(page.request):
        data = result.to_json() if hasattr(result, "to_json") else {}
        return page.finish(JSONResponse(data, status_code=202))
    return page.finish(RedirectResponse(back, status_code=303))


def _failed(page: Page, exc: RespaldoError, *, as_json: bool = False) -> Response:
    """The answer to an error of the application: worded, scrubbed and given its status
    as the API's problem answers are (a secret file's path never reaches the page)."""
    # What respaldo worded itself in the page's language; an engine's words as written.
    say = partial(reasons.reason, gettext=page.gettext, show=page.fmt.quantity)
    rendered, rendered_hint = exc.rendered(problems.api_name, say)
    scrub = _scrubber(page)
    message = scrub(rendered)
    hint = scrub(rendered_hint) if rendered_hint else None
    status = problems.status_of(exc)
    if as_json or _wants_json(page.request):
        body = {"detail": message, "hint": hint}
        return page.finish(JSONResponse(body, status_code=status))
    return render(page, "error.html", "", status=status, message=message, hint=hint)


def _scrubber(page: Page) -> problems.Scrubber:
    state = page.request.app.state
    if getattr(state, "web_scrubber", None) is None:
        state.web_scrubber = problems.Scrubber(page.ctx.settings)
    scrubber: problems.Scrubber = state.web_scrubber
    return scrubber


def _refused(page: Page, status: int, message: str) -> Response:
    if _wants_json(page.request):
        return JSONResponse({"detail": message}, status_code=status)
    return render(page, "error.html", "", status=status, message=message)


def _safe_next(target: str | None) -> str:
    # Only a path of this site: never an open redirect to another host. Browsers read a
    # backslash as a slash ("/\\evil.example" is "//evil.example"), and the ERP sign-in's
    # page continues by a meta refresh that no redirect quotes: refuse any.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return parts.path or "/"


# -- login ----------------------------------------------------------------------------------


@router.get("/login", name="web-login")
def login_form(page: PageDep, next: str | None = None) -> Response:
    if page.principal is not None:
        return page.finish(RedirectResponse(_safe_next(next), status_code=303))
    return _login_page(page, 200, next, None, None)


def _login_page(
    page: Page, status: int, next: str | None, username: str | None, error: str | None
) -> Response:
    """The login form again, with what was typed (never the password) and why."""
    return render(
        page,
        "login.html",
        "login",
        status=status,
        next=_safe_next(next),
        username=username,
        error=error,
    )


@router.post("/login")
def login(
    page: PageDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf: Annotated[str | None, Form()] = None,
    next: Annotated[str | None, Form()] = None,
) -> Response:
    if not page.csrf_ok(csrf):
        return _login_page(page, 403, next, username, page.gettext("The form expired; try again."))
    authenticator = _authenticator(page.request)
    try:
        pair = authenticator.login(page.ctx, username, password, _address(page.request))
    except TooManyAttempts:
        return _login_page(
            page,
            429,
            next,
            username,
            page.gettext("Too many failed attempts; wait a few minutes and try again."),
        )
    except AuthenticationFailed:
        return _login_page(page, 401, next, username, page.gettext("Wrong user name or password."))
    response = RedirectResponse(_safe_next(next), status_code=303)
    session.store(page.request, response, pair, _refresh_seconds(page))
    principal = authenticator.authenticate(page.ctx, pair.access_token, _address(page.request))
    page.bind_csrf(principal, pair.access_token)
    return page.finish(response)


@router.post("/login/token", name="web-login-token")
def login_with_token(
    page: PageDep,
    token: Annotated[str, Form()],
    next: Annotated[str | None, Form()] = None,
) -> Response:
    """The ERP's own page sends its user here with the JWT it issued (a form post from
    the ERP's origin, so no CSRF token of ours can be in it: the token is the proof). An
    API token works too. The session holds the token itself: no refresh, it ends when
    the token expires or is revoked."""
    try:
        authenticator = _authenticator(page.request)
        principal = authenticator.sign_in(page.ctx, token, _address(page.request))
    except AuthenticationFailed:
        return _login_page(
            page, 401, next, None, page.gettext("The ERP's sign-in was not accepted; log in here.")
        )
    # The cross-site post sets the cookie; SameSite=Strict keeps it from the redirect
    # that the ERP's post started, so this page (same site) makes the next request.
    response = _templates(page.language).TemplateResponse(
        page.request, "continue.html", {"target": _safe_next(next), "lang": page.language}
    )
    response.set_cookie(
        session.ACCESS_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=session.secure(page.request),
        path="/",
    )
    response.delete_cookie(session.REFRESH_COOKIE, path="/")
    page.bind_csrf(principal, token)
    return page.finish(response)


@router.post("/logout", name="web-logout")
def logout(page: PageDep, csrf: Annotated[str | None, Form()] = None) -> Response:
    if not page.csrf_ok(csrf):
        return page.finish(_refused(page, 403, page.gettext("The form expired; reload the page.")))
    if page.principal is not None:
        _authenticator(page.request).logout(
            page.ctx, page.principal, page.request.cookies.get(session.REFRESH_COOKIE)
        )
    response = RedirectResponse("/login", status_code=303)
    session.clear(response)
    return response


@router.post("/language", name="web-language")
def language(
    page: PageDep,
    language: Annotated[str, Form()],
    csrf: Annotated[str | None, Form()] = None,
    next: Annotated[str | None, Form()] = None,
) -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    if page.csrf_ok(csrf) and language in i18n.LANGUAGES:
        response.set_cookie(
            session.LANGUAGE_COOKIE,
            language,
            max_age=365 * 86400,
            httponly=True,
            samesite="strict",
            secure=session.secure(page.request),
            path="/",
        )
    return page.finish(response)


# -- pages --------------------------------------------------------------------------------


def _databases(ctx: Context) -> list[str]:
    return [db.name for db in ctx.settings.databases]


def _active_jobs(ctx: Context) -> list[JobInfo]:
    found = jobs.list_jobs(ctx, limit=20, status=JobStatus.RUNNING)
    found += jobs.list_jobs(ctx, limit=20, status=JobStatus.QUEUED)
    return found


@router.get("/", name="web-backups", response_class=HTMLResponse)
def backups_page(page: PageDep) -> Response:
    if (refused := _guard(page, Permission.READ)) is not None:
        return refused
    found = listing.list_backups(page.ctx, limit=200)
    running = _active_jobs(page.ctx)
    return render(
        page,
        "backups.html",
        "backups",
        backups=found.backups,
        databases=_databases(page.ctx),
        running=bool(running),
        jobs=running,
    )


@router.get("/backups/{backup_id}", name="web-backup", response_class=HTMLResponse)
def backup_page(page: PageDep, backup_id: str) -> Response:
    if (refused := _guard(page, Permission.READ)) is not None:
        return refused
    try:
        detail = backup_detail(page.ctx, backup_id)
    except RespaldoError as exc:
        return _failed(page, exc)
    return render(
        page, "backup.html", "backups", d=detail, b=detail.backup, drills=detail.restore_tests
    )


@router.post("/backups", name="web-create-backup")
def create_backup(
    page: PageDep,
    csrf: Annotated[str | None, Form()] = None,
    database: Annotated[str | None, Form()] = None,
    kind: Annotated[str, Form()] = "full",
) -> Response:
    def run(principal: Principal) -> Any:
        try:
            chosen = BackupKind(kind)
        except ValueError:
            raise InvalidInput("kind", f"{kind!r} is not a backup type") from None
        return admin.create_backup(page.ctx, _workers(page.request), principal, chosen, database)

    return _action(page, Permission.CREATE, csrf, run, "/")


@router.post("/backups/{backup_id}/restore", name="web-restore")
def restore(
    page: PageDep,
    backup_id: str,
    csrf: Annotated[str | None, Form()] = None,
    mode: Annotated[str, Form()] = "new",
    confirm: Annotated[str | None, Form()] = None,
    target: Annotated[str | None, Form()] = None,
) -> Response:
    def run(principal: Principal) -> Any:
        replace = mode == "replace"
        return admin.restore(
            page.ctx,
            _workers(page.request),
            principal,
            backup_id,
            replace=replace,
            confirm=confirm if replace else None,
            target_database=None if replace or not target else target,
        )

    return _action(page, Permission.APPROVE, csrf, run, "/jobs")


@router.get("/jobs", name="web-jobs", response_class=HTMLResponse)
def jobs_page(page: PageDep) -> Response:
    if (refused := _guard(page, Permission.READ)) is not None:
        return refused
    return render(page, "jobs.html", "jobs", jobs=jobs.list_jobs(page.ctx, limit=100))


@router.get("/jobs/table", name="web-jobs-table", response_class=HTMLResponse)
def jobs_table(page: PageDep, scope: str = "all") -> Response:
    # Fetched by the script and put in place: a logged-out browser gets a 401 it leaves
    # alone, not a redirect whose login page would land inside the table.
    if page.principal is None:
        return page.finish(_refused(page, 401, page.gettext("Log in again.")))
    if (refused := _guard(page, Permission.READ)) is not None:
        return refused
    found = _active_jobs(page.ctx) if scope == "active" else jobs.list_jobs(page.ctx, limit=100)
    return render(page, "_jobs_table.html", "jobs", jobs=found)


@router.get("/jobs/{job_id}.json", name="web-job")
def job_json(page: PageDep, job_id: int) -> Response:
    if page.principal is None:
        return page.finish(JSONResponse({"detail": "not logged in"}, status_code=401))
    if not page.principal.can(Permission.READ):
        # Refused and audited as GET /admin/jobs/{id} and the page's views are (an ERP
        # token may grant nothing): a 401 here was a refusal the audit log never saw.
        return page.finish(_deny(page, page.principal, Permission.READ))
    try:
        job = jobs.get(page.ctx, job_id)
    except RespaldoError as exc:
        return _failed(page, exc, as_json=True)
    # The script's toast says how the job ended in the page's language.
    label = page.gettext(_STATUS_LABELS.get(job.status.value, job.status.value))
    return page.finish(JSONResponse({**job.to_json(), "statusLabel": label}))


@router.post("/jobs/{job_id}/cancel", name="web-cancel-job")
def cancel_job(page: PageDep, job_id: int, csrf: Annotated[str | None, Form()] = None) -> Response:
    def run(principal: Principal) -> Any:
        return admin.cancel_job(page.ctx, principal, job_id)

    # As POST /admin/jobs/{id}/cancel: stopping a restore or a restore test an approver
    # started is an approver's decision.
    return _action(page, Permission.APPROVE, csrf, run, "/jobs")


@router.get("/drills", name="web-drills", response_class=HTMLResponse)
def drills_page(page: PageDep) -> Response:
    if (refused := _guard(page, Permission.READ)) is not None:
        return refused
    return render(
        page,
        "drills.html",
        "drills",
        drills=listing.list_drills(page.ctx, limit=100),
        databases=_databases(page.ctx),
    )


@router.post("/drills", name="web-run-drill")
def run_drill(
    page: PageDep,
    csrf: Annotated[str | None, Form()] = None,
    database: Annotated[str | None, Form()] = None,
) -> Response:
    def run(principal: Principal) -> Any:
        return admin.restore_test(page.ctx, _workers(page.request), principal, None, database)

    return _action(page, Permission.APPROVE, csrf, run, "/drills")


@router.get("/databases", name="web-health", response_class=HTMLResponse)
def health_page(page: PageDep) -> Response:
    if (refused := _guard(page, Permission.READ)) is not None:
        return refused
    report = status.compute_status(page.ctx, datetime.now(UTC))
    charts = {
        db.database: _chart(page, listing.list_backups(page.ctx, database=db.database, limit=60))
        for db in report.databases
    }
    return render(page, "health.html", "health", report=report, charts=charts)


def _chart(page: Page, found: listing.BackupListing) -> Markup | None:
    completed = [b for b in found.backups if b.status is BackupStatus.COMPLETED]
    if len(completed) < 2:
        return None
    fmt = page.fmt
    return line_chart(
        page.gettext("Backups over time"),
        completed,
        [
            Series(
                page.gettext("Size"), "#0b5cad", lambda b: b.size_bytes, lambda v: fmt.size(int(v))
            ),
            Series(
                page.gettext("New bytes stored"),
                "#145c2a",
                lambda b: b.stored_new_bytes,
                lambda v: fmt.size(int(v)),
            ),
            Series(page.gettext("Duration"), "#8b1a14", lambda b: b.duration, fmt.duration),
        ],
        # The largest value of a chart, its scale.
        most=i18n.translations(page.language).gettext(N_("max {value}")),
    )


@router.get("/schedule", name="web-schedule", response_class=HTMLResponse)
def schedule_page(page: PageDep) -> Response:
    if (refused := _guard(page, Permission.READ)) is not None:
        return refused
    entries = schedule.schedule_listing(page.ctx, datetime.now(UTC), 3)
    return render(page, "schedule.html", "schedule", entries=entries)


@router.get("/retention", name="web-retention", response_class=HTMLResponse)
def retention_page(page: PageDep) -> Response:
    # As GET /admin/retention: a preview deletes nothing, so reading is enough. Applying
    # retention (prune) is the CLI's or the schedule's, recorded in the audit log.
    if (refused := _guard(page, Permission.READ)) is not None:
        return refused
    preview = prune_report.retention_preview(page.ctx)
    return render(
        page,
        "retention.html",
        "retention",
        preview=preview,
        decision_label=lambda d: page.gettext(_DECISION_LABELS.get(str(d), str(d))),
    )


_DECISION_LABELS = {"keep": N_("Keep"), "expire": N_("Expire")}


@router.get("/audit", name="web-audit", response_class=HTMLResponse)
def audit_page(page: PageDep) -> Response:
    if (refused := _guard(page, Permission.APPROVE)) is not None:
        return refused
    return render(
        page,
        "audit.html",
        "audit",
        users=users.list_users(page.ctx),
        entries=audit.entries(page.ctx, limit=200),
    )


@router.get("/alerts", name="web-alerts", response_class=HTMLResponse)
def alerts_page(page: PageDep) -> Response:
    if (refused := _guard(page, Permission.READ)) is not None:
        return refused
    return render(
        page,
        "alerts.html",
        "alerts",
        sent=alerts.sent_notifications(page.ctx),
        waiting=alerts.undelivered(page.ctx, datetime.now(UTC)),
    )
