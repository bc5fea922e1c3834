"""Request bodies: camelCase on the wire like every result, unknown fields refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from respaldo.domain import BackupKind


class RequestModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class BackupRequest(RequestModel):
    """``POST /admin/backups``: what to back up."""

    type: BackupKind = Field(
        description="full (pg_dump), incremental (pg_basebackup, physical), files (a file "
        "set) or snapshot (a pinned full backup)."
    )
    database: str | None = Field(
        default=None,
        description="The configured database (a file set for files); default: the first "
        "configured one.",
    )


class RestoreBody(RequestModel):
    """``POST /admin/backups/{id}/restore``: where to restore."""

    replace: bool = Field(
        default=False,
        description="Replace the live database (the application is stopped and started "
        "by its hooks around the swap); default: restore into a new database.",
    )
    confirm: str | None = Field(
        default=None,
        description="With replace: the name of the database being replaced, as confirmation.",
    )
    target_database: str | None = Field(
        default=None,
        description="Without replace: the new database's name; default: "
        "<name>_restored_<UTC time>_<hex>.",
    )
    repository: str | None = Field(
        default=None,
        description="Read the backup from this configured repository alone (a mirror, "
        "say); default: the first that opens, the others' copies for what it lacks.",
    )


class RestoreTestBody(RequestModel):
    """``POST /admin/backups/test``: which backup to test."""

    backup_id: str | None = Field(
        default=None, description="The backup to test; default: the newest of database."
    )
    database: str | None = Field(
        default=None,
        description="Test this configured database (default: the first configured one): "
        "the newest completed backup of each kind it relies on (logical, physical), one "
        "after the other in one job, as 'respaldo drill DATABASE' does; relying on neither, "
        "its newest logical backup, else its newest physical one.",
    )
