"""Repository keys and index: the passphrases that open a repository (``key``), and
rebuilding its chunk index from the pack headers (``index rebuild``).

New passphrases are plain arguments here; where they come from (a 0600 file, the
environment, a hidden prompt: never argv) is the interface's business.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from respaldo.domain import AuditAction, AuditOutcome
from respaldo.errors import RepositoryError, RespaldoError
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel
from respaldo.operations.repositories import check_new_passphrase, open_store
from respaldo.repository import KdfParams, Repository, rebuild_index
from respaldo.repository.key_import import import_key as put_key_file


class KeyView(ResultModel):
    """One key file: its id, when it was made, and whether the configured passphrase
    opens it."""

    id: str
    created: str
    current: bool
    problem: str | None = None
    """Why the key file opens with nothing (damaged, malformed), if it does not."""


class KeyAdded(ResultModel):
    """A key added to one repository."""

    repository: str
    key: str


class PassphraseChange(ResultModel):
    """One repository's passphrase change: the key files of the old passphrase removed
    (usually one) and the new one's key file."""

    repository: str
    old_keys: list[str]
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
        KeyView(
            id=key["id"],
            created=str(key["created"]),
            current=key["id"] == current,
            problem=key["problem"],
        )
        for key in repo.list_keys()
    ]


def add_key(
    ctx: Context, passphrase: str, repository: str | None = None, *, kdf: KdfParams | None = None
) -> list[KeyAdded]:
    """:func:`_add_key`, audited (``key.add``, :func:`audit.run_local`: it changes who
    can restore, and runs without the catalog)."""
    return audit.run_local(
        ctx.settings,
        AuditAction.KEY_ADD,
        repository,
        lambda: _add_key(ctx, passphrase, repository, kdf=kdf),
        lambda keys: (
            ", ".join(k.repository for k in keys),
            AuditOutcome.SUCCESS,
            "; ".join(f"{k.repository}: key {k.key} added" for k in keys),
        ),
    )


def _add_key(
    ctx: Context, passphrase: str, repository: str | None = None, *, kdf: KdfParams | None = None
) -> list[KeyAdded]:
    """Add ``passphrase`` as another key that opens ``repository``, or every configured
    repository when none is named (one passphrase opens them all: a key added to the
    primary alone would not open the offsite mirror in a disaster).

    Raises WeakPassphrase for one too short for a new key, and RepositoryError when a
    repository cannot be opened or written (the keys added to the others are removed
    again); in every case nothing is left written."""
    check_new_passphrase(passphrase)
    with _opened(ctx, repository, "add a key") as targets:
        added: list[tuple[str, Repository, str]] = []
        for name, repo in targets:
            try:
                added.append((name, repo, repo.add_key(passphrase, kdf)))
            except RespaldoError as exc:
                raise _add_undone(exc, name, added) from None
        return [KeyAdded(repository=name, key=key_id) for name, _, key_id in added]


def _add_undone(
    exc: RespaldoError, failed: str, added: list[tuple[str, Repository, str]]
) -> RepositoryError:
    """The error of a ``key add`` that stopped at repository ``failed``, once the keys it
    added to the ones before are removed again: the new passphrase must not open the
    primary alone, for an operator who then configures it to find in a disaster that
    the mirror opens only with the old one, forgotten by then."""
    kept = []
    for name, repo, key_id in added:
        try:
            repo.remove_key(key_id)
        except RespaldoError:
            kept.append(name)
    if kept:
        state = (
            f"the new passphrase opens {', '.join(kept)} (its key could not be removed "
            "again) but not the others; the configured one still opens every repository"
        )
    else:
        state = "nothing was changed: the new passphrase opens no repository"
    return RepositoryError(
        f"cannot add the key to repository {failed}: {exc.message}; {state}",
        hint=f"run 'respaldo key add' again once {failed} can be written",
    )


def change_passphrase(
    ctx: Context, passphrase: str, repository: str | None = None, *, kdf: KdfParams | None = None
) -> list[PassphraseChange]:
    """:func:`_change_passphrase`, audited (``key.passwd``, as :func:`add_key`)."""
    return audit.run_local(
        ctx.settings,
        AuditAction.KEY_PASSWD,
        repository,
        lambda: _change_passphrase(ctx, passphrase, repository, kdf=kdf),
        lambda done: (
            ", ".join(c.repository for c in done),
            AuditOutcome.SUCCESS,
            "; ".join(
                f"{c.repository}: key {', '.join(c.old_keys) or 'none'} replaced by {c.new_key}"
                for c in done
            ),
        ),
    )


def _change_passphrase(
    ctx: Context, passphrase: str, repository: str | None = None, *, kdf: KdfParams | None = None
) -> list[PassphraseChange]:
    """Replace the keys that the configured passphrase opens with one for ``passphrase``,
    in ``repository`` or, when none is named, in every configured repository.

    The new key goes into every repository, and is read back and checked, before any old
    key is removed: a change killed at any point leaves every repository opening with the
    old passphrase or every repository opening with the new one (both, until the end).
    Raises WeakPassphrase (nothing written), RepositoryError when a repository cannot be
    opened (nothing written) or a step fails (the message says what is done).
    """
    check_new_passphrase(passphrase)
    current = ctx.settings.repository_passphrase()
    with _opened(ctx, repository, "change the passphrase") as targets:
        old = {name: repo.key_ids_for(current) for name, repo in targets}
        added: dict[str, str] = {}
        for name, repo in targets:
            try:
                added[name] = repo.add_key(passphrase, kdf)
                repo.check_key(added[name], passphrase)
            except RespaldoError as exc:
                raise _incomplete(exc, name, added, removed=[]) from None
        removed: list[str] = []
        for name, repo in targets:
            try:
                # A change elsewhere at the same time may have removed some already.
                present = {str(key["id"]) for key in repo.list_keys()}
                for key_id in old[name]:
                    if key_id in present:
                        repo.remove_key(key_id)
            except RespaldoError as exc:
                raise _incomplete(exc, name, added, removed) from None
            removed.append(name)
    return [
        PassphraseChange(repository=name, old_keys=old[name], new_key=added[name])
        for name, _ in targets
    ]


