"""Authentication for the API: logins, access and refresh tokens, and bearer tokens of
every kind turned into a :class:`~respaldo.operations.principal.Principal`.

- A local user logs in with name and password (:meth:`Authenticator.login`) and gets a
  short-lived access token (a JWT, HS256, signed with the key in ``[server]
  jwt_secret_file``) and a refresh token (random, stored hashed, rotated at each use).
  Each login is a *session*: access tokens name it (``sid``), and every request checks
  that the session is live and the user still there and enabled, so logout, a password
  change or a removed user cut access at once. Permissions come from the user's role at
  that moment, not from the token.
- API tokens (``rsp_...``): :mod:`respaldo.operations.api_tokens`.
- JWTs issued by the ERP ([server.erp_jwt]): :mod:`respaldo.operations.erp_jwt`; told
  apart from ours by their issuer, and checked only with the ERP's public keys.

Logins are audited (success and failure) and rate-limited per name and per address
(:mod:`respaldo.operations.login_limit`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import jwt
from pydantic import BaseModel, Field

from respaldo.catalog import AuthSessions, Users
from respaldo.config import Settings, read_secret_file
from respaldo.domain import ROLE_PERMISSIONS, AuditAction, AuditOutcome, AuthMethod, Role
from respaldo.errors import (
    AuthenticationFailed,
    ConfigError,
    RefreshTokenJustUsed,
    TooManyAttempts,
)
from respaldo.operations import api_tokens, audit, users
from respaldo.operations.context import Context
from respaldo.operations.erp_jwt import CLOCK_LEEWAY, ErpUserRefused, ErpVerifier
from respaldo.operations.login_limit import LoginLimiter
from respaldo.operations.principal import Principal

log = logging.getLogger(__name__)

ISSUER: Final = "respaldo"
ALGORITHM: Final = "HS256"
MIN_SECRET_BYTES: Final = 32

# Secrets that appear in tutorials, sample configs and generators' defaults: long
# enough, perhaps, and known to everyone.
KNOWN_DEFAULT_SECRETS: Final = frozenset(
    {
        "secret",
        "changeme",
        "change-me",
        "change_me",
        "changeit",
        "your-256-bit-secret",
        "your-secret-key",
        "your_secret_key",
        "supersecret",
        "super-secret-key",
        "jwt_secret",
        "jwt-secret",
        "mysecretkey",
        "please-change-this-secret-key-in-production",
        "change-this-to-a-long-random-secret-of-32-bytes-or-more",
        "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
    }
)

_BAD_LOGIN: Final = "wrong user name or password"
_UNKNOWN_REFRESH: Final = "the refresh token is not valid (unknown, or already used)"
_JUST_USED: Final = "the refresh token was used a moment ago by another request"
_REPLAYED: Final = (
    "the refresh token was replaced at an earlier renewal; used again, it ended the session"
)
RACE_WINDOW: Final = timedelta(seconds=60)
"""How long after a renewal the refresh token it replaced counts as a request racing
it (sent with the same cookies as the request that renewed): seconds at most, unless
the answer that carried the new token never reached the browser."""


class TokenPair(BaseModel):
    """What ``POST /auth/token`` and ``POST /auth/refresh`` answer, with OAuth2's own
    snake_case names (RFC 6749, section 5.1), not the camelCase of result models."""

    access_token: str = Field(description="A JWT to send as 'Authorization: Bearer ...'.")
    token_type: str = Field(default="bearer", description="Always 'bearer'.")
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str = Field(description="For POST /auth/refresh; used once.")


def load_secret(settings: Settings) -> bytes:
    """The HS256 key from ``[server] jwt_secret_file``, checked; a random one if unset.

    Raises ConfigError for an unreadable or group/world-readable file, a secret shorter
    than 32 bytes, or a known default.
    """
    path = settings.server.jwt_secret_file
    if path is None:
        log.warning(
            "no [server] jwt_secret_file: access tokens are signed with a random key and "
            "end when respaldo serve stops"
        )
        return secrets.token_bytes(MIN_SECRET_BYTES)
    secret = read_secret_file(path, "[server] jwt_secret_file")
    hint = f"write a random one: head -c 48 /dev/urandom | base64 > {path}; chmod 600 {path}"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"[server] jwt_secret_file {path}: the secret is shorter than {MIN_SECRET_BYTES} bytes",
            hint=hint,
        )
    if secret.strip().lower() in KNOWN_DEFAULT_SECRETS or len(set(secret)) < 8:
        raise ConfigError(
            f"[server] jwt_secret_file {path}: the secret is a well-known default or "
            "too repetitive",
            hint=hint,
        )
    return secret.encode()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    """Logins and token checks for one serving process; the login counts are in the
    catalog, shared with every other server on it (operations/login_limit.py).

    Thread-safe. ``clock`` (wall-clock seconds, the same in every server) drives the
    login limits only.
    """

    def __init__(
        self,
        settings: Settings,
        secret: bytes,
        *,
        erp: ErpVerifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        server = settings.server
        self.secret = secret
        self.access_ttl = timedelta(minutes=server.access_token_minutes)
        self.refresh_ttl = timedelta(hours=server.refresh_token_hours)
        self.limiter = LoginLimiter(server.login_max_failures, server.login_window_seconds, clock)
        self.erp = erp
        users.prepare_password_checks()

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        """Read and check the secret (and the ERP's key): ConfigError at start-up, not
        at the first request."""
        erp_settings = settings.server.erp_jwt
        erp = ErpVerifier(erp_settings) if erp_settings is not None else None
        return cls(settings, load_secret(settings), erp=erp)

    # -- logins ------------------------------------------------------------------------

    def login(self, ctx: Context, name: str, password: str, address: str | None) -> TokenPair:
        """Check name and password; a new session and its tokens. Raises TooManyAttempts
        (no password is checked then) or AuthenticationFailed; both are audited."""
        try:
            attempt = self.limiter.attempt(ctx, name, address)
        except TooManyAttempts:
            audit.record(
                ctx,
                name,
                AuditAction.LOGIN,
                name,
                AuditOutcome.DENIED,
                "too many failed logins",
                address=address,
            )
            raise
        user = users.check_password(ctx, name, password)
        if user is None:
            # The attempt stays counted as a failure (limiter.attempt recorded it).
            audit.record(
                ctx,
                name,
                AuditAction.LOGIN,
                name,
                AuditOutcome.FAILURE,
                _BAD_LOGIN,
                address=address,
            )
            raise AuthenticationFailed(_BAD_LOGIN, hint="check both; names are case-sensitive")
        self.limiter.succeeded(ctx, attempt)
        now = datetime.now(UTC)
        session_id, refresh = secrets.token_hex(16), secrets.token_urlsafe(32)
        principal = self._principal(user.name, user.role, session_id, address)
        with ctx.catalog.begin() as session:
            AuthSessions(session).start(
                session_id,
                user.name,
                _digest(refresh),
                now=now,
                expires_at=now + self.refresh_ttl,
                address=address,
            )
            audit.append(session, principal, AuditAction.LOGIN, user.name, AuditOutcome.SUCCESS)
        return self._pair(user.name, session_id, refresh, now)

    def refresh(self, ctx: Context, refresh_token: str, address: str | None) -> TokenPair:
        """A new access token and a new refresh token for a live session; the refresh
        token given stops working. AuthenticationFailed (audited) otherwise."""
        now = datetime.now(UTC)
        new_refresh = secrets.token_urlsafe(32)
        problem, who, session_id, raced = None, "-", "", False
        with ctx.catalog.begin() as session:
            sessions = AuthSessions(session)
            digest = _digest(refresh_token)
            row = sessions.by_refresh_hash(digest)
            replayed = None
            if row is None:
                # The token the last renewal replaced, a moment ago: another request of
                # the same page renewed the session with it; longer ago, a replay (below).
                # Any other unknown token is no live session's (its user was removed, or
                # it was replaced two renewals ago or more).
                row = sessions.by_previous_hash(digest)
                raced = row is not None and _just_rotated(row.rotated_at, now)
                row, replayed = (row, None) if raced else (None, row)
            user = Users(session).find(row.user_name) if row is not None else None
            if replayed is not None and replayed.revoked_at is None:
                # Used again well after it was replaced: two holders of the session's
                # tokens (one stolen), or one that lost the answer of the renewal, which
                # is logged out all the same. Whichever holder renewed it first, the
                # session ends for both (OAuth's refresh token reuse detection): a thief
                # who renewed first is not left alone with it.
                sessions.revoke(replayed.id, now=now)
                who, problem = replayed.user_name, _REPLAYED
            elif row is None:
                problem = _UNKNOWN_REFRESH
            else:
                who = row.user_name
                if row.revoked_at is not None:
                    problem = "the session was logged out"
                elif row.expires_at <= now:
                    problem = "the session has expired"
                elif user is None or user.disabled:
                    problem = f"user {row.user_name!r} was removed or disabled"
                elif raced:
                    problem = _JUST_USED
                elif not sessions.rotate(row.id, row.refresh_hash, _digest(new_refresh), now=now):
                    # Another request rotated it since it was read: it just used it.
                    problem, raced = _JUST_USED, True
                else:
                    session_id = row.id
        if problem is not None:
            audit.record(
                ctx, who, AuditAction.REFRESH, who, AuditOutcome.FAILURE, problem, address=address
            )
            error = RefreshTokenJustUsed if raced else AuthenticationFailed
            raise error(problem, hint="log in again at POST /auth/token")
        return self._pair(who, session_id, new_refresh, now)

    def logout(self, ctx: Context, principal: Principal, refresh_token: str | None = None) -> None:
        """End the principal's session (its access and refresh tokens stop working), and
        the session of ``refresh_token`` if it is the same user's. API and ERP tokens
        have no session: revoke an API token with ``respaldo token revoke``."""
        now = datetime.now(UTC)
        with ctx.catalog.begin() as session:
            sessions = AuthSessions(session)
            ended = []
            if principal.session_id is not None:
                sessions.revoke(principal.session_id, now=now)
                ended.append(principal.session_id)
            if refresh_token is not None:
                row = sessions.by_refresh_hash(_digest(refresh_token))
                if row is not None and row.user_name == principal.name and row.id not in ended:
                    sessions.revoke(row.id, now=now)
                    ended.append(row.id)
            if ended:
                audit.append(
                    session, principal, AuditAction.LOGOUT, principal.name, AuditOutcome.SUCCESS
                )

    def sign_in(self, ctx: Context, token: str, address: str | None) -> Principal:
        """The page's sign-in with a token (the ERP's JWT, an API token): the principal
        of :meth:`authenticate`, audited as a login, success or failure (the reason,
        never the token). Raises AuthenticationFailed."""
        try:
            principal = self.authenticate(ctx, token, address)
        except AuthenticationFailed as exc:
            if not isinstance(exc, ErpUserRefused):  # that one is audited already
                _login_failed(ctx, exc, address)
            raise
        detail = f"signed in to the page with {principal.method.value}"
        audit.record(
            ctx, principal, AuditAction.LOGIN, principal.name, AuditOutcome.SUCCESS, detail
        )
        return principal

    # -- bearer tokens -----------------------------------------------------------------

    def authenticate(self, ctx: Context, token: str, address: str | None) -> Principal:
        """The principal of a bearer token of any kind; AuthenticationFailed if it is
        malformed, expired, revoked, signed with another key, or its user is gone."""
        if token.startswith(api_tokens.PREFIX):
            return api_tokens.authenticate(ctx, token, address)
        try:
            unverified: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise AuthenticationFailed("the bearer token is malformed") from None
        if self.erp is not None and unverified.get("iss") == self.erp.issuer:
            try:
                return self.erp.verify(token, address)
            except ErpUserRefused as exc:
                # A token the ERP signed, refused for its user name (token:ci would pass
                # for an API token in the log): worth an entry, unlike a token that
                # expired. Under no actor's name: the one claimed is what is refused.
                _login_failed(ctx, exc, address)
                raise
        return self._local(ctx, token, address)

    def _local(self, ctx: Context, token: str, address: str | None) -> Principal:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                leeway=CLOCK_LEEWAY,
                options={"require": ["exp", "iat", "iss", "sub", "sid", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed(
                "the access token has expired",
                hint="get a new one at POST /auth/refresh, or log in again",
            ) from None
        except jwt.InvalidSignatureError:
            raise AuthenticationFailed("the token's signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise AuthenticationFailed(f"the bearer token is not valid: {exc}") from None
        if claims["typ"] != "access":
            raise AuthenticationFailed("the bearer token is not an access token")
        name, session_id = str(claims["sub"]), str(claims["sid"])
        with ctx.catalog.read() as session:
            row = AuthSessions(session).find(session_id)
            user = Users(session).find(name)
        if row is None or row.user_name != name or row.revoked_at is not None:
            raise AuthenticationFailed("the session of this token was logged out")
        if row.expires_at <= datetime.now(UTC):
            raise AuthenticationFailed("the session of this token has expired")
        if user is None or user.disabled:
            raise AuthenticationFailed(f"user {name!r} was removed or disabled")
        return self._principal(user.name, user.role, session_id, address)

    def _principal(self, name: str, role: Role, session_id: str, address: str | None) -> Principal:
        return Principal(
            name=name,
            permissions=ROLE_PERMISSIONS[role],
            method=AuthMethod.PASSWORD,
            role=role,
            address=address,
            session_id=session_id,
        )

    def _pair(self, name: str, session_id: str, refresh: str, now: datetime) -> TokenPair:
        claims = {
            "iss": ISSUER,
            "sub": name,
            "sid": session_id,
            "jti": secrets.token_hex(8),
            "typ": "access",
            "iat": now,
            "exp": now + self.access_ttl,
        }
        access = jwt.encode(claims, self.secret, algorithm=ALGORITHM)
        return TokenPair(
            access_token=access,
            expires_in=int(self.access_ttl.total_seconds()),
            refresh_token=refresh,
        )


def _just_rotated(rotated_at: datetime | None, now: datetime) -> bool:
    return rotated_at is not None and now - rotated_at <= RACE_WINDOW


def _login_failed(ctx: Context, exc: AuthenticationFailed, address: str | None) -> None:
    """A failed login in the audit log: under no actor's name, the reason, never the token."""
    audit.record(ctx, "-", AuditAction.LOGIN, None, AuditOutcome.FAILURE, str(exc), address=address)
