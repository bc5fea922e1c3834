"""Archived WAL and the record of which cluster each configured database is.

``wal/<system id>/<timeline>/<file>`` holds one WAL file (a segment, a partial segment, a
history or backup history file) as one sealed blob, not chunked: a segment is written
once and read whole, and 16 MiB in one object is what object stores like. The associated
data is ``respaldo/wal/<system id>/<timeline>/<file>``, so a blob copied or renamed to
another cluster, timeline or segment fails authentication instead of being replayed.

``clusters/<database>`` is a sealed JSON record (associated data
``respaldo/cluster/<database>``) of the system identifier of the cluster the configured
database lives in: WAL that another cluster pushes under that database's name is
refused. It is written the first time WAL or a physical backup of the database arrives,
and replaced only on request (a deliberately re-created server).

WAL objects are never replaced: putting a file that exists is accepted if its content is
the same (PostgreSQL retries an archive_command whose success it did not see) and
reported as a conflict otherwise; only a copy that is damaged (it fails authentication
twice) is replaced by the file offered again, the one good copy there is. This layer
does not interpret WAL; names and system identifiers come checked from the caller.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from respaldo.errors import IntegrityError, ObjectNotFound, RepositoryError
from respaldo.repository.authentic import read_opened
from respaldo.repository.crypto import Sealer, SealError
from respaldo.repository.repo import Repository, require_mirror
from respaldo.storage.base import validate_name

log = logging.getLogger(__name__)

WAL_PREFIX = "wal/"
CLUSTER_PREFIX = "clusters/"
AAD_WAL = b"respaldo/wal/"
AAD_CLUSTER = b"respaldo/cluster/"

_SYSTEM_ID = re.compile(r"[0-9]{1,20}")
_TIMELINE = re.compile(r"[0-9A-F]{8}")
_FILE = re.compile(r"[0-9A-F]{8}(?:[0-9A-F]{16}(?:\.partial|\.[0-9A-F]{8}\.backup)?|\.history)")


class PutOutcome(StrEnum):
    STORED = "stored"
    """The file was not in the archive and now is."""
    SAME = "same"
    """The archive held it already, with the same content: nothing written, the object
    made durable (``Storage.sync``)."""
    DIFFERENT = "different"
    """The archive holds other content under this name: nothing written."""


def wal_object(system_id: str, timeline: str, file: str) -> str:
    """``wal/<system id>/<timeline>/<file>``. Raises ValueError for malformed parts."""
    if not _SYSTEM_ID.fullmatch(system_id):
        raise ValueError(f"invalid system identifier {system_id!r}")
    if not _TIMELINE.fullmatch(timeline):
        raise ValueError(f"invalid timeline {timeline!r}")
    if not _FILE.fullmatch(file) or not file.startswith(timeline):
        raise ValueError(f"invalid WAL file name {file!r} for timeline {timeline}")
    return validate_name(f"{WAL_PREFIX}{system_id}/{timeline}/{file}")


def _wal_aad(name: str) -> bytes:
    return AAD_WAL + name[len(WAL_PREFIX) :].encode()


def put_wal(repo: Repository, system_id: str, timeline: str, file: str, data: bytes) -> PutOutcome:
    """Archive one WAL file unless it is there already; see :class:`PutOutcome`.

    Idempotent for equal content. Two processes putting the same new name at the same
    moment both store it (the last rename wins); PostgreSQL never archives one file twice
    at once. An existing object that is damaged (fails authentication twice) is replaced
    by ``data`` (STORED, with a warning in the log). Raises storage errors.
    """
    name = wal_object(system_id, timeline, file)
    try:
        existing = read_wal_object(repo, name)
    except ObjectNotFound:
        repo.storage.put(name, repo.sealer.seal(data, _wal_aad(name)))
        return PutOutcome.STORED
    except IntegrityError as exc:
        # The archived copy is damaged (it failed twice): the file offered now is the one
        # good copy there is. Refused, the server would retry this file for ever and
        # archive nothing after it while pg_wal grows.
        log.warning("%s; storing the copy the server archives again over it", exc)
        repo.storage.put(name, repo.sealer.seal(data, _wal_aad(name)))
        return PutOutcome.STORED
    if existing != data:
        return PutOutcome.DIFFERENT
    # Found, not written: an earlier push killed after naming it and before its last
    # fsync left it readable but not safe from a power cut, and the server removes its own
    # copy once told it is archived.
    repo.storage.sync(name)
    return PutOutcome.SAME


def get_wal(repo: Repository, system_id: str, timeline: str, file: str) -> bytes:
    """The content of an archived WAL file. Raises ObjectNotFound, IntegrityError."""
    return read_wal_object(repo, wal_object(system_id, timeline, file))


_DAMAGED_WAL_HINT = (
    "'respaldo repair --wal' replaces it with a mirror's good copy; without one, recovery "
    "cannot replay past this file: recover to a point before it (--target-time, "
    "--target-lsn), and take a new physical backup so that later recoveries do not need it"
)


def read_wal_object(repo: Repository, name: str) -> bytes:
    """The content of the archived WAL object ``name`` (as :func:`list_wal` names it).
    Raises ObjectNotFound, IntegrityError. A file that fails authentication is read a
    second time before it counts as damaged (:mod:`.authentic`)."""
    try:
        return read_opened(repo.storage, name, lambda blob: repo.sealer.open(blob, _wal_aad(name)))
    except SealError as exc:
        raise IntegrityError(
            f"archived WAL file is damaged: {exc}", obj=name, hint=_DAMAGED_WAL_HINT
        ) from None


def list_wal(repo: Repository, system_id: str | None = None) -> list[str]:
    """Object names of archived WAL files, of one cluster or of all, in name order."""
    prefix = WAL_PREFIX if system_id is None else f"{WAL_PREFIX}{system_id}/"
    return [info.name for info in repo.storage.list(prefix)]


# --- which cluster a database is -------------------------------------------------------------


@dataclass(frozen=True)
class ClusterRecord:
    database: str
    system_identifier: str
    recorded_at: datetime
    recorded_by: str
    """What wrote it: ``wal-push``, ``backup`` or ``check --adopt``."""
    minimal_wal: str | None = None
    """The LSN of the last record archived that switched the server to ``wal_level =
    minimal`` (written by ``wal-push``): recovery cannot replay past it, so no base
    backup started before it recovers any further. None: none seen (or archived by a
    respaldo that did not look)."""
    minimal_timeline: int | None = None
    """The timeline of the segment that held it: a timeline that branched off before it
    (a point-in-time restore to before the switch, promoted) never replays it, and
    neither do backups of that timeline. None: not recorded (taken as on every path)."""

    def to_bytes(self) -> bytes:
        doc = {
            "version": 1,
            "database": self.database,
            "system_identifier": self.system_identifier,
            "recorded_at": self.recorded_at.isoformat(),
            "recorded_by": self.recorded_by,
        }
        if self.minimal_wal is not None:
            # Only when there is one: a record without it is byte for byte what older
            # respaldo wrote (and they read this one, ignoring the key).
            doc["minimal_wal"] = self.minimal_wal
            if self.minimal_timeline is not None:
                doc["minimal_timeline"] = self.minimal_timeline
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ClusterRecord:
        doc = json.loads(data)
        minimal = doc.get("minimal_wal")
        minimal_timeline = doc.get("minimal_timeline")
        return cls(
            database=str(doc["database"]),
            system_identifier=str(doc["system_identifier"]),
            recorded_at=datetime.fromisoformat(doc["recorded_at"]),
            recorded_by=str(doc.get("recorded_by", "")),
            minimal_wal=None if minimal is None else str(minimal),
            minimal_timeline=None if minimal_timeline is None else int(minimal_timeline),
        )


def cluster_object(database: str) -> str:
    return validate_name(f"{CLUSTER_PREFIX}{database}")


def read_cluster(repo: Repository, database: str) -> ClusterRecord | None:
    """The recorded cluster of ``database``, or None. Raises IntegrityError if damaged."""
    name = cluster_object(database)
    try:
        blob = repo.storage.get(name)
    except ObjectNotFound:
        return None
    try:
        record = ClusterRecord.from_bytes(repo.sealer.open(blob, AAD_CLUSTER + database.encode()))
    except (SealError, ValueError, KeyError) as exc:
        raise IntegrityError(f"cluster record is damaged: {exc}", obj=name) from None
    return record


def write_cluster(repo: Repository, record: ClusterRecord) -> None:
    """Record (or, deliberately, replace) which cluster ``record.database`` is."""
    name = cluster_object(record.database)
    aad = AAD_CLUSTER + record.database.encode()
    repo.storage.put(name, repo.sealer.seal(record.to_bytes(), aad))


def later_segment(repo: Repository, system_id: str, timeline: str, segment: str) -> str | None:
    """The first archived segment of ``timeline`` after ``segment`` (24 hex digits), or
    None. Asked once a recovery finds no segment, which is at every recovery's end. A
    hole a prune leaves spans the WAL between two backups, which can be many log files
    (a day at archive_timeout = 60 is over 1,400 segments): looking only in the next log
    file took such a hole for the end of the WAL. So after the segment's own log file,
    each later group of log files is listed by the prefix that names it (a log number's
    hex digit above the segment's, from the last digit to the first): names after the
    segment only, never the timeline's earlier WAL, and nearly every listing empty (at
    most 8 x 15 of them)."""
    base = f"{WAL_PREFIX}{system_id}/{timeline}/"

    def first_after(prefix: str) -> str | None:
        for info in repo.storage.list(base + prefix):
            name = info.name[len(base) :]
            if len(name) == 24 and name > segment:  # a whole segment, not .partial/.backup
                return name
        return None

    found = first_after(segment[:16])
    for position in range(15, 7, -1):  # the log number's hex digits, last first
        for digit in "0123456789ABCDEF":
            if found is not None:
                return found
            if digit > segment[position]:
                found = first_after(segment[:position] + digit)
    return found


def wal_objects(repo: Repository) -> list[tuple[str, str, str, int]]:
    """Every archived WAL object as (system id, timeline, file name, size), in name order."""
    found = []
    for info in repo.storage.list(WAL_PREFIX):
        parts = info.name[len(WAL_PREFIX) :].split("/")
        if len(parts) == 3:
            found.append((parts[0], parts[1], parts[2], info.size))
    return found


def delete_wal(repo: Repository, system_id: str, timeline: str, file: str) -> None:
    """Delete one archived WAL file; one that is already gone is not an error."""
    with contextlib.suppress(ObjectNotFound):
        repo.storage.delete(wal_object(system_id, timeline, file))


# --- copies in mirror repositories -----------------------------------------------------------


@dataclass
class WalCopyStats:
    """What :func:`copy_wal` did in one mirror."""

    files: int = 0
    """WAL objects in the source."""
    copied: int = 0
    """Of them, copied now (the mirror lacked them)."""
    bytes_copied: int = 0
    clusters_copied: int = 0
    """Cluster records copied now."""
    damaged: list[str] = field(default_factory=list)
    """Source objects that failed authentication: not copied (see :func:`copy_wal`)."""


def copy_wal(source: Repository, destination: Repository) -> WalCopyStats:
    """Copy every archived WAL object (segments, partial segments, backup history and
    timeline history files, of every cluster) that the mirror ``destination`` lacks,
    sealed bytes as they are, and the cluster records (``clusters/``) it lacks or holds
    other content under (one replaced by ``check --adopt``).

    Incremental: both sides are listed and only names missing in the destination move; a
    WAL object present there is never replaced (WAL objects never are). Each blob is
    authenticated before it is written, so a damaged one is never propagated: it is
    skipped and named in ``damaged``, and the others are still copied (one bad segment must
    not keep the mirror behind on everything after it). An object deleted from the source
    meanwhile (WAL retention) is skipped. Raises RepositoryError if the two are not
    mirrors, and the storage errors of either side.
    """
    require_mirror(source, destination)
    stats = WalCopyStats()
    for prefix, aad in ((CLUSTER_PREFIX, _cluster_aad), (WAL_PREFIX, _wal_aad)):
        present = {info.name for info in destination.storage.list(prefix)}
        for info in source.storage.list(prefix):
            if prefix == WAL_PREFIX:
                stats.files += 1
            if info.name in present and prefix == WAL_PREFIX:
                continue
            try:
                opened = functools.partial(_with_plaintext, source.sealer, aad(info.name))
                blob, plain = read_opened(source.storage, info.name, opened)
            except ObjectNotFound:
                continue  # removed by WAL retention since the listing
            except SealError:
                stats.damaged.append(info.name)
                continue
            if info.name in present and _same(destination, info.name, plain, aad):
                continue
            destination.storage.put(info.name, blob)
            if prefix == WAL_PREFIX:
                stats.copied += 1
                stats.bytes_copied += len(blob)
            else:
                stats.clusters_copied += 1
    return stats


@dataclass
class WalRepair:
    """What :func:`repair_wal` found and did (with ``dry_run``: would do)."""

    damaged: list[str] = field(default_factory=list)
    """Archived WAL objects that failed authentication, read twice."""
    repaired: dict[str, int] = field(default_factory=dict)
    """Per mirror (its storage location): damaged objects replaced by its copy."""
    lost: list[str] = field(default_factory=list)
    """Damaged objects that no mirror holds a good copy of."""


def repair_wal(
    repo: Repository, mirrors: Sequence[Repository], *, dry_run: bool = False
) -> WalRepair:
    """Replace every archived WAL object of ``repo`` that is damaged (fails
    authentication twice) by a good copy from the first of ``mirrors`` that holds one,
    its sealed bytes as they are.

    Reads all of ``repo``'s archived WAL. :func:`copy_wal` never replaces an object the
    destination holds (it lists names, it does not read them), and the server archives a
    file once: without this a damaged copy stayed damaged for ever, and a recovery from
    that repository stopped at it. ``mirrors`` that are not mirrors of ``repo`` (another
    repository id) are passed over. Raises storage errors.
    """
    report = WalRepair()
    sources = []
    for mirror in mirrors:
        try:
            require_mirror(repo, mirror)
        except RepositoryError:
            continue
        sources.append(mirror)
    for name in list_wal(repo):
        try:
            read_wal_object(repo, name)
            continue
        except ObjectNotFound:
            continue  # expired by a concurrent prune
        except IntegrityError:
            report.damaged.append(name)
        for mirror in sources:
            try:
                opened = functools.partial(_with_plaintext, mirror.sealer, _wal_aad(name))
                blob, _plain = read_opened(mirror.storage, name, opened)
            except (ObjectNotFound, SealError):
                continue
            if not dry_run:
                repo.storage.put(name, blob)
            where = mirror.storage.location
            report.repaired[where] = report.repaired.get(where, 0) + 1
            break
        else:
            report.lost.append(name)
    return report


def _with_plaintext(sealer: Sealer, aad: bytes, blob: bytes) -> tuple[bytes, bytes]:
    return blob, sealer.open(blob, aad)


def _same(repo: Repository, name: str, plain: bytes, aad: Callable[[str], bytes]) -> bool:
    """Whether ``repo`` holds ``plain`` under ``name`` (a damaged copy does not)."""
    try:
        return repo.sealer.open(repo.storage.get(name), aad(name)) == plain
    except (SealError, ObjectNotFound):
        return False


def _cluster_aad(name: str) -> bytes:
    return AAD_CLUSTER + name[len(CLUSTER_PREFIX) :].encode()
