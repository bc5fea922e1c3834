"""job_tallies: the jobs deleted from ``jobs``, counted by kind and final status.

A prune forgets the jobs that ended longer ago than ``[jobs] keep_days``, and a routine
schedule (``wal_copy``) its earlier runs; the counters ``/metrics`` reads from ``jobs``
add what was forgotten here, so that they never go down.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_tallies",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kind", "status"),
    )


def downgrade() -> None:
    op.drop_table("job_tallies")
