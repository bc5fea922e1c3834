"""backup_records.source: the server (system identifier) and database a logical backup
was taken from, to tell when a database's backups stop coming from one source.

Workers on several machines each read a database's ``dsn`` from their own config: one
that leads elsewhere (a replica's copy on another server, a staging database) had its
backups recorded as the database's with nothing to tell them apart.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("backup_records", sa.Column("source", sa.String(160), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backup_records") as batch:
        batch.drop_column("source")
