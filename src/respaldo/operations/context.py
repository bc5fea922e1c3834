"""What every operation needs: settings, the catalog, the open repositories, and a way to
report progress.

A :class:`Context` is the application layer's session and the owner of its long-lived
handles. It opens the catalog at once and each repository (its store, its S3 client, its
loaded chunk index) the first time an operation asks for it, then keeps it until
:meth:`Context.close`. A CLI command opens one per invocation (``with Context.open(...)``);
a service keeps one for its lifetime, so that a job opens no new S3 client and reloads an
index only when another process changed it (see
:func:`~respaldo.repository.locks.shared_lease`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType

from respaldo.catalog import BackupRecord, BackupRecords, Catalog, open_catalog
from respaldo.config import Settings
from respaldo.operations.repositories import check_identity, open_repository
from respaldo.repository import Repository

Progress = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``: bytes done in a phase (total None when unknown)."""


def no_progress(phase: str, done: int, total: int | None) -> None:
    """The default progress callback: report nothing."""


@dataclass
class Context:
    """Settings, an open catalog and the repositories opened so far.

    Thread-safe: jobs running at once share one repository object per configured
    repository (a :class:`~respaldo.repository.Repository` is safe for concurrent readers
    and writers). Close it once; it must not be used afterwards.
    """

    settings: Settings
    _catalog: Catalog | None
    progress: Progress = field(default=no_progress)
    _repositories: dict[str, Repository] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    said: dict[str, str] = field(default_factory=dict, repr=False)
    """The last warning given about a subject (a backup record's id) by what runs again and
    again on this context (the service's lost-job sweep, every lease renewal period): said
    once per cause, not on every pass."""
    silent_confirmed: set[tuple[int, datetime]] = field(default_factory=set, repr=False)
    """The (worker id, last heartbeat) pairs this process already saw silent at two looks
    (:func:`respaldo.operations.reconcile.silent_workers`): a lost worker's row stays
    listed for a day, and its sweep would otherwise wait for a second look every time."""

    @classmethod
    def open(
        cls,
        settings: Settings,
        progress: Progress = no_progress,
        *,
        create: bool = False,
        catalog: bool = True,
        retry_lost: bool = False,
        alerts_later: bool = False,
    ) -> Context:
        """Open (and migrate) the catalog and mark backups whose process died.

        With ``catalog=False`` no catalog is opened at all: for the operations on
        repositories alone (verify, keys, index rebuild), which must work where there is
        no catalog (another machine, after a disaster).

        The catalog must exist (CatalogNotFound otherwise) unless ``create``: only
        ``init`` and ``catalog rebuild`` make a new one. What a killed process left
        running is settled here, at the next start (see operations/reconcile.py): its job
        (process gone, or lease lapsed) is failed with the reason; a backup record of
        that job is completed from its manifest if that was written (the backup is
        whole), else failed with the job's reason; a drill run of it is failed likewise.
        Nothing stays running for ever. With ``retry_lost`` (``respaldo serve``, which runs
        them), a lost job of the service is also retried, held by this process
        (:func:`~respaldo.operations.reconcile.settle_abandoned`).

        The alerts of the lost jobs failed here are sent before this returns, unless
        ``alerts_later`` (``respaldo serve`` and ``respaldo worker``, each of which runs a
        resend of its own from its start): then they are only recorded, one pending
        delivery per target, as their sweeps do, so that a target that hangs does not
        hold up the start by ``[notifications] timeout_seconds`` per target. A one-shot
        command has no resend: it sends them itself.
        """
        # Imported here: reconcile builds on Context (as catalog_rebuild, which it uses,
        # does), so a module-level import would be a cycle.
        from respaldo.operations.reconcile import settle_abandoned

        if not catalog:
            return cls(settings, None, progress)
        context = cls(settings, open_catalog(settings.catalog.url, create=create), progress)
        try:
            settle_abandoned(context, retry_here=retry_lost, alerts_later=alerts_later)
        except BaseException:
            context.close()
            raise
        return context

    @property
    def catalog(self) -> Catalog:
        """The open catalog. A context opened with ``catalog=False`` has none: asking for
        it is a bug in the operation (it should have been opened with one)."""
        if self._catalog is None:
            raise RuntimeError("this context was opened without the catalog")
        return self._catalog

    def repository(self, name: str | None = None, *, adopt: bool = False) -> Repository:
        """The configured repository ``name`` (default: the primary), opened with its index
        loaded the first time it is asked for and the same object afterwards. With
        ``adopt`` (``catalog rebuild``) it becomes the one the catalog records under its
        name, once it has opened (the passphrase proves it is the user's).

        Raises what :func:`~respaldo.operations.repositories.open_repository` raises
        (ConfigError for an unknown name, RepositoryNotFound, WrongPassphrase...), and
        RepositoryMismatch when the catalog records another repository under this name
        (:func:`~respaldo.operations.repositories.check_identity`); a repository that
        failed to open is tried again at the next call.
        """
        key = self.settings.repository(name).name
        with self._lock:
            opened = self._repositories.get(key)
            repo = opened if opened is not None else open_repository(self.settings, key)
            if self._catalog is not None and (opened is None or adopt):
                try:
                    check_identity(self._catalog, key, repo.id, repo.storage.location, adopt=adopt)
                except BaseException:
                    if opened is None:
                        repo.close()
                    raise
            self._repositories[key] = repo
            return repo

    def repository_name(self, repo: Repository) -> str | None:
        """The configured name of ``repo`` if :meth:`repository` opened it (without
        opening anything), else None."""
        with self._lock:
            for name, opened in self._repositories.items():
                if opened is repo:
                    return name
        return None

    def reload_index(self, name: str) -> None:
        """After another handle rewrote the index of repository ``name``: reload it in the
        copy this context holds, if it holds one."""
        with self._lock:
            repo = self._repositories.get(name)
        if repo is not None:
            repo.load_index()

    def close(self) -> None:
        """Close every repository opened through :meth:`repository` (their stores and
        clients), then the catalog. Calling it twice is harmless."""
        # Emptied in place: a job's copy of the context (dataclasses.replace) shares the
        # dict, so what a job opened is closed with the context that ran it.
        with self._lock:
            repos = list(self._repositories.values())
            self._repositories.clear()
        try:
            for repo in repos:
                repo.close()
        finally:
            if self._catalog is not None:
                self._catalog.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def record(self, backup_id: str) -> BackupRecord:
        """The catalog's record of ``backup_id`` (RecordNotFound if none)."""
        with self.catalog.read() as session:
            return BackupRecords(session).get(backup_id)


def current_pid() -> int:
    return os.getpid()
