"""alert_deliveries: each alert's delivery to each notification target.

An alert that one target took and another refused (the mail server down for six
minutes, the webhook up) was never sent to the one that refused it: ``notifications``
logged the refusal and nothing tried again. Each delivery is now a row, ``pending`` until
the target takes it (retried with backoff by ``respaldo serve``) or it is given up.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_alert_deliveries_state_target"


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("target", sa.String(63), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=True),
        sa.Column("alert", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("tried_at", _time(), nullable=True),
        sa.Column("next_try_at", _time(), nullable=True),
        sa.Column("ended_at", _time(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
    )
    op.create_index(INDEX, "alert_deliveries", ["state", "target"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
