"""When each repository was last checked by a verify, for the status's ``verify`` items.

The daily verify reads a slice of the primary's chunks and checks each mirror's packs
and backups (:func:`respaldo.operations.scheduled.verify_slice`). A mirror it could not
check (a garbage collection held the repository's lock past ``[locks] wait_seconds``)
is skipped with a warning and the job still completes: without a record of when each
repository was last checked, a mirror whose collection always overlaps the verify was
never checked again and nobody was told.

A verify that read a repository as a whole (``--subset``, ``--all``, or the mirror's
presence check) notes when it did; the status holds that against ``[rpo]
verify_hours``. A repository never checked is noted too, the first time the status
looks at it ("watched since"), so that one never checked turns red after the same
time rather than at once (a new installation before its first verify) or never.

Kept in the catalog (``alert_states``, key ``verified:<repository>``, not firing: what
checked it in ``message`` (``subset 3/7``, ``all``, ``presence``), empty while it
was never checked; when in ``fired_at``), as
:mod:`respaldo.operations.status_mirror` keeps its notes, so the CLI, a worker on
another machine, the watchdog after a restart and ``/metrics`` share it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from respaldo.catalog import AlertStates
from respaldo.errors import first_line
from respaldo.operations.context import Context

log = logging.getLogger(__name__)

PREFIX = "verified:"


@dataclass(frozen=True)
class Verified:
    """What the catalog says of one repository's last check."""

    at: datetime
    """When it was last checked; when it was first watched if it never was."""
    scope: str | None
    """What checked it (``subset 3/7``, ``all``, ``presence``); None: never checked."""


def note_verified(ctx: Context, repository: str, scope: str, now: datetime) -> None:
    """Note that ``scope`` checked ``repository`` at ``now``. Never raises: a catalog
    that cannot be written costs this note only (the repository then looks older than it
    is, and the next verify notes it)."""
    try:
        with ctx.catalog.begin() as session:
            row = AlertStates(session).get_or_new(PREFIX + repository, level="info", now=now)
            row.message, row.fired_at, row.updated_at = scope, now, now
    except Exception as exc:
        log.warning("cannot note that %s checked repository %s: %s", scope, repository, _line(exc))


def last_verified(ctx: Context, repositories: Sequence[str], now: datetime) -> dict[str, Verified]:
    """Each of ``repositories`` -> its last check; one with no note is noted now as
    watched since ``now``. A note dated after ``now`` (the clock was set back) counts as
    made now. Never raises: a catalog that cannot be read gives {} (the status's catalog
    item says so), one that cannot be written a repository watched since ``now``."""
    try:
        with ctx.catalog.read() as session:
            states = AlertStates(session)
            rows = {name: states.get(PREFIX + name) for name in repositories}
            found = {
                name: Verified(min(row.fired_at, now), row.message or None)
                for name, row in rows.items()
                if row is not None and row.fired_at is not None
            }
    except Exception as exc:
        log.warning("cannot read when the repositories were last verified: %s", _line(exc))
        return {}
    unseen = [name for name in repositories if name not in found]
    for name in unseen:
        found[name] = Verified(now, None)
    if unseen:
        try:
            with ctx.catalog.begin() as session:
                states = AlertStates(session)
                for name in unseen:
                    row = states.get_or_new(PREFIX + name, level="info", now=now)
                    # A verify that noted meanwhile (another process) is kept.
                    if row.fired_at is None:
                        row.message, row.fired_at, row.updated_at = "", now, now
        except Exception as exc:
            log.warning("cannot note since when repositories are watched: %s", _line(exc))
    return found


def _line(exc: BaseException) -> str:
    return first_line(exc) or type(exc).__name__
