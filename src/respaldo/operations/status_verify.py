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
time rather than at once (a new installation before its first verify) or never. When
the catalog's ``jobs`` record a completed verify that read a repository as a whole
(a version before these notes ran it, say: the first status after an upgrade), that
verify is the first note instead: the repository was last verified then, and its
``verify_hours`` clock does not restart.

Kept in the catalog (``alert_states``, key ``verified:<repository>``, not firing: what
checked it in ``message`` (``subset 3/7``, ``all``, ``presence``), empty while it
was never checked; when in ``fired_at``), as
:mod:`respaldo.operations.status_mirror` keeps its notes, so the CLI, a worker on
another machine, the watchdog after a restart and ``/metrics`` share it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog import AlertStates, Job
from respaldo.domain import JobKind, JobStatus
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
    # Never noted, or noted as never verified (by a status before the jobs were read:
    # the first after an upgrade) while the jobs may know better.
    unseen = [name for name in repositories if name not in found or found[name].scope is None]
    for name in unseen:
        found.setdefault(name, Verified(now, None))
    if unseen:
        try:
            with ctx.catalog.begin() as session:
                primary = ctx.settings.repositories[0].name
                jobs = _from_jobs(session, unseen, primary, now)
                states = AlertStates(session)
                for name in unseen:
                    row = states.get_or_new(PREFIX + name, level="info", now=now)
                    # A verify that noted meanwhile (another process) is kept.
                    if row.fired_at is not None and row.message:
                        continue
                    seen = jobs.get(name) or found[name]
                    found[name] = seen
                    row.message, row.fired_at, row.updated_at = seen.scope or "", seen.at, now
        except Exception as exc:
            log.warning("cannot note since when repositories are watched: %s", _line(exc))
    return found


def _from_jobs(
    session: Session, names: Sequence[str], primary: str, now: datetime
) -> dict[str, Verified]:
    """The newest completed verify job that read each of ``names`` as a whole, from
    ``jobs``: ``verify --all`` or ``--subset`` (its target, None: the primary) and the
    scheduled daily verify (a slice of the primary; the mirrors' presence checks it may
    have skipped are not counted). Verifies of given backups read only those."""
    jobs = session.scalars(
        sa.select(Job)
        .where(Job.kind == JobKind.VERIFY, Job.status == JobStatus.COMPLETED)
        .where(Job.finished_at.is_not(None))
        .order_by(Job.finished_at.desc())
    )
    found: dict[str, Verified] = {}
    for job in jobs:
        scope = _scope(job.params)
        name = job.target or primary
        if scope is None or name not in names or name in found:
            continue
        assert job.finished_at is not None
        found[name] = Verified(min(job.finished_at, now), scope)
        if len(found) == len(names):
            break
    return found


def _scope(params: str | None) -> str | None:
    """What a verify job with ``params`` (its JSON) read as a whole: ``all``, ``subset
    n/t``, or None (given backups only, or unknown)."""
    try:
        given = json.loads(params) if params else {}
    except ValueError:
        return None
    if not isinstance(given, dict):
        return None
    if given.get("mode") == "all":
        return "all"
    if given.get("mode") == "subset" or "slices" in given:
        subset = given.get("subset")
        return f"subset {subset}" if isinstance(subset, str) else "subset"
    return None


def _line(exc: BaseException) -> str:
    return first_line(exc) or type(exc).__name__
