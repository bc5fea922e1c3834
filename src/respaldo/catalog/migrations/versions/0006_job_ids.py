"""backup_records.job_id, drill_runs.job_id: the job a backup or a drill runs in.

A record in progress is abandoned exactly when its job has ended or its lease lapsed
(see :mod:`respaldo.catalog.jobs`). Rows written before this revision have no job: they
keep being judged by their own pid and host. No foreign key: the history of backups and
drills may outlive the jobs table's rows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("backup_records", "drill_runs")


def upgrade() -> None:
    for table in _TABLES:
        # ADD COLUMN of a nullable column: no table rebuild, even on SQLite.
        op.add_column(table, sa.Column("job_id", sa.Integer(), nullable=True))
        op.create_index(f"ix_{table}_job_id", table, ["job_id"])


def downgrade() -> None:
    for table in _TABLES:
        op.drop_index(f"ix_{table}_job_id", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("job_id")
