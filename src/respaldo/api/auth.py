"""``POST /auth/token`` (OAuth2 password flow), ``/auth/refresh``, ``/auth/logout``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from respaldo.api.security import Authenticated, authenticator_of, client_address, context_of
from respaldo.operations.auth import TokenPair

router = APIRouter(prefix="/auth", tags=["auth"])

_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "Wrong credentials or token (problem+json)."},
    429: {"description": "Too many failed logins; see Retry-After (problem+json)."},
}


@router.post("/token", response_model=TokenPair, responses=_ERRORS)
def token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenPair:
    """Log in with a local user's name and password (form fields ``username`` and
    ``password``): a short-lived access token and a refresh token."""
    return authenticator_of(request).login(
        context_of(request), form.username, form.password, client_address(request)
    )


@router.post("/refresh", response_model=TokenPair, responses=_ERRORS)
def refresh(
    request: Request,
    refresh_token: Annotated[str, Form(description="The refresh token of the session.")],
) -> TokenPair:
    """A new access token (and refresh token) for the form field ``refresh_token``; the
    refresh token given stops working."""
    return authenticator_of(request).refresh(
        context_of(request), refresh_token, client_address(request)
    )


@router.post("/logout", status_code=204, responses=_ERRORS)
def logout(
    request: Request,
    principal: Authenticated,
    refresh_token: Annotated[
        str | None, Form(description="The session's refresh token, revoked too.")
    ] = None,
) -> Response:
    """End the caller's session: its access token and refresh token stop working."""
    authenticator_of(request).logout(context_of(request), principal, refresh_token)
    return Response(status_code=204)
