"""Prometheus metrics, read from the catalog at each scrape.

The CLI from cron, the service and the API all write the catalog, so the catalog is the
truth: a :class:`CatalogCollector` reads it each time it is collected (a handful of
aggregate queries, :func:`respaldo.catalog.read_figures`) and keeps no counters of its
own. ``GET /metrics`` and ``respaldo metrics [--textfile PATH]`` expose the same
registry. Counters (``*_total``) are counts of catalog rows that are never deleted (jobs,
drill runs, notifications), so they only grow.

Repository sizes are the one figure the catalog does not hold: they are measured by
listing each repository's objects (:class:`RepositorySizes`), at most once every
``[metrics] repository_size_seconds`` in the service, so a scrape stays cheap. WAL
archiving, the servers and each database's thresholds come from the status report
(:mod:`respaldo.operations.metrics_status`), read at most every ``[metrics]
status_seconds``.

Metric names and labels: docs/monitoring.md. A timestamp of 0 means "never" (a
configured source without a completed backup), so that age alerts fire for it too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy.exc import SQLAlchemyError

from respaldo.catalog import CatalogFigures, KindDrillFigures, NotificationFigures, read_figures
from respaldo.config import Settings
from respaldo.domain import BackupKind, JobKind, JobStatus
from respaldo.errors import CatalogUnavailable, RespaldoError, first_line
from respaldo.operations.context import Context
from respaldo.operations.metrics_status import StatusReadings, expected_backups, status_metrics
from respaldo.operations.repositories import open_store
from respaldo.operations.status import CLOCK_SKEW
from respaldo.operations.tested_kinds import DATABASE_KINDS, relied_on
from respaldo.operations.textfile import write_atomically
from respaldo.repository.config_file import CONFIG_NAME

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The text exposition format every Prometheus (and node_exporter) reads."""

_FINAL = [s for s in JobStatus if s.is_final]


@dataclass(frozen=True)
class RepositorySize:
    name: str
    size_bytes: int | None
    objects: int | None
    measured_at: float | None
    """Unix time of the last successful measurement."""
    reachable: bool
    """Whether the last attempt to list the repository succeeded."""


