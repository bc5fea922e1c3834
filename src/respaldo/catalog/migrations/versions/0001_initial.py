"""The catalog's first tables: backup_records and backup_copies.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Frozen history: plain SQLAlchemy types only, never the models, which will have moved on.
Enums are VARCHARs holding the member values; times are timestamptz on PostgreSQL and
naive-UTC text on SQLite (see respaldo.catalog.columns.UTCDateTime).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "backup_records",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("backup_type", sa.String(16), nullable=False),
        sa.Column("storage_path", sa.Text(), nullable=True),
        sa.Column("s3_url", sa.Text(), nullable=True),
        sa.Column("storage_tier", sa.String(32), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("size_compressed", sa.BigInteger(), nullable=True),
        sa.Column("checksum", sa.String(128), nullable=True),
        sa.Column("checksum_algorithm", sa.String(16), server_default="sha256", nullable=False),
        sa.Column("is_verified", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("verified_at", _time(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", _time(), nullable=True),
        sa.Column("completed_at", _time(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("expires_at", _time(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("database_version", sa.String(64), nullable=True),
        sa.Column("schema_version", sa.String(128), nullable=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("database_name", sa.String(63), nullable=True),
        sa.Column("repository", sa.String(63), nullable=False),
        sa.Column("manifest", sa.String(255), nullable=True),
        sa.Column("stored_new_bytes", sa.BigInteger(), nullable=True),
        sa.Column("triggered_by", sa.String(16), nullable=True),
        sa.Column("pinned", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("worker_pid", sa.Integer(), nullable=True),
        sa.Column("worker_host", sa.String(255), nullable=True),
        sa.Column("heartbeat_at", _time(), nullable=True),
        sa.Column("tool_version", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_backup_records"),
    )
    for column in (
        "backup_type",
        "status",
        "started_at",
        "expires_at",
        "created_at",
        "database_name",
    ):
        op.create_index(f"ix_backup_records_{column}", "backup_records", [column])

    op.create_table(
        "backup_copies",
        sa.Column("backup_id", sa.String(32), nullable=False),
        sa.Column("repository", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("updated_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(
            ["backup_id"],
            ["backup_records.id"],
            name="fk_backup_copies_backup_id_backup_records",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("backup_id", "repository", name="pk_backup_copies"),
    )


def downgrade() -> None:
    op.drop_table("backup_copies")
    op.drop_table("backup_records")
