"""What every operation needs: settings, the catalog, and a way to report progress."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from respaldo.catalog import BackupRecord, BackupRecords, Catalog, open_catalog
from respaldo.config import Settings

Progress = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``: bytes done in a phase (total None when unknown)."""


def no_progress(phase: str, done: int, total: int | None) -> None:
    """The default progress callback: report nothing."""


@dataclass
class Context:
    """Settings and an open catalog, shared by the operations of one process."""

    settings: Settings
    catalog: Catalog
    progress: Progress = field(default=no_progress)

    @classmethod
    def open(
        cls, settings: Settings, progress: Progress = no_progress, *, create: bool = False
    ) -> Context:
        """Open (and migrate) the catalog and mark backups whose process died.

        The catalog must exist (CatalogNotFound otherwise) unless ``create``: only
        ``init`` and ``catalog rebuild`` make a new one. A backup left in_progress by a
        process that was killed is settled here, at the next start: completed from its
        manifest if that was written (the backup is whole), else failed with the reason,
        so that no record stays in_progress for ever (see operations/reconcile.py).
        """
        # Imported here: reconciling reads manifests through operations that themselves
        # build on Context (catalog_rebuild, repair), so a module-level import is a cycle.
        from respaldo.operations.reconcile import settle_abandoned

        catalog = open_catalog(settings.catalog.url, create=create)
        try:
            settle_abandoned(settings, catalog, datetime.now(UTC))
        except BaseException:
            catalog.close()
            raise
        return cls(settings, catalog, progress)

    def close(self) -> None:
        self.catalog.close()

    def record(self, backup_id: str) -> BackupRecord:
        with self.catalog.begin() as session:
            return BackupRecords(session).get(backup_id)


def current_pid() -> int:
    return os.getpid()
