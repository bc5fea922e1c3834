"""Is the WAL a server says it archived in the primary repository?

``pg_stat_archiver`` counts what ``archive_command`` said it archived. A command that
"succeeds" without storing anything (``true``, the usual quick fix for a full
``pg_wal``, or a copy to some other place) keeps those statistics green while no WAL
reaches the repository: recovery past the newest physical backup is gone, and nothing
else notices. respaldo's own pusher tells the server "archived" only once the file is
in the repository (``--async`` too), so the server's last archived file must be there.

That file is a segment most of the time, but after each physical backup it is the
backup history file (``<segment>.<offset>.backup``) until the next segment fills, hours
on a quiet database; a promotion archives a ``.partial`` segment and a ``.history``
file. All of them are archived objects like a segment (:func:`archived_object`), here
and in the mirrors' check (:mod:`respaldo.operations.status_mirror`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from respaldo.config import Settings
from respaldo.errors import InvalidWalFile, ObjectNotFound, RespaldoError
from respaldo.operations.wal import open_wal_repository
from respaldo.postgres.wal import parse_wal_name
from respaldo.repository.wal import read_cluster, wal_object


def archived_object(system_id: str, file: str) -> str | None:
    """The repository object of WAL file ``file`` of cluster ``system_id`` (any name the
    server archives: a segment, a partial segment, a history or backup history file);
    None for a name that is none of these."""
    try:
        return wal_object(system_id, parse_wal_name(file).timeline, file)
    except (InvalidWalFile, ValueError):
        return None


@dataclass(frozen=True)
class PrimaryWal:
    """What the primary repository says of the databases' last archived WAL files."""

    systems: dict[str, str] = field(default_factory=dict)
    """Database -> the system identifier of its cluster, as the primary records it."""
    stored: dict[str, bool] = field(default_factory=dict)
    """Database -> whether the primary holds the last file its server archived."""


def read_primary_wal(settings: Settings, last_archived: Mapping[str, str]) -> PrimaryWal:
    """For each database -> the last WAL file its server archived: its cluster and
    whether the primary repository holds that file (one ``stat`` each), in one opening
    of the primary. Left out (unknown): a name that is no WAL file, a database whose
    cluster the repository does not record or cannot be read, and everything when the
    repository cannot be opened (the backups' own items say so). Never raises."""
    if not any(_is_wal_name(name) for name in last_archived.values()):
        return PrimaryWal()
    try:
        repo = open_wal_repository(settings)
    except RespaldoError:
        return PrimaryWal()
    found = PrimaryWal()
    try:
        for database, file in last_archived.items():
            try:
                record = read_cluster(repo, database)
                if record is None:
                    continue
                name = archived_object(record.system_identifier, file)
                if name is None:
                    continue
                found.systems[database] = record.system_identifier
                repo.storage.stat(name)
            except ObjectNotFound:
                found.stored[database] = False
            except RespaldoError:
                continue
            else:
                found.stored[database] = True
    finally:
        repo.close()
    return found


def _is_wal_name(file: str) -> bool:
    """Whether ``file`` is a name the server archives (see :func:`archived_object`)."""
    try:
        parse_wal_name(file)
    except InvalidWalFile:
        return False
    return True
