"""What metrics take from the status report: WAL archiving, servers, and the thresholds.

The catalog cannot say how far behind a server's WAL archiving is: the status report
(:func:`respaldo.operations.status.compute_status`) asks each server
(``pg_stat_archiver`` and its archive queue), and metrics export that reading rather
than asking a second time. It also carries each database's thresholds (``[rpo]``), so
that an alerting rule compares an age with the database's own RPO, and the level
``respaldo status`` shows.

Asking servers costs a connection each (all at once; one that is down costs its connect
timeout), so a report is kept for ``[metrics] status_seconds`` between scrapes. The
databases whose WAL is archived are learned from the primary repository at the first
reading and kept, as the service's schedule and watchdog do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from respaldo.operations.context import Context
from respaldo.operations.status import StatusReport, compute_status

_LEVELS = {"green": 0.0, "amber": 1.0, "red": 2.0}


class StatusReadings:
    """The status report, computed at most every ``max_age`` seconds (0: at each call).
    Thread-safe: concurrent scrapes compute it once."""

    def __init__(
        self,
        ctx: Context,
        max_age: float,
        *,
        servers: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = ctx
        self.max_age = max_age
        self.servers = servers
        self.clock = clock
        self._lock = threading.Lock()
        self._report: StatusReport | None = None
        self._read_at: float | None = None
        self._archived: set[str] | None = None

    def current(self) -> StatusReport:
        with self._lock:
            now = self.clock()
            if self._report is None or self._read_at is None or now - self._read_at >= self.max_age:
                when = datetime.fromtimestamp(now, UTC)
                self._report = compute_status(
                    self.ctx, when, wal_archived=self._archived, servers=self.servers
                )
                self._read_at = now
                if self._archived is None:
                    self._archived = {d.database for d in self._report.databases if d.physical}
            return self._report


def expected_backups(report: StatusReport) -> set[tuple[str, str]]:
    """(database, kind) of every backup the status holds against an RPO: each appears in
    the metrics even before its first backup."""
    return {
        (item.database, item.kind.value)
        for item in report.items
        if item.check == "rpo" and item.database is not None and item.kind is not None
    }


def status_metrics(report: StatusReport) -> Iterator[Metric]:
    """The families taken from ``report``; see docs/monitoring.md."""
    level = GaugeMetricFamily(
        "respaldo_database_status",
        "What 'respaldo status' says of this database: 0 green, 1 amber, 2 red.",
        labels=["database"],
    )
    up = GaugeMetricFamily(
        "respaldo_database_up",
        "1 if the database's server answered at the last status reading, else 0.",
        labels=["database"],
    )
    rpo = GaugeMetricFamily(
        "respaldo_backup_rpo_seconds",
        "How old the newest completed backup of this kind may be ([rpo]).",
        labels=["database", "kind"],
    )
    drill_limit = GaugeMetricFamily(
        "respaldo_restore_test_max_age_seconds",
        "How old the newest passed restore test may be ([rpo] restore_test_days).",
        labels=["database"],
    )
    copies = GaugeMetricFamily(
        "respaldo_copy_pending_backups",
        "Completed backups of this database not yet copied to this secondary repository.",
        labels=["database", "repository"],
    )
    for db in report.databases:
        level.add_metric([db.database], _LEVELS[db.level])
        for item in db.items:
            if item.check == "server":
                up.add_metric([db.database], 1.0 if item.level == "green" else 0.0)
            elif item.check == "rpo" and item.kind is not None and item.limit_seconds:
                rpo.add_metric([db.database, item.kind.value], item.limit_seconds)
            elif item.check == "restore_test" and item.limit_seconds:
                drill_limit.add_metric([db.database], item.limit_seconds)
            elif item.check == "copy" and item.repository is not None:
                copies.add_metric([db.database, item.repository], float(item.count or 0))
    yield from (level, up, rpo, drill_limit, copies)
    yield from _wal_metrics(report)
    yield GaugeMetricFamily(
        "respaldo_status_timestamp_seconds",
        "When the servers were last asked (the status report the figures above come from).",
        value=report.checked_at.timestamp(),
    )


def _wal_metrics(report: StatusReport) -> Iterator[Metric]:
    label = ["database"]
    archived = CounterMetricFamily(
        "respaldo_wal_archived",
        "WAL segments the server archived (pg_stat_archiver.archived_count; resets "
        "with the server's statistics).",
        labels=label,
    )
    failures = CounterMetricFamily(
        "respaldo_wal_archive_failures",
        "Failed attempts to archive a WAL segment (pg_stat_archiver.failed_count).",
        labels=label,
    )
    last_age = GaugeMetricFamily(
        "respaldo_wal_last_archived_age_seconds",
        "How long ago the server archived its last segment, by the server's clock.",
        labels=label,
    )
    waiting = GaugeMetricFamily(
        "respaldo_wal_archive_waiting_files",
        "WAL files waiting in the server's archive queue (the async pusher's backlog).",
        labels=label,
    )
    lag = GaugeMetricFamily(
        "respaldo_wal_archive_lag_seconds",
        "How long the oldest file in the archive queue has waited (0: none waits): the "
        "data a physical restore would lose.",
        labels=label,
    )
    max_lag = GaugeMetricFamily(
        "respaldo_wal_archive_max_lag_seconds",
        "How long a WAL file may wait to be archived ([rpo] archive_lag_minutes).",
        labels=label,
    )
    for db in report.databases:
        for item in db.items:
            if item.check == "archive" and item.limit_seconds:
                max_lag.add_metric([db.database], item.limit_seconds)
        view = db.archive
        if view is None:
            continue
        archived.add_metric([db.database], float(view.archived_count))
        failures.add_metric([db.database], float(view.failed_count))
        if view.last_archived_age_seconds is not None:
            last_age.add_metric([db.database], view.last_archived_age_seconds)
        if view.waiting is not None:
            waiting.add_metric([db.database], float(view.waiting))
            lag.add_metric([db.database], view.oldest_waiting_age_seconds or 0.0)
    yield from (archived, failures, last_age, waiting, lag, max_lag)
