"""Rebuilding the catalog from a repository's manifests (the repository is the truth)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from respaldo.catalog import BackupRecords, ManifestValues
from respaldo.domain import BackupKind, BackupStatus
from respaldo.errors import BackupNotFound, IntegrityError, ObjectNotFound, RespaldoError
from respaldo.operations.context import Context
from respaldo.operations.lost_packs import mirrors_of
from respaldo.operations.recorded import backup_source
from respaldo.operations.repair import damage_problem, lost_packs_problem, quarantined_problem
from respaldo.operations.repositories import open_store
from respaldo.repository import Manifest, Repository
from respaldo.repository.manifest import MANIFEST_PREFIX, manifest_name
from respaldo.repository.packs import PACK_PREFIX, pack_id_from_name, pack_name
from respaldo.repository.reader import read_list
from respaldo.repository.repair import lost_chunks_of


@dataclass
class RebuildResult:
    created: int = 0
    updated: int = 0
    damaged: list[str] = field(default_factory=list)
    lost_data: list[str] = field(default_factory=list)
    """Backups that 'respaldo repair' found to have lost chunks, marked again."""
    missing_data: list[str] = field(default_factory=list)
    """Backups whose manifest references chunks the repository does not hold (a pack
    missing or cut short, a chunk in no index), nor any mirror: marked damaged."""


def manifest_values(
    manifest: Manifest, repository: str, location: str, size_compressed: int | None = None
) -> ManifestValues:
    """What a manifest tells the catalog about its backup."""
    meta = manifest.meta
    checksum = manifest.streams[0].sha256 if manifest.streams else None
    return ManifestValues(
        id=manifest.backup_id,
        backup_type=BackupKind(manifest.kind),
        repository=repository,
        manifest=f"manifests/{manifest.backup_id}",
        started_at=manifest.started_at,
        completed_at=manifest.completed_at,
        database_name=manifest.source,
        size_bytes=manifest.size,
        size_compressed=size_compressed,
        checksum=checksum,
        database_version=meta.get("server_version"),
        schema_version=meta.get("schema_version"),
        tool_version=manifest.tool_version,
        parent_id=meta.get("incremental_of"),
        # Which server and database: status tells a backup read elsewhere from the one
        # before it (a new server after a disaster, another machine's dsn) only with it.
        source=backup_source(meta),
        retention_days=meta.get("retention_days"),
        # Snapshot backups are pinned in their manifest. A rebuild never unpins, and re-pins
        # one a user unpinned: keeping too much is the failure that loses nothing.
        pinned=True if meta.get("pinned") else None,
        storage_path=location,
    )


def rebuild_catalog(ctx: Context, repository: str | None = None) -> RebuildResult:
    """Insert or update a catalog record for every manifest in the repository.

    Idempotent. Damaged manifests are reported (by backup id) and skipped, and so are
    the backups a prune deletes meanwhile (no record of them is made). A backup that
    ``respaldo repair`` recorded as having lost chunks (still without a good copy) is
    marked damaged again, as repair marked it. The repository becomes the one the
    catalog knows by its name (a repository that replaces a lost one is refused until
    then: :func:`~respaldo.operations.repositories.check_identity`), once it has opened:
    a rebuild that fails there (a wrong passphrase, another repository's config at a
    mistyped URL) leaves the catalog's record as it was.
    """
    repo_settings = ctx.settings.repository(repository)
    repo = ctx.repository(repository, adopt=True)
    result = RebuildResult()
    # The manifests first, then the packs: every manifest listed was written after its
    # packs (pack_check), so a pack it uses that the listing lacks is gone, not late.
    backup_ids = list(repo.backup_ids())
    held = _Held(ctx, repo, repo_settings.name)
    now = datetime.now(UTC)
    for backup_id in backup_ids:
        try:
            manifest = repo.load_manifest(backup_id)
        except IntegrityError:
            result.damaged.append(backup_id)
            continue
        except BackupNotFound:
            continue  # listed a moment ago: a prune deleted it meanwhile
        size, missing = _survey(repo, manifest, held)
        if missing and held.reload_once():
            size, missing = _survey(repo, manifest, held)
        values = manifest_values(manifest, repo_settings.name, repo.storage.location, size)
        lost = lost_chunks_of(repo, backup_id)
        missing = held.nowhere(missing)
        with ctx.catalog.begin() as session:
            records = BackupRecords(session)
            record, created = records.upsert_from_manifest(values)
            if lost and record.status is BackupStatus.COMPLETED and record.verified_at is None:
                # What repair recorded in the repository outlives the catalog.
                when = min(chunk.recorded for chunk in lost)
                records.set_verified(
                    backup_id, when, verified=False, problem=damage_problem(len(lost), when)
                )
                result.lost_data.append(backup_id)
            elif missing and (record.verified_at is None or record.is_verified):
                # A manifest proves its backup was written whole, not that its data is
                # still there: recorded completed and unverified, retention counted it as
                # a good backup (and expired older ones that restore) until a verify.
                when, problem = _missing_problem(repo, missing, held, now)
                records.set_verified(backup_id, when, verified=False, problem=problem)
                result.missing_data.append(backup_id)
        if created and not _still_there(repo, backup_id):
            # A prune deleted the manifest, then its record, while we read it: the record
            # just made would show a completed backup that no longer exists.
            with ctx.catalog.begin() as session:
                BackupRecords(session).delete(backup_id)
            for named in (result.lost_data, result.missing_data):  # nor one that lost data
                if backup_id in named:
                    named.remove(backup_id)
            continue
        if created:
            result.created += 1
        else:
            result.updated += 1
    return result


def _missing_problem(
    repo: Repository, missing: set[bytes], held: _Held, now: datetime
) -> tuple[datetime, str]:
    """When and what a backup whose chunks ``missing`` no repository holds lost: the
    chunks ``verify`` quarantined as corrupt in packs still there, when it did (the
    earliest), if all are; else those lost with their packs (missing or cut short), now.
    A copy quarantined because its pack was missing was lost with it."""
    found = []
    for chunk_id in missing:
        corrupt = [
            copy.found
            for copy in repo.quarantine.copies_of(chunk_id)
            if held.pack_size(copy.pack_id) >= 0 and not _pack_gone(copy.problem)
        ]
        if not corrupt:
            return now, lost_packs_problem(len(missing), now)
        found.append(min(corrupt))
    when = min(found)
    return when, quarantined_problem(len(missing), when)


def _pack_gone(problem: str) -> bool:
    """Whether a quarantined copy's ``problem`` is its pack's absence or truncation (as
    :mod:`respaldo.repository.verify`, :mod:`~respaldo.repository.pack_check` and
    :mod:`~respaldo.repository.damage` say it)."""
    return problem == "pack is missing" or "truncated" in problem


def _still_there(repo: Repository, backup_id: str) -> bool:
    try:
        repo.storage.stat(manifest_name(backup_id))
    except ObjectNotFound:
        return False
    return True


def backups_the_catalog_misses(ctx: Context) -> str | None:
    """If the catalog holds no record at all but the primary repository holds backups,
    that repository's name; else None.

    A catalog that is empty next to a repository with manifests is new, or not the one
    the backups were recorded in (a wrong URL): ``list`` says so instead of showing
    nothing. Costs one count, and one listing of ``manifests/`` only when the catalog is
    empty; a repository that cannot be listed is not reported (this is a hint, not a
    check).
    """
    with ctx.catalog.read() as session:
        if BackupRecords(session).list(limit=1):
            return None
    if not ctx.settings.repositories:
        return None
    repo_settings = ctx.settings.repository()
    try:
        store = open_store(repo_settings)
        try:
            found = next(iter(store.list(MANIFEST_PREFIX)), None)
        finally:
            store.close()
    except RespaldoError:
        return None
    return repo_settings.name if found is not None else None


class _Held:
    """What a rebuild checks a manifest's chunks against: the repository's packs as one
    listing shows them (their sizes), its index (loaded again once, at the first chunk it
    lacks: a backup that ended after it was loaded) and, only once a chunk is found
    missing, the mirrors restore would read it from (those of the same repository id,
    :func:`respaldo.operations.lost_packs.mirrors_of`)."""

    def __init__(self, ctx: Context, repo: Repository, name: str) -> None:
        self._ctx, self._repo, self._name = ctx, repo, name
        self._packs = {pack_id_from_name(i.name): i.size for i in repo.storage.list(PACK_PREFIX)}
        self._asked: set[str] = set()
        self._reloaded = False
        self._mirrors: list[Repository] | None = None

    def pack_size(self, pack_id: str) -> int:
        """The size of pack ``pack_id`` (-1: there is none). One the listing lacks is
        asked once more by stat: some stores' listings lag their puts (as pack_check)."""
        if pack_id not in self._packs and pack_id not in self._asked:
            self._asked.add(pack_id)
            with contextlib.suppress(ObjectNotFound):
                self._packs[pack_id] = self._repo.storage.stat(pack_name(pack_id)).size
        return self._packs.get(pack_id, -1)

    def reload_once(self) -> bool:
        """Reload the index if not done yet; whether it was."""
        if self._reloaded:
            return False
        self._reloaded = True
        self._repo.load_index()
        return True

    def nowhere(self, chunks: set[bytes]) -> set[bytes]:
        """Those of ``chunks`` that no mirror's index holds either."""
        if not chunks:
            return chunks
        if self._mirrors is None:
            self._mirrors = mirrors_of(self._ctx, self._repo, self._name)
        return {c for c in chunks if not any(c in m.index for m in self._mirrors)}


