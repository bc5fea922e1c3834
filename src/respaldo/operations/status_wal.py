"""Is the WAL a server says it archived in the primary repository?

``pg_stat_archiver`` counts what ``archive_command`` said it archived. A command that
"succeeds" without storing anything (``true``, the usual quick fix for a full
``pg_wal``, or a copy to some other place) keeps those statistics green while no WAL
reaches the repository: recovery past the newest physical backup is gone, and nothing
else notices. respaldo's own pusher tells the server "archived" only once the file is
in the repository (``--async`` too), so the server's last archived segment must be there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from respaldo.config import Settings
from respaldo.errors import ObjectNotFound, RespaldoError
from respaldo.operations.wal import open_wal_repository
from respaldo.repository.wal import read_cluster, wal_object

_SEGMENT = re.compile(r"[0-9A-F]{24}")


def stored_in_repository(settings: Settings, last_archived: Mapping[str, str]) -> dict[str, bool]:
    """For each database -> the last segment its server archived: whether the primary
    repository holds it (one ``stat`` each). Left out (unknown): a file that is not a
    segment (a history or backup file), a database whose cluster the repository does
    not record, and everything when the repository cannot be read (the backups' own
    items say so)."""
    wanted = {db: name for db, name in last_archived.items() if _SEGMENT.fullmatch(name)}
    if not wanted:
        return {}
    try:
        repo = open_wal_repository(settings)
    except RespaldoError:
        return {}
    found: dict[str, bool] = {}
    try:
        for database, name in wanted.items():
            try:
                record = read_cluster(repo, database)
                if record is None:
                    continue
                repo.storage.stat(wal_object(record.system_identifier, name[:8], name))
            except ObjectNotFound:
                found[database] = False
            except (RespaldoError, ValueError):
                continue
            else:
                found[database] = True
    finally:
        repo.close()
    return found
