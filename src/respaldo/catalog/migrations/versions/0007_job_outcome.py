"""jobs.outcome: what a job produced, as a JSON object (a prune's reclaimed bytes).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a default: a plain ALTER TABLE on SQLite and PostgreSQL.
    op.add_column("jobs", sa.Column("outcome", sa.Text(), nullable=True))


def downgrade() -> None:
    # batch: SQLite before 3.35 has no DROP COLUMN (the table is rebuilt instead).
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("outcome")
