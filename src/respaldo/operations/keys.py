"""Repository keys and index: the passphrases that open a repository (``key``), and
rebuilding its chunk index from the pack headers (``index rebuild``).

New passphrases are plain arguments here; where they come from (a 0600 file, the
environment, a hidden prompt: never argv) is the interface's business.
"""

from __future__ import annotations

from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel
from respaldo.operations.repositories import check_new_passphrase, open_store
from respaldo.repository import KdfParams, Repository, rebuild_index


class KeyView(ResultModel):
    """One key file: its id, when it was made, and whether the configured passphrase
    opens it."""

    id: str
    created: str
    current: bool


class PassphraseChange(ResultModel):
    old_key: str
    new_key: str


class IndexRebuildResult(ResultModel):
    repository: str
    packs: int
    chunks: int
    index_files_written: int
    index_files_removed: int
    quarantined: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def list_keys(ctx: Context, repository: str | None = None) -> list[KeyView]:
    """The keys of ``repository`` (default: the primary); never any key material."""
    repo = ctx.repository(repository)
    current = repo.key_id_for(ctx.settings.repository_passphrase())
    return [
        KeyView(id=key["id"], created=str(key["created"]), current=key["id"] == current)
        for key in repo.list_keys()
    ]


def add_key(
    ctx: Context, passphrase: str, repository: str | None = None, *, kdf: KdfParams | None = None
) -> str:
    """Add ``passphrase`` as another key that opens the repository; return its id.
    Raises WeakPassphrase (nothing written) for one too short for a new key."""
    check_new_passphrase(passphrase)
    return ctx.repository(repository).add_key(passphrase, kdf)


def change_passphrase(
    ctx: Context, passphrase: str, repository: str | None = None, *, kdf: KdfParams | None = None
) -> PassphraseChange:
    """Replace the key that the configured passphrase opens with one for ``passphrase``.
    Raises WeakPassphrase (nothing written) for one too short for a new key."""
    check_new_passphrase(passphrase)
    repo = ctx.repository(repository)
    current = repo.key_id_for(ctx.settings.repository_passphrase())
    new = repo.change_passphrase(current, passphrase, kdf)
    return PassphraseChange(old_key=current, new_key=new)


def remove_key(ctx: Context, key_id: str, repository: str | None = None) -> None:
    """Remove a key. Raises RepositoryError for the last one or an unknown id."""
    ctx.repository(repository).remove_key(key_id)


def rebuild_repository_index(ctx: Context, repository: str | None = None) -> IndexRebuildResult:
    """Replace every index file of ``repository`` with ones made from the pack headers.

    The repository is opened apart, without loading its index (the index may be what is
    broken), and closed; the context's own copy, if any, reloads the new index.
    """
    settings = ctx.settings
    repo_settings = settings.repository(repository)
    with Repository.open(
        open_store(repo_settings),
        settings.repository_passphrase(),
        cache_dir=settings.cache_dir,
        load_index=False,
    ) as repo:
        report = rebuild_index(repo)
    ctx.reload_index(repo_settings.name)
    return IndexRebuildResult(
        repository=repo_settings.name,
        packs=report.packs,
        chunks=report.chunks,
        index_files_written=report.index_files_written,
        index_files_removed=report.index_files_removed,
        quarantined=report.quarantined,
        problems=[str(p) for p in report.problems],
    )
