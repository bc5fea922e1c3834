"""backup_records.primary_deleted_at: when a backup was deleted from its primary
repository while a mirror that could not be reached still holds it.

A prune that cannot reach a mirror deletes the expired backups from the primary and
keeps their records until the next prune that reaches the mirror. Those records still
said "completed" in the primary: listed as restorable, reported missing by a full
verify of the primary, and copied (failing, "no manifest") by the copy retries once the
mirror was back. NULL for every existing record: the primary holds it.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # As every time column (respaldo.catalog.columns.UTCDateTime stores it).
    op.add_column(
        "backup_records", sa.Column("primary_deleted_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("backup_records") as batch:
        batch.drop_column("primary_deleted_at")