class RepositorySizes:
    """The size of each configured repository, measured by listing its objects and kept
    for ``max_age`` seconds (0: measured at every call). Thread-safe: concurrent scrapes
    measure once. A repository that cannot be listed keeps its last measured size and
    is reported unreachable until a later attempt succeeds."""

    def __init__(
        self, settings: Settings, max_age: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()
        self._sizes: dict[str, RepositorySize] = {}
        self._attempted: dict[str, float] = {}

    def current(self) -> list[RepositorySize]:
        with self._lock:
            now = self.clock()
            for repo in self.settings.repositories:
                last = self._attempted.get(repo.name)
                if last is None or now - last >= self.max_age:
                    self._attempted[repo.name] = now
                    self._sizes[repo.name] = self._measure(repo.name, now)
            return [self._sizes[repo.name] for repo in self.settings.repositories]

    def _measure(self, name: str, now: float) -> RepositorySize:
        try:
            store = open_store(self.settings.repository(name))
            try:
                # A store without a config is no repository (a missing mount lists as
                # an empty directory): unreachable, not empty.
                store.stat(CONFIG_NAME)
                size = objects = 0
                for info in store.list(""):
                    size += info.size
                    objects += 1
            finally:
                store.close()
        except (RespaldoError, OSError):
            previous = self._sizes.get(name)
            if previous is None:
                return RepositorySize(name, None, None, None, reachable=False)
            return RepositorySize(
                name, previous.size_bytes, previous.objects, previous.measured_at, False
            )
        return RepositorySize(name, size, objects, now, reachable=True)


class CatalogCollector:
    """A Prometheus collector reading the catalog (and the repository sizes) each time
    it is collected. Raises CatalogUnavailable when the catalog cannot be read: a
    scrape then fails as a whole rather than reporting a partial picture."""

    def __init__(
        self,
        ctx: Context,
        sizes: RepositorySizes | None,
        status: StatusReadings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = ctx
        self.sizes = sizes
        self.status = status
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        try:
            with self.ctx.catalog.read() as session:
                # A backup dated in the future is not the newest: time() minus it would
                # keep an age alert quiet until that date.
                now = datetime.fromtimestamp(self.clock(), UTC)
                figures = read_figures(session, before=now + CLOCK_SKEW)
        except SQLAlchemyError as exc:
            raise CatalogUnavailable(
                f"the catalog cannot be read: {first_line(exc)}",
                hint="'respaldo list' shows whether the catalog answers",
            ) from None
        settings = self.ctx.settings
        report = self.status.current() if self.status is not None else None
        expected = expected_backups(report) if report is not None else set()
        yield from _backup_metrics(figures, settings, expected)
        yield from _drill_metrics(figures, settings, now)
        yield from _job_metrics(figures)
        yield from _prune_metrics(figures, settings)
        yield from _notification_metrics(figures, settings)
        if self.sizes is not None:
            yield from _repository_metrics(self.sizes.current())
        if report is not None:
            yield from status_metrics(report)
        yield _gauge(
            "respaldo_metrics_timestamp_seconds",
            "When these metrics were read from the catalog (unix time): a textfile that "
            "stops changing shows here.",
            [],
            [([], self.clock())],
        )
        yield _gauge(
            "respaldo_metrics_duration_seconds",
            "How long reading these metrics took, repository listings included.",
            [],
            [([], time.monotonic() - started)],
        )


class Metrics:
    """The metrics of one context: a registry of its own (no process-global state)
    holding one :class:`CatalogCollector`. ``fresh`` reads everything at each render
    (``respaldo metrics``, one render per run) instead of keeping repository sizes and
    the status reading for ``[metrics] repository_size_seconds`` and ``status_seconds``."""

    def __init__(self, ctx: Context, *, fresh: bool = False) -> None:
        config = ctx.settings.metrics
        sizes = status = None
        if config.repository_size:
            sizes = RepositorySizes(ctx.settings, 0.0 if fresh else config.repository_size_seconds)
        if ctx.settings.databases:
            age = 0.0 if fresh else config.status_seconds
            status = StatusReadings(ctx, age, servers=config.servers)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(CatalogCollector(ctx, sizes, status))

    def render(self) -> bytes:
        """The exposition text. Raises CatalogUnavailable (nothing is rendered then)."""
        return generate_latest(self.registry)


def render_metrics(ctx: Context) -> bytes:
    """``respaldo metrics``: the exposition text, everything read now."""
    return Metrics(ctx, fresh=True).render()


def write_textfile(ctx: Context, path: Path) -> int:
    """``respaldo metrics --textfile PATH``: write the metrics for node_exporter's
    textfile collector, atomically (see :mod:`respaldo.operations.textfile`); return the
    bytes written. Everything is read before the file is touched: when the catalog
    cannot be read the previous file stays as it was."""
    data = render_metrics(ctx)
    write_atomically(path, data)
    return len(data)


# --- the families -------------------------------------------------------------------------

Samples = Iterable[tuple[list[str], float]]


def _gauge(name: str, documentation: str, labels: list[str], samples: Samples) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def _counter(name: str, documentation: str, labels: list[str], samples: Samples) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def _unix(when: datetime | None) -> float:
    return when.timestamp() if when is not None else 0.0


def _backup_metrics(
    figures: CatalogFigures, settings: Settings, watched: set[tuple[str, str]]
) -> Iterator[Metric]:
    sources = _configured(settings)
    # A source no longer configured has no series: its old failures would otherwise keep
    # RespaldoBackupFailing firing for ever, with nothing left to fix.
    rows = {
        (f.database, f.kind.value): f
        for f in figures.backups
        if f.database is not None and f.database in sources
    }
    # Every configured source appears with its default kind (and physical backups where
    # status expects them) even before its first backup: "never" (0) is then as
    # visible to an age alert as "long ago".
    expected = {(db.name, BackupKind.FULL.value) for db in settings.databases}
    expected |= {(fs.name, BackupKind.FILES.value) for fs in settings.file_sets}
    expected |= watched
    keys = sorted(set(rows) | expected)
    done = [(k, rows[k]) for k in keys if k in rows and rows[k].last_success_at is not None]
    labels = ["database", "kind"]
    yield _gauge(
        "respaldo_backup_last_success_timestamp_seconds",
        "When the newest good backup of this source and kind ended (completed, not known "
        "to fail verification; unix time; 0: never).",
        labels,
        [([*k], _unix(rows[k].last_success_at if k in rows else None)) for k in keys],
    )
    yield _gauge(
        "respaldo_backup_last_duration_seconds",
        "How long the newest good backup of this source and kind took.",
        labels,
        [([*k], f.duration_seconds) for k, f in done if f.duration_seconds is not None],
    )
    yield _gauge(
        "respaldo_backup_last_size_bytes",
        "Size of the data the newest good backup of this source and kind read.",
        labels,
        [([*k], f.size_bytes) for k, f in done if f.size_bytes is not None],
    )
    yield _gauge(
        "respaldo_backup_last_stored_new_bytes",
        "Bytes the newest good backup added to its repository (what deduplication did not save).",
        labels,
        [([*k], f.stored_new_bytes) for k, f in done if f.stored_new_bytes is not None],
    )
    yield _gauge(
        "respaldo_backup_last_failure_timestamp_seconds",
        "When the newest failed backup of this source and kind ended (unix time; 0: never).",
        labels,
        [([*k], _unix(rows[k].last_failure_at if k in rows else None)) for k in keys],
    )
    yield _gauge(
        "respaldo_backup_failures_since_success",
        "Failed backups of this source and kind since its newest good one.",
        labels,
        [([*k], rows[k].failures_since_success if k in rows else 0) for k in keys],
    )


def _tested_kinds(
    figures: CatalogFigures, settings: Settings, now: datetime
) -> dict[str, list[KindDrillFigures]]:
    """Of each configured source, the restore tests of each kind of its backups that
    the status judges (:mod:`respaldo.operations.tested_kinds`: a database's kinds whose
    newest completed backup is within its ``restore_test_days``; a file set's files
    backups), a kind never tested with no figures. A database that relies on no kind
    (no backup that recent) is absent: its per-database series stand for it."""
    found = {(f.database, f.kind): f for f in figures.kind_drills}
    judged: dict[str, list[KindDrillFigures]] = {}
    for db in settings.databases:
        newest = {kind: figures.newest_backup_at.get((db.name, kind)) for kind in DATABASE_KINDS}
        kinds = relied_on(newest, now, settings.rpo_for(db.name).restore_test)
        if kinds:
            judged[db.name] = [
                found.get((db.name, kind), KindDrillFigures(db.name, kind)) for kind in kinds
            ]
    for fs in settings.file_sets:
        kind = BackupKind.FILES
        judged[fs.name] = [found.get((fs.name, kind), KindDrillFigures(fs.name, kind))]
    return judged


def _drill_metrics(figures: CatalogFigures, settings: Settings, now: datetime) -> Iterator[Metric]:
    # As for backups: a database no longer configured has no series (its last failed
    # restore test would keep RespaldoRestoreTestFailed firing).
    sources = _configured(settings)
    drills = [
        (f.database, f) for f in figures.drills if f.database is not None and f.database in sources
    ]
    # Of each kind the status judges: a failed logical test followed by a passed physical
    # one is a failure of the logical backups, not hidden by the newest test of any kind.
    # A kind the database no longer takes has no series, so its old failure does not
    # keep an alert firing.
    kinds = _tested_kinds(figures, settings, now)
    per_kind = [(db, f) for db in sorted(kinds) for f in kinds[db]]
    kind_labels = ["database", "kind"]
    yield _gauge(
        "respaldo_restore_test_kind_last_passed",
        "1 if the newest finished restore test of this kind of the database's backups "
        "passed and no failed one stands unsettled, else 0 (the kinds it relies on: a "
        "kind with no recent backup has none).",
        kind_labels,
        [
            ([db, f.kind.value], 1.0 if f.last_passed else 0.0)
            for db, f in per_kind
            if f.last_passed is not None
        ],
    )
    yield _gauge(
        "respaldo_restore_test_kind_last_success_timestamp_seconds",
        "When the newest passed restore test of this kind of the database's backups "
        "ended (unix time; 0: never; the kinds it relies on).",
        kind_labels,
        [([db, f.kind.value], _unix(f.last_success_at)) for db, f in per_kind],
    )
    # The per-database series (older alert rules and dashboards use them) are the worst
    # of the kinds where the database relies on any: the oldest pass (0 if a kind never
    # passed), 0 if any kind's newest test failed; else, as before, the newest of any.
    worst_passed: dict[str, float] = {}
    oldest_pass: dict[str, float] = {}
    for db, judged in kinds.items():
        results = [f.last_passed for f in judged if f.last_passed is not None]
        if results:
            worst_passed[db] = 1.0 if all(results) else 0.0
        oldest_pass[db] = min(_unix(f.last_success_at) for f in judged)
    for db, f in drills:
        if f.last_passed is not None:
            worst_passed.setdefault(db, 1.0 if f.last_passed else 0.0)
        oldest_pass.setdefault(db, _unix(f.last_success_at))
    label = ["database"]
    yield _counter(
        "respaldo_restore_tests",
        "Restore tests (drills) finished, by result.",
        ["database", "result"],
        [([db, "passed"], f.passed) for db, f in drills]
        + [([db, "failed"], f.failed) for db, f in drills],
    )
    yield _gauge(
        "respaldo_restore_test_last_timestamp_seconds",
        "When the newest finished restore test of this database ended (unix time).",
        label,
        [([db], _unix(f.last_finished_at)) for db, f in drills if f.last_finished_at],
    )
    yield _gauge(
        "respaldo_restore_test_last_passed",
        "0 if the newest finished restore test of any kind of backup this database relies "
        "on failed, else 1 (see respaldo_restore_test_kind_last_passed).",
        label,
        [([db], worst_passed[db]) for db in sorted(worst_passed)],
    )
    yield _gauge(
        "respaldo_restore_test_last_success_timestamp_seconds",
        "When the newest passed restore test of this database ended, of the kind of backup "
        "it relies on proven longest ago (unix time; 0: never).",
        label,
        # Every configured database and file set (status holds both to restore_test_days),
        # 0 until a test passes: its age alert fires too.
        [([db], oldest_pass.get(db, 0.0)) for db in sorted(sources)],
    )
    yield _gauge(
        "respaldo_restore_test_rto_seconds",
        "Restore time measured by the newest passed restore test: the measured RTO.",
        label,
        [
            ([db], f.last_success_restore_seconds)
            for db, f in drills
            if f.last_success_restore_seconds is not None
        ],
    )


def _job_metrics(figures: CatalogFigures) -> Iterator[Metric]:
    counts = figures.jobs
    kinds = list(JobKind)
    yield _counter(
        "respaldo_jobs",
        "Jobs that ended, by kind and final status (failed: failures by kind).",
        ["kind", "status"],
        [([k.value, s.value], counts.get((k, s), 0)) for k in kinds for s in _FINAL],
    )
    yield _gauge(
        "respaldo_jobs_queued",
        "Jobs waiting to run, by kind.",
        ["kind"],
        [([k.value], counts.get((k, JobStatus.QUEUED), 0)) for k in kinds],
    )
    yield _gauge(
        "respaldo_jobs_running",
        "Jobs running now, by kind.",
        ["kind"],
        [([k.value], counts.get((k, JobStatus.RUNNING), 0)) for k in kinds],
    )
    yield _gauge(
        "respaldo_job_last_success_timestamp_seconds",
        "When the newest completed job of this kind ended (unix time).",
        ["kind"],
        [([k.value], _unix(at)) for k, at in sorted(figures.job_last_success_at.items())],
    )


def _prune_metrics(figures: CatalogFigures, settings: Settings) -> Iterator[Metric]:
    reclaimed = dict.fromkeys((r.name for r in settings.repositories), 0)
    reclaimed.update(figures.reclaimed_bytes)
    yield _counter(
        "respaldo_prune_reclaimed_bytes",
        "Bytes prune reclaimed in this repository (garbage collection and WAL), all runs.",
        ["repository"],
        [([name], count) for name, count in sorted(reclaimed.items())],
    )


def _notification_metrics(figures: CatalogFigures, settings: Settings) -> Iterator[Metric]:
    # Every configured target appears before its first message (0: never), so that an
    # alert on "last failure after last success" sees it; a target no longer configured
    # still counts what it was sent, but has no timestamps: its last failure would keep
    # RespaldoNotificationsFailing firing for ever, with nothing left to fix.
    rows = {f.target: f for f in figures.notifications}
    configured = {target.name for target in settings.notifications.targets}
    for name in configured:
        rows.setdefault(name, NotificationFigures(name))
    targets = [rows[name] for name in sorted(rows)]
    current = [f for f in targets if f.target in configured]
    yield _counter(
        "respaldo_notifications",
        "Messages (alerts, reports) sent to this notification target, by result: sent "
        "(it took them) or failed (it could not be reached, or refused them).",
        ["target", "result"],
        [
            ([f.target, result], count)
            for f in targets
            for result, count in (("sent", f.sent), ("failed", f.failed))
        ],
    )
    yield _gauge(
        "respaldo_notification_last_success_timestamp_seconds",
        "When this notification target last took a message (unix time; 0: never).",
        ["target"],
        [([f.target], _unix(f.last_success_at)) for f in current],
    )
    yield _gauge(
        "respaldo_notification_last_failure_timestamp_seconds",
        "When a message to this notification target last failed (unix time; 0: never).",
        ["target"],
        [([f.target], _unix(f.last_failure_at)) for f in current],
    )


def _repository_metrics(sizes: list[RepositorySize]) -> Iterator[Metric]:
    label = ["repository"]
    yield _gauge(
        "respaldo_repository_size_bytes",
        "Bytes of every object in the repository, as last measured.",
        label,
        [([s.name], s.size_bytes) for s in sizes if s.size_bytes is not None],
    )
    yield _gauge(
        "respaldo_repository_objects",
        "Objects in the repository, as last measured.",
        label,
        [([s.name], s.objects) for s in sizes if s.objects is not None],
    )
    yield _gauge(
        "respaldo_repository_size_timestamp_seconds",
        "When the repository's size was last measured (unix time).",
        label,
        [([s.name], s.measured_at) for s in sizes if s.measured_at is not None],
    )
    yield _gauge(
        "respaldo_repository_reachable",
        "1 if the repository could be listed at the last measurement, else 0.",
        label,
        [([s.name], 1.0 if s.reachable else 0.0) for s in sizes],
    )


def _configured(settings: Settings) -> set[str]:
    """The names of the configured databases and file sets: the sources with series."""
    return {db.name for db in settings.databases} | {fs.name for fs in settings.file_sets}
