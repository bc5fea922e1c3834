"""Local users of the API: add, list, remove, change a password; check one at login.

Passwords are hashed with argon2id (argon2-cffi's defaults: RFC 9106's second
recommended setting) and never stored, logged or shown. Every change is audited, in
the transaction that makes it. The role decides the permissions
(:data:`respaldo.domain.ROLE_PERMISSIONS`), looked up at every request: a changed role
or a removed user takes effect at once, whatever tokens are out.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import Field

from respaldo.catalog import User, Users
from respaldo.domain import ROLE_PERMISSIONS, AuditAction, AuditOutcome, Permission, Role
from respaldo.errors import InvalidInput, RespaldoError
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel, UtcTime
from respaldo.operations.principal import Principal

MIN_PASSWORD_LENGTH = 12
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

HASHER = PasswordHasher()
"""The password hasher (argon2id). Tests replace it with cheaper parameters."""


class UserInfo(ResultModel):
    """A local user, without anything of the password but when it last changed."""

    name: str
    role: Role
    permissions: list[Permission] = Field(description="What the role allows.")
    disabled: bool
    created_at: UtcTime
    password_changed_at: UtcTime

    @classmethod
    def of(cls, user: User) -> UserInfo:
        return cls(
            name=user.name,
            role=user.role,
            permissions=permissions_of(user.role),
            disabled=user.disabled,
            created_at=user.created_at,
            password_changed_at=user.password_changed_at,
        )


def permissions_of(role: Role) -> list[Permission]:
    """The role's permissions, in the order of :class:`Permission`."""
    return [p for p in Permission if p in ROLE_PERMISSIONS[role]]


def validate_user_name(name: str) -> str:
    # fullmatch: "$" lets a trailing line break through ("alice\n" read as "alice").
    if not _USER_NAME.fullmatch(name):
        raise InvalidInput(
            "name",
            f"{name!r} is not a valid user name",
            hint="1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
        )
    return name


def _check_password(password: str) -> None:
    # The message says what is wrong with it, never what it is.
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            "password",
            f"the password is shorter than {MIN_PASSWORD_LENGTH} characters",
            hint="choose a longer one (a few random words make a good one)",
        )


def add_user(ctx: Context, name: str, role: Role, password: str, *, actor: Principal) -> UserInfo:
    """Add a local user with ``role``. Raises InvalidInput (name, short password) or
    RecordExists; a refused add is audited as a failure and changes nothing."""
    now = datetime.now(UTC)
    try:
        validate_user_name(name)
        _check_password(password)
        hashed = HASHER.hash(password)
        with ctx.catalog.begin() as session:
            user = Users(session).add(name, hashed, role, now=now)
            audit.append(
                session, actor, AuditAction.USER_ADD, name, AuditOutcome.SUCCESS, f"role {role}"
            )
            return UserInfo.of(user)
    except RespaldoError as exc:
        audit.record(ctx, actor, AuditAction.USER_ADD, name, AuditOutcome.FAILURE, str(exc))
        raise


def list_users(ctx: Context) -> list[UserInfo]:
    with ctx.catalog.read() as session:
        return [UserInfo.of(user) for user in Users(session).list()]


def remove_user(ctx: Context, name: str, *, actor: Principal) -> None:
    """Remove the user; their sessions end at once. RecordNotFound if there is none."""
    try:
        with ctx.catalog.begin() as session:
            Users(session).remove(name)
            audit.append(session, actor, AuditAction.USER_REMOVE, name, AuditOutcome.SUCCESS)
    except RespaldoError as exc:
        audit.record(ctx, actor, AuditAction.USER_REMOVE, name, AuditOutcome.FAILURE, str(exc))
        raise


def set_password(ctx: Context, name: str, password: str, *, actor: Principal) -> UserInfo:
    """Change the user's password; every session of theirs ends (log in again)."""
    now = datetime.now(UTC)
    try:
        _check_password(password)
        hashed = HASHER.hash(password)
        with ctx.catalog.begin() as session:
            user = Users(session).set_password(name, hashed, now=now)
            audit.append(session, actor, AuditAction.USER_PASSWD, name, AuditOutcome.SUCCESS)
            return UserInfo.of(user)
    except RespaldoError as exc:
        audit.record(ctx, actor, AuditAction.USER_PASSWD, name, AuditOutcome.FAILURE, str(exc))
        raise


def set_disabled(ctx: Context, name: str, disabled: bool, *, actor: Principal) -> UserInfo:
    """Disable a user (their sessions end, they cannot log in) or enable them again."""
    action = AuditAction.USER_DISABLE if disabled else AuditAction.USER_ENABLE
    try:
        with ctx.catalog.begin() as session:
            user = Users(session).set_disabled(name, disabled, now=datetime.now(UTC))
            audit.append(session, actor, action, name, AuditOutcome.SUCCESS)
            return UserInfo.of(user)
    except RespaldoError as exc:
        audit.record(ctx, actor, action, name, AuditOutcome.FAILURE, str(exc))
        raise


@cache
def _dummy_hash() -> str:
    return HASHER.hash("not a password of anyone's")


def prepare_password_checks() -> None:
    """Make, now, the stand-in hash that unknown names are checked against: made at the
    first unknown name instead, that login would cost one argon2 hash more than a wrong
    password does, and its time would tell that the name does not exist. A serving
    process calls it once, before it answers (:class:`respaldo.operations.auth.Authenticator`)."""
    _dummy_hash()


def check_password(ctx: Context, name: str, password: str) -> User | None:
    """The user if ``password`` is theirs and they are not disabled, else None.

    An unknown name costs the same argon2 work as a known one, so that the time taken
    does not tell which names exist. A hash made with older parameters is replaced.
    """
    with ctx.catalog.read() as session:
        user = Users(session).find(name)
    stored = user.password_hash if user is not None else _dummy_hash()
    try:
        HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled:
        return None
    if HASHER.check_needs_rehash(stored):
        with ctx.catalog.begin() as session:
            Users(session).update_hash(name, HASHER.hash(password))
    return user
