"""Since when WAL archiving has looked stuck, where the server's archive queue cannot be
listed (a role without ``pg_monitor``).

Without the queue no file's wait is known, and ``pg_stat_archiver``'s last success does
not say it: on a quiet database (no ``archive_timeout``) it can be an hour old while the
segment after it finished a second ago and is being uploaded, or failed once and is
being retried. So the status remembers when it first saw each stuck state
(:func:`respaldo.operations.status_server.stuck_state`: the same last file archived,
with a failure after it or finished segments behind it), and archiving is red once that
same state has been seen for ``archive_lag_minutes``. The same last file archived all
along means nothing was archived in between, so a gap between two looks (the service
down for a day) keeps it true.

Kept in the catalog (``alert_states``, key ``archive-stuck:<database>``, not firing: the
state in ``message``, first seen in ``fired_at``), so the watchdog after a restart,
``respaldo status`` and ``/metrics`` share it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from respaldo.catalog import AlertStates
from respaldo.operations.context import Context

log = logging.getLogger(__name__)

PREFIX = "archive-stuck:"


def stuck_since(ctx: Context, seen: Mapping[str, str | None], now: datetime) -> dict[str, datetime]:
    """For each database in ``seen`` -> its stuck state at ``now`` (None: not stuck):
    since when that same state has been seen, for the stuck ones (``now`` the first
    time, and when it was noted in the future: the clock was set back). Notes a new
    state in the catalog and forgets one that ended; a database left out of ``seen``
    (its server not read) keeps what was noted. Never raises: when the catalog cannot
    be read or written, a state is seen since ``now`` (amber, not red)."""
    since = {db: now for db, state in seen.items() if state is not None}
    if not seen:
        return since
    try:
        with ctx.catalog.read() as session:
            states = AlertStates(session)
            noted = {
                db: (row.message, row.fired_at)
                for db in seen
                if (row := states.get(PREFIX + db)) is not None
            }
    except Exception as exc:
        log.warning("cannot read since when WAL archiving looks stuck: %s", _why(exc))
        return since
    changes: dict[str, str | None] = {}
    for db, state in seen.items():
        message, first = noted.get(db, (None, None))
        if state is None:
            if db in noted:
                changes[db] = None
        elif message == state and first is not None and first <= now:
            since[db] = first
        else:
            changes[db] = state
    if changes:
        try:
            with ctx.catalog.begin() as session:
                states = AlertStates(session)
                for db, state in changes.items():
                    if state is None:
                        states.delete(PREFIX + db)
                        continue
                    row = states.get_or_new(PREFIX + db, level="warning", now=now)
                    row.message, row.fired_at, row.updated_at = state, now, now
        except Exception as exc:
            # Another process noting the same state at the same moment, or a catalog that
            # cannot be written: seen since now this time, noted at the next look.
            log.warning("cannot note since when WAL archiving looks stuck: %s", _why(exc))
    return since


def _why(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