def _incomplete(
    exc: RespaldoError, failed: str, added: dict[str, str], removed: list[str]
) -> RepositoryError:
    """The error of a passphrase change that stopped in repository ``failed``."""
    if not removed and failed not in added:
        state = "the old passphrase still opens every repository" + (
            f"; the new one opens {', '.join(added)} too" if added else ""
        )
        hint = "run 'respaldo key passwd' again once the repository can be written"
    else:
        state = "the new passphrase opens every repository; the old one " + (
            f"no longer opens {', '.join(removed)} but still opens the others"
            if removed
            else "still opens every repository"
        )
        hint = (
            "put the new passphrase in passphrase_file (or RESPALDO_PASSPHRASE) and remove "
            "the old keys left ('respaldo key list --repository NAME', 'respaldo key remove')"
        )
    return RepositoryError(
        f"the passphrase change stopped at repository {failed}: {exc.message}; {state}",
        hint=hint,
    )


@contextmanager
def _opened(
    ctx: Context, repository: str | None, doing: str
) -> Iterator[list[tuple[str, Repository]]]:
    """Every repository a key change goes to (``repository``, or all configured ones),
    opened with the configured passphrase and without their index, before anything is
    written; closed afterwards. Raises RepositoryError naming one that does not open."""
    settings = ctx.settings
    names = (
        [settings.repository(repository).name]
        if repository is not None
        else [r.name for r in settings.repositories]
    )
    opened: list[tuple[str, Repository]] = []
    try:
        for name in names:
            try:
                opened.append((name, _open(ctx, name)))
            except RespaldoError as exc:
                if repository is not None:
                    raise
                raise RepositoryError(
                    f"cannot {doing}: repository {name} does not open: {exc.message}",
                    hint=f"nothing was changed; one passphrase opens every configured "
                    f"repository, so keys change in all of them: run it again once {name} "
                    "opens, or give --repository to change one alone (it then opens with "
                    "another passphrase than the others)",
                ) from None
        yield opened
    finally:
        for _, repo in opened:
            repo.close()


def _open(ctx: Context, name: str) -> Repository:
    settings = ctx.settings
    return Repository.open(
        open_store(settings.repository(name)),
        settings.repository_passphrase(),
        cache_dir=settings.cache_dir,
        load_index=False,
        key_cache=settings.cache_dir if settings.key_cache else None,
    )


def remove_key(ctx: Context, key_id: str, repository: str | None = None) -> None:
    """:func:`_remove_key`, audited (``key.remove``, as :func:`add_key`)."""
    name = ctx.settings.repository(repository).name
    audit.run_local(
        ctx.settings,
        AuditAction.KEY_REMOVE,
        key_id,
        lambda: _remove_key(ctx, key_id, repository),
        lambda _: (key_id, AuditOutcome.SUCCESS, f"removed from {name}"),
    )


def _remove_key(ctx: Context, key_id: str, repository: str | None = None) -> None:
    """Remove a key. Raises RepositoryError for the last one, an unknown id, and the
    only key the configured passphrase opens (this configuration, its scheduler and its
    wal-push, would open the repository no more)."""
    repo = ctx.repository(repository)
    current = repo.key_ids_for(ctx.settings.repository_passphrase())
    if current == [key_id]:
        raise RepositoryError(
            f"refusing to remove key {key_id}: it is the only one the configured passphrase "
            "opens, which then would open the repository no more",
            hint="to change the passphrase, 'respaldo key passwd'; to keep another one, "
            "configure it (passphrase_file) and remove this key then",
        )
    repo.remove_key(key_id)


class KeyImported(ResultModel):
    repository: str
    key: str
    config_missing: bool


def export_key(ctx: Context, repository: str | None = None) -> bytes:
    """The key file that the configured passphrase opens in ``repository`` (default: the
    primary), as stored: protected by the passphrase, it may be kept anywhere the
    passphrase is not, and brings the repository back with :func:`import_key` if its
    key files are lost. Mirrors wrap the same master key: any of their keys serves all."""
    with _opened(ctx, repository or ctx.settings.repository().name, "export the key") as [
        (_, repo)
    ]:
        (first, *_) = repo.key_ids_for(ctx.settings.repository_passphrase())
        return repo.storage.get(f"keys/{first}")


def import_key(ctx: Context, doc: bytes, repository: str | None = None) -> KeyImported:
    """Put an exported key file into ``repository`` (default: the primary), whose own key
    files may all be lost: only once the configured passphrase opens it and its keys open
    the repository's data. Raises RepositoryError, WrongPassphrase (nothing written)."""
    settings = ctx.settings
    repo_settings = settings.repository(repository)
    store = open_store(repo_settings)
    try:
        imported = put_key_file(store, doc, settings.repository_passphrase().get_secret_value())
    finally:
        store.close()
    return KeyImported(
        repository=repo_settings.name,
        key=imported.key_id,
        config_missing=imported.config_missing,
    )


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
        # Its lock (the exclusive one, as a collection's) by the [locks] settings.
        repo.lock_stale_after = settings.locks.stale_after_seconds
        repo.lock_wait = settings.locks.wait_seconds
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
