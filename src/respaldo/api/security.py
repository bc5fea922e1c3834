"""The API's security seam: who is calling, and may they.

Every protected route takes its caller from one dependency::

    from respaldo.api.security import Permission, Principal, require

    @router.get("/admin/backups")
    def list_backups(principal: CanRead): ...   # or CanCreate, CanApprove

(``CanRead`` is ``Annotated[Principal, Depends(require(Permission.READ))]``; write the
``Annotated`` at module level, where FastAPI can resolve it.)

:func:`require` reads the ``Authorization: Bearer`` token (an access token from ``POST
/auth/token``, an API token ``rsp_...``, or an ERP-issued JWT), asks the application
layer (:class:`respaldo.operations.auth.Authenticator`) who it is, and returns the
:class:`Principal`. It raises AuthenticationFailed (401, ``WWW-Authenticate: Bearer``)
for a missing, malformed, expired, revoked or badly signed token, and PermissionDenied
(403, audited) when the principal lacks ``permission``. :func:`install` (called by
``create_app``) answers those errors, and TooManyAttempts (429, ``Retry-After``), as
``application/problem+json`` with their headers.

The client's address is the peer's, or, when the peer is one of ``[server]
trusted_proxies``, the right-most address of ``X-Forwarded-For`` that is not a trusted
proxy itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordBearer

from respaldo.domain import AuditAction, AuditOutcome, AuthMethod, Permission, Role
from respaldo.errors import AccessError, AuthenticationFailed, PermissionDenied
from respaldo.operations import audit
from respaldo.operations.auth import Authenticator
from respaldo.operations.context import Context
from respaldo.operations.principal import Principal

__all__ = [
    "AUTH_RESPONSES",
    "AuthMethod",
    "Authenticated",
    "CanApprove",
    "CanCreate",
    "CanRead",
    "Permission",
    "Principal",
    "Role",
    "client_address",
    "context_of",
    "install",
    "require",
]

# auto_error=False: a missing or non-Bearer Authorization header is answered by require()
# as problem+json, like every other authentication error. tokenUrl gives OpenAPI's
# "Authorize" button the password flow.
_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def context_of(request: Request) -> Context:
    """The application context the app was created with (or opened at start-up)."""
    context: Context = request.app.state.context
    return context


def authenticator_of(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


def client_address(request: Request) -> str | None:
    """The client's address, believing X-Forwarded-For only from trusted proxies."""
    peer = request.client.host if request.client is not None else None
    trusted: Sequence[Network] = request.app.state.trusted_proxies
    if peer is None or not _within(peer, trusted):
        return peer
    forwarded = [
        hop.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
        if hop.strip()
    ]
    # Right to left: each hop was appended by the proxy before it; the first one not a
    # trusted proxy is the client (anything further left, the client could have sent).
    for hop in reversed(forwarded):
        if not _is_address(hop):
            return peer  # a malformed header: trust nothing of it
        if not _within(hop, trusted):
            return hop
    return forwarded[0] if forwarded else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def authenticated(request: Request, token: Annotated[str | None, Depends(_bearer)]) -> Principal:
    """The caller, whatever its permissions; AuthenticationFailed without a valid token."""
    if token is None:
        raise AuthenticationFailed(
            "no bearer token", hint="send 'Authorization: Bearer TOKEN' (POST /auth/token)"
        )
    return authenticator_of(request).authenticate(
        context_of(request), token, client_address(request)
    )


Authenticated = Annotated[Principal, Depends(authenticated)]
"""A route parameter for any authenticated caller (``POST /auth/logout``)."""


def require(permission: Permission) -> Callable[..., Principal]:
    """A dependency that returns the caller if they have ``permission`` (see module doc)."""

    def dependency(request: Request, principal: Authenticated) -> Principal:
        if not principal.can(permission):
            audit.record(
                context_of(request),
                principal,
                AuditAction.ACCESS,
                f"{request.method} {request.url.path}",
                AuditOutcome.DENIED,
                f"needs {permission}",
            )
            raise PermissionDenied(f"{principal.name} lacks the permission {permission}")
        return principal

    dependency.__name__ = f"require_{permission.name.lower()}"
    return dependency


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid bearer token (problem+json, WWW-Authenticate: Bearer)."},
    403: {"description": "The caller lacks the permission (problem+json)."},
}
"""For a protected route's ``responses=``: the answers :func:`require` may give."""

CanRead = Annotated[Principal, Depends(require(Permission.READ))]
"""A route parameter: the caller, who has ``admin:read``."""
CanCreate = Annotated[Principal, Depends(require(Permission.CREATE))]
"""A route parameter: the caller, who has ``admin:create``."""
CanApprove = Annotated[Principal, Depends(require(Permission.APPROVE))]
"""A route parameter: the caller, who has ``admin:approve``."""


def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AccessError)
    body = {
        "type": "about:blank",
        "title": {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests"}.get(
            exc.status, "Error"
        ),
        "status": exc.status,
        "detail": str(exc),
        "hint": exc.hint,
    }
    return JSONResponse(
        body, status_code=exc.status, headers=exc.headers, media_type="application/problem+json"
    )


def install(app: FastAPI, authenticator: Authenticator, trusted_proxies: Sequence[str]) -> None:
    """Give ``app`` what :func:`require` needs, and the handler of access errors."""
    app.state.authenticator = authenticator
    app.state.trusted_proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
    app.add_exception_handler(AccessError, _problem)
