"""Queries on ``users``, ``auth_sessions`` and ``api_tokens``: who may use the API.

Only hashes are stored: an argon2id hash of each password (made by the operations
layer), a SHA-256 hash of each refresh token and of each API token's secret part (both
random 256-bit values, for which a fast hash is enough). Like every catalog class these
work within one Session and never commit.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog.models import ApiToken, AuthSession, User
from respaldo.domain import Role
from respaldo.errors import RecordExists, RecordNotFound


class Users:
    """Local users, by name."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, name: str, password_hash: str, role: Role, *, now: datetime) -> User:
        """A new user; RecordExists if the name is taken."""
        if self.session.get(User, name) is not None:
            raise RecordExists(
                f"user {name!r} already exists",
                hint="choose another name, or 'respaldo user passwd' to change the password",
            )
        user = User(
            name=name,
            password_hash=password_hash,
            role=role,
            disabled=False,
            created_at=now,
            password_changed_at=now,
        )
        self.session.add(user)
        self.session.flush()
        return user

    def find(self, name: str) -> User | None:
        return self.session.get(User, name)

    def get(self, name: str) -> User:
        user = self.session.get(User, name)
        if user is None:
            raise RecordNotFound(f"no user {name!r}", hint="'respaldo user list' lists them")
        return user

    def list(self) -> builtins.list[User]:
        return builtins.list(self.session.scalars(sa.select(User).order_by(User.name)))

    def remove(self, name: str) -> None:
        """Remove the user and (by the foreign key) every session of theirs."""
        user = self.get(name)
        self.session.execute(sa.delete(AuthSession).where(AuthSession.user_name == name))
        self.session.delete(user)
        self.session.flush()

    def set_password(self, name: str, password_hash: str, *, now: datetime) -> User:
        """A new password hash; every session of the user ends (their tokens stop working)."""
        user = self.get(name)
        user.password_hash = password_hash
        user.password_changed_at = now
        AuthSessions(self.session).revoke_all(name, now=now)
        self.session.flush()
        return user

    def set_disabled(self, name: str, disabled: bool, *, now: datetime) -> User:
        """Disable (every session of theirs ends) or enable the user."""
        user = self.get(name)
        user.disabled = disabled
        if disabled:
            AuthSessions(self.session).revoke_all(name, now=now)
        self.session.flush()
        return user

    def update_hash(self, name: str, password_hash: str) -> None:
        """The same password hashed again with newer parameters (at a successful login)."""
        self.get(name).password_hash = password_hash
        self.session.flush()


class AuthSessions:
    """Logins of local users: one row per refresh token family."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def start(
        self,
        session_id: str,
        user_name: str,
        refresh_hash: str,
        *,
        now: datetime,
        expires_at: datetime,
        address: str | None,
    ) -> AuthSession:
        row = AuthSession(
            id=session_id,
            user_name=user_name,
            refresh_hash=refresh_hash,
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
            address=address,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def find(self, session_id: str) -> AuthSession | None:
        return self.session.get(AuthSession, session_id)

    def by_refresh_hash(self, refresh_hash: str) -> AuthSession | None:
        return self.session.scalars(
            sa.select(AuthSession).where(AuthSession.refresh_hash == refresh_hash)
        ).first()

    def by_previous_hash(self, refresh_hash: str) -> AuthSession | None:
        """The session whose last renewal replaced the refresh token ``refresh_hash``."""
        return self.session.scalars(
            sa.select(AuthSession).where(AuthSession.previous_refresh_hash == refresh_hash)
        ).first()

    def rotate(self, session_id: str, old_hash: str, new_hash: str, *, now: datetime) -> bool:
        """Replace the session's refresh token ``old_hash`` by ``new_hash`` (the old one
        stops working, and is kept as the previous one, renewed at ``now``); False if it
        is no longer ``old_hash`` or the session was revoked. One statement that checks
        what it replaces: two requests that both read the old token cannot both rotate
        it. The session keeps its expiry, so refreshing never makes a login last longer."""
        result = self.session.execute(
            sa.update(AuthSession)
            .where(
                AuthSession.id == session_id,
                AuthSession.refresh_hash == old_hash,
                AuthSession.revoked_at.is_(None),
            )
            .values(refresh_hash=new_hash, previous_refresh_hash=old_hash, rotated_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    def revoke(self, session_id: str, *, now: datetime | None = None) -> None:
        row = self.session.get(AuthSession, session_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = now or datetime.now(UTC)
            self.session.flush()

    def revoke_all(self, user_name: str, *, now: datetime) -> None:
        self.session.execute(
            sa.update(AuthSession)
            .where(AuthSession.user_name == user_name, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    def forget_ended(self, before: datetime) -> int:
        """Delete the sessions that ended (expired, or were logged out) before
        ``before``: one row per login, kept for ever, grew the table without end. A
        session still valid has neither, so it is never deleted. Returns how many."""
        result = self.session.execute(
            sa.delete(AuthSession)
            .where(
                sa.or_(
                    AuthSession.expires_at < before,
                    AuthSession.revoked_at < before,
                )
            )
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class ApiTokens:
    """API tokens for automation, by id (the public part of the token) or name."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        token_id: str,
        name: str,
        token_hash: str,
        role: Role,
        *,
        now: datetime,
        created_by: str | None,
    ) -> ApiToken:
        """A new token; RecordExists if the name is taken (revoked tokens keep theirs)."""
        taken = self.session.scalars(sa.select(ApiToken).where(ApiToken.name == name)).first()
        if taken is not None:
            raise RecordExists(
                f"an API token named {name!r} already exists",
                hint="choose another name ('respaldo token list' lists them)",
            )
        token = ApiToken(
            id=token_id,
            name=name,
            token_hash=token_hash,
            role=role,
            created_at=now,
            created_by=created_by,
            revoked_at=None,
        )
        self.session.add(token)
        self.session.flush()
        return token

    def find(self, token_id: str) -> ApiToken | None:
        return self.session.get(ApiToken, token_id)

    def by_name(self, name: str) -> ApiToken:
        token = self.session.scalars(sa.select(ApiToken).where(ApiToken.name == name)).first()
        if token is None:
            raise RecordNotFound(
                f"no API token named {name!r}", hint="'respaldo token list' lists them"
            )
        return token

    def list(self) -> builtins.list[ApiToken]:
        return builtins.list(self.session.scalars(sa.select(ApiToken).order_by(ApiToken.name)))

    def revoke(self, name: str, *, now: datetime) -> ApiToken:
        """Revoke the token (it stops working at once); revoking twice changes nothing."""
        token = self.by_name(name)
        if token.revoked_at is None:
            token.revoked_at = now
            self.session.flush()
        return token
