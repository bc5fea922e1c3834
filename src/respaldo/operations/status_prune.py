"""The mirrors whose prune waits, for the status's ``prune`` items.

A prune that cannot reach a mirror completes: the primary is pruned, and what the mirror
needs (its expired backups deleted, its garbage collection, WAL retention and object
lock renewal) waits for the next prune that reaches it
(:func:`respaldo.operations.prune.unreachable`). The prune's job records it in its
outcome (``deferred``: repository -> why, :meth:`PruneReport.outcome`), and a warning
alert goes out once per repeat interval; without an item here, ``respaldo status`` and
the page's health were green for the whole outage.

Read from the catalog's ``jobs``: the newest prune that recorded an outcome says which
mirrors it could not reach, and the prunes before it since when (the oldest of the
unbroken run of prunes that deferred it; the jobs kept, ``[jobs] keep_days``, bound it).
An item per such mirror, amber: the prune itself is done, and the mirror's failed copies
have items of their own (``copy``). None once a prune reached it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from respaldo.catalog import Job
from respaldo.domain import JobKind
from respaldo.operations.context import Context

_LOOK_BACK = 400
"""Prune jobs read at most, newest first (more than a year of nightly prunes)."""


@dataclass(frozen=True)
class Deferred:
    """A mirror the newest prune could not reach."""

    repository: str
    why: str
    """Why, as the newest prune recorded it (``cannot open: ...``)."""
    since: datetime
    """When the first prune of the unbroken run that could not reach it finished."""
    last: datetime
    """When the newest prune finished."""


def deferred_prunes(ctx: Context) -> list[Deferred]:
    """The mirrors the newest prune that recorded an outcome could not reach, in the
    configuration's order (those no longer configured left out). Raises what reading the
    catalog raises."""
    query = (
        sa.select(Job.finished_at, Job.outcome)
        .where(Job.kind == JobKind.PRUNE, Job.outcome.is_not(None))
        .where(Job.finished_at.is_not(None))
        .order_by(Job.finished_at.desc(), Job.id.desc())
    )
    with ctx.catalog.read() as session:
        # The newest alone first: the status is computed every few minutes (the
        # watchdog, the page), and the older prunes matter only during an outage.
        newest_row = session.execute(query.limit(1)).first()
        if newest_row is None or not _deferred(newest_row.outcome):
            return []
        rows: list[tuple[datetime, dict[str, str]]] = [
            (when, _deferred(outcome))
            for when, outcome in session.execute(query.limit(_LOOK_BACK))
            if when is not None
        ]
    if not rows:
        return []
    last, newest = rows[0]
    found = []
    for repo in ctx.settings.repositories[1:]:
        if repo.name not in newest:
            continue
        since = last
        for when, deferred in rows:
            if repo.name not in deferred:
                break
            since = when
        found.append(Deferred(repo.name, newest[repo.name], since, last))
    return found


def _deferred(outcome: str | None) -> dict[str, str]:
    """The ``deferred`` part of a prune job's outcome (JSON): repository -> why."""
    try:
        parsed: Any = json.loads(outcome) if outcome else {}
    except ValueError:
        return {}
    deferred = parsed.get("deferred") if isinstance(parsed, dict) else None
    if not isinstance(deferred, dict):
        return {}
    return {str(name): str(why) for name, why in deferred.items()}
