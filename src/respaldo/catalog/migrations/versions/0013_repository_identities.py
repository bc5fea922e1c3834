"""repository_identities: the repository id each configured repository name stands for.

Recorded by the first process that opens the repository on this catalog; a process whose
repository of that name has another id (a ``file://`` path that is each machine's own
disk) is refused, so that backups only some machines can read are never recorded.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "repository_identities",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("repository_id", sa.String(64), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("repository_identities")
