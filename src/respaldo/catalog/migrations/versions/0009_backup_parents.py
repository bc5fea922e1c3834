"""backup_records.parent_id: the backup an incremental physical backup restores on top of.

Retention keeps the parent (and so the whole chain) of every backup it keeps. Rows
written before this revision, and every backup that is not an incremental, have none. No
foreign key: a parent's record may be rebuilt, or pruned by hand, after its child's.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN of a nullable column: no table rebuild, even on SQLite.
    op.add_column("backup_records", sa.Column("parent_id", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backup_records") as batch:
        batch.drop_column("parent_id")
