"""workers: jobs run by workers on other machines, retried, fired once per schedule.

``jobs`` gains what a queue needs: the queue it went to, the id procrastinate gave it,
the job it retries and its attempt number, and the fire time of a scheduled job, unique
per schedule (two ``serve`` processes fire a schedule once). ``workers`` lists the
worker processes with their heartbeats (``respaldo workers``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FIRED = "scheduled_for IS NOT NULL"


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("queue_name", sa.String(128), nullable=True))
        batch.add_column(sa.Column("queue_job_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("retry_of", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("attempt", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )
        batch.add_column(sa.Column("scheduled_for", _time(), nullable=True))
    # One job per schedule and fire time, whichever 'serve' process fired it first.
    op.create_index(
        "uq_jobs_schedule_fire",
        "jobs",
        ["requested_by", "scheduled_for"],
        unique=True,
        sqlite_where=sa.text(_FIRED),
        postgresql_where=sa.text(_FIRED),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", sa.Text(), nullable=True),
        sa.Column("started_at", _time(), nullable=False),
        sa.Column("heartbeat_at", _time(), nullable=False),
        sa.Column("stopping", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_index("uq_jobs_schedule_fire", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("scheduled_for")
        batch.drop_column("attempt")
        batch.drop_column("retry_of")
        batch.drop_column("queue_job_id")
        batch.drop_column("queue_name")
