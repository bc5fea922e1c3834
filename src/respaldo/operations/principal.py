"""Who is acting: a :class:`Principal`, whichever interface they came through.

The API makes one per request from its bearer token (``respaldo.api.security``); the
CLI acts as the OS user (:func:`local_principal`). The audit log records a principal's
name, how it authenticated and its address.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from respaldo.domain import AuthMethod, Permission, Role


class Principal(BaseModel):
    """An authenticated caller and what it may do.

    ``permissions`` decide; ``role`` is set for local users and API tokens (an ERP token
    carries permissions, not a role). ``session_id`` is the login that ``POST
    /auth/logout`` ends (password logins only); ``address`` the client's address as the
    trusted-proxy setting determines it (None for the CLI).
    """

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="User name, 'token:NAME' for an API token.")
    permissions: frozenset[Permission]
    method: AuthMethod = Field(description="How the caller authenticated.")
    role: Role | None = None
    address: str | None = Field(default=None, description="Client address.")
    session_id: str | None = None

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


def local_principal() -> Principal:
    """The OS user running a CLI command on the server: may do everything (they could
    read the catalog and the repositories' keys anyway)."""
    # Imported here: jobs imports the catalog and more; principal stays light.
    from respaldo.operations.jobs import os_user

    return Principal(
        name=os_user(),
        permissions=frozenset(Permission),
        method=AuthMethod.LOCAL,
        role=Role.ADMIN,
    )
