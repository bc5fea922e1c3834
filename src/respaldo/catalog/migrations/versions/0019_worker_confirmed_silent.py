"""workers.confirmed_silent_at: the heartbeat a sweep confirmed silent at two looks.

A lost worker's row stays for a day (listed lost). Every process that sweeps (serve, a
worker, each one-shot CLI command that finds a queued job past its expiry) looked twice,
a few renewal periods apart, before taking its silence for real: each CLI command waited
those ~10 s again, since the confirmation lived in the process's memory. Kept here, the
second look is paid once per lost heartbeat. NULL for every existing row: not confirmed.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # As every time column (respaldo.catalog.columns.UTCDateTime stores it).
    op.add_column(
        "workers", sa.Column("confirmed_silent_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("confirmed_silent_at")
