"""drill_runs: the history of restore tests and their measured restore times.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "drill_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("backup_id", sa.String(32), nullable=False),
        sa.Column("database_name", sa.String(63), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("scratch_name", sa.String(255), nullable=True),
        sa.Column("started_at", _time(), nullable=False),
        sa.Column("finished_at", _time(), nullable=True),
        sa.Column("restore_seconds", sa.Float(), nullable=True),
        sa.Column("checks", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("worker_pid", sa.Integer(), nullable=True),
        sa.Column("worker_host", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_drill_runs"),
    )
    op.create_index("ix_drill_runs_backup_id", "drill_runs", ["backup_id"])
    op.create_index("ix_drill_runs_started_at", "drill_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_drill_runs_started_at", table_name="drill_runs")
    op.drop_index("ix_drill_runs_backup_id", table_name="drill_runs")
    op.drop_table("drill_runs")