def _survey(repo: Repository, manifest: Manifest, held: _Held) -> tuple[int | None, set[bytes]]:
    """(:func:`sealed_size`, the chunks of ``manifest`` that ``repo`` does not hold: in no
    index, beyond the end of their pack (:meth:`_Held.pack_size`), or a list chunk that
    does not read), reading each list chunk once."""
    total: int | None = 0
    missing: set[bytes] = set()

    def gone(chunk_id: bytes) -> bool:
        location = repo.index.get(chunk_id)
        return location is None or (
            held.pack_size(location.pack_id) < location.offset + location.length
        )

    for stream in manifest.streams:
        for list_id in stream.lists:
            try:
                entries = read_list(repo, list_id)
            except Exception:  # the repository layer keeps its failure type private
                total = None
                # Where it is stored, not what reading it met: a read that failed on the
                # way (a network error) damages nothing; 'respaldo verify' tells more.
                if gone(bytes.fromhex(list_id)):
                    missing.add(bytes.fromhex(list_id))
                continue
            for chunk_id in [bytes.fromhex(list_id), *(cid for cid, _ in entries)]:
                location = repo.index.get(chunk_id)
                if location is None:
                    total = None
                elif total is not None:
                    total += location.length
                if gone(chunk_id):
                    missing.add(chunk_id)
    return total, missing


def sealed_size(repo: Repository, manifest: Manifest) -> int | None:
    """The backup's ``size_compressed`` as its writer counted it: the sealed length of every
    chunk it references (list chunks included, repeats counted again).

    The manifest does not hold it, and a rebuilt record must not lose it. Reads each
    stream's list chunks (one per ~256 MiB of stream). None if a chunk is missing from
    the index or a list chunk does not read: 'respaldo verify' tells what is wrong.
    """
    total = 0
    for stream in manifest.streams:
        for list_id in stream.lists:
            try:
                entries = read_list(repo, list_id)
            except Exception:  # the repository layer keeps its failure type private
                return None
            for chunk_id in [bytes.fromhex(list_id), *(cid for cid, _ in entries)]:
                location = repo.index.get(chunk_id)
                if location is None:
                    return None
                total += location.length
    return total
