"""Since when each secondary repository has lacked archived WAL that the primary holds.

A mirror's point-in-time recovery (the primary repository lost) reaches only as far as
the WAL copied to it (``[schedules] wal_copy``, the copy after each backup, ``respaldo
copy``). The status looks at the last segment each server archived (its
``pg_stat_archiver``: respaldo's ``wal-push`` says "archived" only once the file is in
the primary) and asks each mirror for that one name (a ``stat``, nothing listed).

On a busy server the newest segment is always a fresh one that no copy has reached yet,
so "the newest is missing" alone says nothing about how far behind a mirror is. The
first segment seen missing is noted, with when it was archived, and the mirror is
behind since then for as long as it still lacks that segment; once it holds it, the
next missing one is noted afresh. Kept in the catalog (``alert_states``, key
``walcopy-behind:<database>:<repository>``, not firing: the object name in
``message``, its archive time in ``fired_at``), so the watchdog after a restart,
``respaldo status`` and ``/metrics`` share it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from respaldo.catalog import AlertStates
from respaldo.errors import ObjectNotFound, RespaldoError
from respaldo.operations import stall
from respaldo.operations.context import Context
from respaldo.operations.status_wal import archived_object
from respaldo.operations.wal import open_wal_repository
from respaldo.repository import Repository

log = logging.getLogger(__name__)

PREFIX = "walcopy-behind:"


@dataclass(frozen=True)
class MirrorLag:
    """One database's archived WAL in one secondary repository."""

    segment: str
    """The last WAL file the server archived (a segment, or a backup history file...)."""
    held: bool | None
    """Whether the mirror holds it; None when the mirror could not be read."""
    behind_since: datetime | None = None
    """When the oldest segment it is known to lack was archived (None: not behind)."""
    lacking: str | None = None
    """That segment's file name."""
    error: str | None = None
    """Why the mirror could not be read."""


@dataclass(frozen=True)
class _Note:
    name: str
    since: datetime


def mirror_lags(
    ctx: Context,
    newest: Mapping[str, tuple[str, datetime | None]],
    now: datetime,
    systems: Mapping[str, str],
) -> dict[tuple[str, str], MirrorLag]:
    """For each database -> (the last WAL file its server archived, when): per secondary
    repository, how far behind the mirror is, keyed (database, repository). ``systems``:
    database -> its cluster's system identifier as the primary records it
    (:func:`~respaldo.operations.status_wal.read_primary_wal`). Left out: a name that is
    no WAL file, a database not in ``systems`` (the primary does not record it or cannot
    be read: the backups' items say so). Notes and forgets what it saw in the catalog;
    never raises."""
    settings = ctx.settings
    mirrors = [repo.name for repo in settings.repositories[1:]]
    wanted: dict[str, tuple[str, str, datetime | None]] = {}
    for db, (file, archived_at) in newest.items():
        name = archived_object(systems[db], file) if db in systems else None
        if name is not None:
            wanted[db] = (name, file, archived_at)
    if not mirrors or not wanted:
        return {}
    notes = _read_notes(ctx, [(db, repo) for db in wanted for repo in mirrors])
    found: dict[tuple[str, str], MirrorLag] = {}
    changes: dict[tuple[str, str], _Note | None] = {}
    for repo_name in mirrors:
        stall.at(stall.REPOSITORY, repository=repo_name)
        try:
            mirror = open_wal_repository(settings, repo_name)
        except RespaldoError as exc:
            for db, (name, file, _) in wanted.items():
                key = (db, repo_name)
                found[key] = _unreadable(key, name, file, notes, changes, now, _line(exc))
            continue
        try:
            for db, (name, file, archived_at) in wanted.items():
                key = (db, repo_name)
                lag, changed, note = _judge(mirror, name, file, archived_at, notes.get(key), now)
                found[key] = lag
                if changed:
                    changes[key] = note
        except RespaldoError as exc:
            for db, (name, file, _) in wanted.items():
                key = (db, repo_name)
                if key not in found:
                    found[key] = _unreadable(key, name, file, notes, changes, now, _line(exc))
        finally:
            mirror.close()
    _write_notes(ctx, changes, now)
    return found


def _judge(
    mirror: Repository,
    name: str,
    segment: str,
    archived_at: datetime | None,
    note: _Note | None,
    now: datetime,
) -> tuple[MirrorLag, bool, _Note | None]:
    """The lag of one mirror for one database, whether its note changes, and the note
    to keep (None: forget it). Raises the mirror's storage errors."""
    if _holds(mirror, name):
        return MirrorLag(segment, True), note is not None, None
    # The noted segment still missing (or the same one): behind since it was archived. A
    # note dated in the future (the clock was set back) is noted afresh.
    if (
        note is not None
        and note.since <= now
        and (note.name == name or not _holds(mirror, note.name))
    ):
        lacking = note.name.rsplit("/", 1)[-1]
        return MirrorLag(segment, False, note.since, lacking), False, note
    since = min(archived_at or now, now)
    return MirrorLag(segment, False, since, segment), True, _Note(name, since)


def _unreadable(
    key: tuple[str, str],
    name: str,
    file: str,
    notes: Mapping[tuple[str, str], _Note],
    changes: dict[tuple[str, str], _Note | None],
    now: datetime,
    error: str,
) -> MirrorLag:
    """The lag of a mirror that cannot be read: behind since its note, else noted now as
    not known to hold the newest file (in ``changes``), so that a mirror that stays
    unreadable turns red after ``wal_copy_minutes`` instead of amber for ever.

    Now, not that file's archive time: a quiet server's newest file may be hours old and
    held by the mirror at the last look (there was no note), and one failed look would
    then be red at once. A later look that finds the file held forgets the note."""
    note = notes.get(key)
    if note is not None and note.since <= now:
        return MirrorLag(file, None, note.since, note.name.rsplit("/", 1)[-1], error)
    changes[key] = _Note(name, now)
    return MirrorLag(file, None, now, file, error)


def _holds(mirror: Repository, name: str) -> bool:
    try:
        mirror.storage.stat(name)
    except ObjectNotFound:
        return False
    return True


def _key(db: str, repo: str) -> str:
    return f"{PREFIX}{db}:{repo}"


def _read_notes(ctx: Context, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], _Note]:
    try:
        with ctx.catalog.read() as session:
            states = AlertStates(session)
            return {
                pair: _Note(row.message, row.fired_at)
                for pair in pairs
                if (row := states.get(_key(*pair))) is not None
                and row.message
                and row.fired_at is not None
            }
    except Exception as exc:
        # Each missing segment is then behind since it was archived (less, not more).
        log.warning("cannot read since when the mirrors lack archived WAL: %s", _line(exc))
        return {}


def _write_notes(ctx: Context, changes: dict[tuple[str, str], _Note | None], now: datetime) -> None:
    if not changes:
        return
    try:
        with ctx.catalog.begin() as session:
            states = AlertStates(session)
            for pair, note in changes.items():
                if note is None:
                    states.delete(_key(*pair))
                    continue
                row = states.get_or_new(_key(*pair), level="warning", now=now)
                row.message, row.fired_at, row.updated_at = note.name, note.since, now
    except Exception as exc:
        # Another process noting the same at the same moment, or a catalog that cannot be
        # written: noted at the next look.
        log.warning("cannot note since when the mirrors lack archived WAL: %s", _line(exc))


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
