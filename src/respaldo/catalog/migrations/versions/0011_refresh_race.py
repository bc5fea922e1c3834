"""auth_sessions.previous_refresh_hash, rotated_at: the refresh token the last renewal
replaced, and when.

A page request sent with it a moment after is racing that renewal (another request of
the same page renewed the session), and keeps the cookies the renewal set; any other
unknown refresh token ends the browser's session. Rows written before this revision
have neither: their next renewal sets them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN of nullable columns: no table rebuild, even on SQLite.
    op.add_column("auth_sessions", sa.Column("previous_refresh_hash", sa.String(64), nullable=True))
    op.add_column("auth_sessions", sa.Column("rotated_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_auth_sessions_previous_refresh_hash", "auth_sessions", ["previous_refresh_hash"]
    )


def downgrade() -> None:
    op.drop_index("ix_auth_sessions_previous_refresh_hash", table_name="auth_sessions")
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("rotated_at")
        batch.drop_column("previous_refresh_hash")
