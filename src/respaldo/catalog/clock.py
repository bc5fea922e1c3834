"""The catalog's clock: the one clock that writes and judges job and worker leases.

Processes on several machines share a PostgreSQL catalog (``respaldo worker`` processes,
``respaldo serve``, commands). Were each to write its lease with its own clock, and judge
the others' by it, a machine whose clock runs behind would write leases that look old
the moment they are written, and its running jobs would be failed as lost and run a
second time; one whose clock runs ahead would fail everyone else's. So on PostgreSQL the
time that renews a lease and the time a lease is judged against are both the database
server's (``clock_timestamp()``): the machines' clocks no longer need to agree with each
other. A SQLite catalog is a file on one machine, whose processes all read the same
clock: there the catalog's clock is this machine's.

Only the duration a running job waits for its own renewal (``operations.jobs``) is
measured in the process itself, on its monotonic clock, which skew does not touch.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog.columns import UTCDateTime


def catalog_now(session: Session) -> datetime:
    """Now by the catalog's clock, as an aware UTC datetime: the database server's on
    PostgreSQL (one round trip), this machine's on SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        return datetime.now(UTC)
    # clock_timestamp(), not now(): now() is when the transaction began, and a renewal
    # or a sweep may have waited on a lock since; a lease renewed must count from the
    # moment of the renewal, and one judged, from the moment of judging.
    found: datetime = session.execute(
        sa.select(sa.func.clock_timestamp(type_=UTCDateTime()))
    ).scalar_one()
    return found


def clock_offset(session: Session) -> float | None:
    """How many seconds this machine's clock is ahead of the catalog's (negative:
    behind), read over one round trip (its middle taken for the server's moment); None
    on SQLite, where the two are one clock."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    before = datetime.now(UTC)
    server = catalog_now(session)
    after = datetime.now(UTC)
    return (before + (after - before) / 2 - server).total_seconds()
