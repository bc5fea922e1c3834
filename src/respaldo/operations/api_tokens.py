"""API tokens for automation: created by ``respaldo token create``, shown once, revocable.

A token reads ``rsp_<id>_<secret>``: ``id`` (12 hex digits) finds its row, ``secret``
(256 random bits) is checked against the SHA-256 hash stored there. Only the hash is
kept, so a copy of the catalog holds no usable token; a fast hash is enough for a
random 256-bit secret (argon2 is for passwords people choose). A revoked token stops
working at the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from pydantic import Field

from respaldo.catalog import ApiToken, ApiTokens
from respaldo.domain import ROLE_PERMISSIONS, AuditAction, AuditOutcome, AuthMethod, Role
from respaldo.errors import AuthenticationFailed, RespaldoError
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel, UtcTime
from respaldo.operations.principal import Principal
from respaldo.operations.users import validate_user_name

PREFIX = "rsp_"


class TokenInfo(ResultModel):
    """An API token as listed: never the token itself."""

    name: str
    id: str = Field(description="The public part of the token (after 'rsp_').")
    role: Role
    created_at: UtcTime
    created_by: str | None
    revoked_at: UtcTime | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenInfo:
        return cls(
            name=token.name,
            id=token.id,
            role=token.role,
            created_at=token.created_at,
            created_by=token.created_by,
            revoked_at=token.revoked_at,
        )


class CreatedToken(TokenInfo):
    """A new API token, with the token: shown this once, stored only as a hash."""

    token: str = Field(description="The bearer token. Shown once; keep it secret.")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(ctx: Context, name: str, role: Role, *, actor: Principal) -> CreatedToken:
    """A new token named ``name`` with ``role``; RecordExists if the name is taken."""
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    try:
        validate_user_name(name)
        with ctx.catalog.begin() as session:
            row = ApiTokens(session).add(
                token_id,
                name,
                digest(secret),
                role,
                now=datetime.now(UTC),
                created_by=actor.name,
            )
            audit.append(
                session, actor, AuditAction.TOKEN_CREATE, name, AuditOutcome.SUCCESS, f"role {role}"
            )
            info = TokenInfo.of(row)
    except RespaldoError as exc:
        audit.record(ctx, actor, AuditAction.TOKEN_CREATE, name, AuditOutcome.FAILURE, str(exc))
        raise
    return CreatedToken(**info.model_dump(), token=f"{PREFIX}{token_id}_{secret}")


def list_tokens(ctx: Context) -> list[TokenInfo]:
    with ctx.catalog.read() as session:
        return [TokenInfo.of(token) for token in ApiTokens(session).list()]


def revoke_token(ctx: Context, name: str, *, actor: Principal) -> TokenInfo:
    """Revoke the token named ``name`` (RecordNotFound if none); it stops working at once."""
    try:
        with ctx.catalog.begin() as session:
            row = ApiTokens(session).revoke(name, now=datetime.now(UTC))
            audit.append(session, actor, AuditAction.TOKEN_REVOKE, name, AuditOutcome.SUCCESS)
            return TokenInfo.of(row)
    except RespaldoError as exc:
        audit.record(ctx, actor, AuditAction.TOKEN_REVOKE, name, AuditOutcome.FAILURE, str(exc))
        raise


def authenticate(ctx: Context, token: str, address: str | None) -> Principal:
    """The principal of an API token; AuthenticationFailed if it is malformed, unknown,
    wrong or revoked (one message for all but revoked: nothing to learn by probing)."""
    _, _, rest = token.partition(PREFIX)
    token_id, _, secret = rest.partition("_")
    invalid = AuthenticationFailed("the API token is not valid")
    if not token_id or not secret:
        raise invalid
    with ctx.catalog.read() as session:
        row = ApiTokens(session).find(token_id)
    if row is None or not hmac.compare_digest(row.token_hash, digest(secret)):
        raise invalid
    if row.revoked_at is not None:
        raise AuthenticationFailed(
            f"the API token {row.name!r} was revoked",
            hint="create a new one: respaldo token create",
        )
    return Principal(
        name=f"token:{row.name}",
        permissions=ROLE_PERMISSIONS[row.role],
        method=AuthMethod.API_TOKEN,
        role=row.role,
        address=address,
    )
