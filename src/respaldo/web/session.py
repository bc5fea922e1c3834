"""The page's session and CSRF protection.

A logged-in browser holds the same tokens an API client gets from ``POST /auth/token``
(the API's users, roles and revocation apply unchanged), in cookies the page's scripts
cannot read: HttpOnly, SameSite=Strict, Secure when served over TLS. An expired access
token is renewed with the refresh token on the next request.

CSRF: every form carries a token. Before login it must equal the ``respaldo_csrf``
cookie (double-submit; the cookie is HttpOnly and SameSite=Strict, and the server writes
the value into the page, so no script of another origin can read or send it). Once
logged in, the token is bound to the login (:func:`bound_token`: an HMAC of its session,
keyed with the server's secret): a token taken with another session is refused even when
it was written into this browser's cookie too (a sibling site of the same domain can
write cookies, and SameSite does not separate same-site origins).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from respaldo.errors import AuthenticationFailed, RefreshTokenJustUsed
from respaldo.operations.auth import Authenticator, TokenPair
from respaldo.operations.context import Context
from respaldo.operations.principal import Principal

ACCESS_COOKIE = "respaldo_session"
REFRESH_COOKIE = "respaldo_refresh"
CSRF_COOKIE = "respaldo_csrf"
LANGUAGE_COOKIE = "respaldo_lang"


@dataclass
class Session:
    """Who the browser is (None: not logged in) and what to set on the response."""

    principal: Principal | None
    renewed: TokenPair | None = None
    ended: bool = False


def secure(request: Request) -> bool:
    """Whether cookies must be Secure: the page is served over TLS (directly or, per
    the trusted proxy, behind one)."""
    return request.url.scheme == "https"


def current(
    request: Request, ctx: Context, authenticator: Authenticator, address: str | None
) -> Session:
    """The browser's session: its access token, else a renewal through its refresh
    token. An invalid or revoked pair is a logged-out browser, never an error page."""
    access = request.cookies.get(ACCESS_COOKIE)
    if access:
        try:
            return Session(authenticator.authenticate(ctx, access, address))
        except AuthenticationFailed:
            pass
    refresh = request.cookies.get(REFRESH_COOKIE)
    if refresh:
        try:
            pair = authenticator.refresh(ctx, refresh, address)
            return Session(authenticator.authenticate(ctx, pair.access_token, address), pair)
        except RefreshTokenJustUsed:
            # Another request of this page renewed the session with it a moment ago:
            # deleting the cookies that request set would log the browser out.
            return Session(None)
        except AuthenticationFailed:
            return Session(None, ended=True)
    return Session(None)


def store(request: Request, response: Response, pair: TokenPair, refresh_seconds: int) -> None:
    """Put a login's tokens in the browser."""
    options = {"httponly": True, "samesite": "strict", "secure": secure(request), "path": "/"}
    response.set_cookie(ACCESS_COOKIE, pair.access_token, max_age=pair.expires_in, **options)  # type: ignore[arg-type]
    response.set_cookie(REFRESH_COOKIE, pair.refresh_token, max_age=refresh_seconds, **options)  # type: ignore[arg-type]


def clear(response: Response) -> None:
    """Forget the session in the browser."""
    response.delete_cookie(ACCESS_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path="/")


def csrf_token(request: Request) -> tuple[str, bool]:
    """The browser's CSRF token, and whether it is new (to be set as a cookie)."""
    token = request.cookies.get(CSRF_COOKIE)
    if token and len(token) >= 32:
        return token, False
    return secrets.token_urlsafe(32), True


def store_csrf(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure(request), path="/"
    )


def bound_token(secret: bytes, principal: Principal, access: str | None) -> str:
    """The CSRF token of a logged-in browser: bound to its login, the session of a
    password login (the same across refreshes), else the token the browser holds (an API
    or ERP token, which is not refreshed)."""
    login = principal.session_id or hashlib.sha256((access or "").encode()).hexdigest()
    return hmac.new(secret, b"respaldo-csrf|" + login.encode(), hashlib.sha256).hexdigest()


def csrf_ok(request: Request, submitted: str | None, expected: str) -> bool:
    """Whether a form's (or the ``X-CSRF-Token`` header's) token is ``expected``: the
    browser's :func:`bound_token` once logged in, else its cookie (a token not sent as a
    cookie, just made for this answer, matches nothing sent)."""
    if not request.cookies.get(CSRF_COOKIE):
        return False
    sent = submitted or request.headers.get("x-csrf-token")
    return bool(sent and hmac.compare_digest(expected, sent))
