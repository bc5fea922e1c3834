"""drill_runs.backup_kind: the tested backup's kind, kept with the run.

The status, the metrics and the monthly report judge each kind of a database's backups
(logical, physical) by its restore tests, and read a test's kind from the tested
backup's record. Retention deletes that record: a physical backup tested on Sunday and
expired on Tuesday left its pass with no kind, and the physical backups looked never
tested (restore_test red, "no restore test of its physical backups ever passed").

Runs already recorded take the kind of their backup's record where it is still there;
those of backups already gone stay without one (nothing tells it now).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("drill_runs", sa.Column("backup_kind", sa.String(16), nullable=True))
    op.execute(
        "UPDATE drill_runs SET backup_kind = (SELECT backup_records.backup_type "
        "FROM backup_records WHERE backup_records.id = drill_runs.backup_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("drill_runs") as batch:
        batch.drop_column("backup_kind")
