"""Several machines: a PostgreSQL catalog, ``respaldo serve`` and two ``respaldo worker``s.

Real processes on loopback: the catalog is a database of the test cluster (its URL, with
the password, in RESPALDO_CATALOG__URL, inherited by every process), the backups are of
copies of the sample ERP database. A backup is held inside ``pg_dump`` by an application
lock (see test_jobs.backup_inside_pg_dump) to make "a worker busy mid-backup" a state the
test waits for, not a race. Everything waits on what the catalog shows, with a generous
deadline; nothing sleeps.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.catalog import open_catalog
from respaldo.cli.main import invoke
from respaldo.config import load_settings
from respaldo.domain import JobKind, JobStatus
from respaldo.errors import CatalogUnavailable, RepositoryMismatch
from respaldo.operations import queue
from respaldo.operations.context import Context
from respaldo.operations.initialize import initialize
from respaldo.operations.jobs import JobInfo, cli_request
from tests.integration.logical.conftest import FAST_KDF, Respaldo, Run
from tests.integration.logical.test_jobs import partitioned_table, pg_dump_waiting
from tests.integration.logical.test_serve import answers
from tests.integration.processes import kill_if_running, output, start_logged
from tests.servers.notify import Webhook, webhook  # noqa: F401
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

LEASE = 4.0
"""[jobs] lease_seconds: a killed worker's job is failed this long after its last beat."""


@dataclass
class Site:
    """The catalog, the config, and the processes started by the test."""

    respaldo: Respaldo
    pg: TempCluster
    config: Path
    databases: list[str]
    catalog: str
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    logs: dict[int, Path] = field(default_factory=dict)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``respaldo ARGS`` in a process of its own, its output to a file of its own
        (:meth:`output`): a worker's tracebacks in an unread pipe froze it once full."""
        argv = [sys.executable, "-m", "respaldo.cli.main", "--config", str(self.config), *args]
        log = self.respaldo.tmp / f"process-{len(self.processes)}-{args[-1]}.log"
        process = start_logged(argv, log)
        self.processes.append(process)
        self.logs[process.pid] = log
        return process

    def run(self, config: Path, *args: str) -> Run:
        """``respaldo --config CONFIG ARGS`` run to its end in this process, through the
        CLI's own entry (as ``Respaldo.run``, with another config): a one-shot command's
        own process cost seconds of Python start-up and imports on a loaded machine."""
        capsys = self.respaldo.capsys
        capsys.readouterr()
        code = invoke(["--config", str(config), *args])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    def output(self, process: subprocess.Popen[str]) -> str:
        """What ``process`` (of :meth:`start`) wrote so far, stdout and stderr."""
        return output(self.logs[process.pid])

    def worker(self, name: str) -> subprocess.Popen[str]:
        (process,) = self.workers(name)
        return process

    def workers(self, *names: str) -> list[subprocess.Popen[str]]:
        """``respaldo worker --name NAME`` for each of ``names``, all started before the
        first is waited for: a worker's start-up (imports, catalog, repository check) is
        most of a test's time, and two start as fast as one."""
        processes = [self.start("worker", "--name", name) for name in names]
        wait_for(
            f"workers {', '.join(names)}",
            lambda: all(self._alive(p) for p in processes) and set(names) <= self.worker_names(),
        )
        return processes

    def port(self, process: subprocess.Popen[str]) -> int:
        """The port ``respaldo serve`` (of :meth:`start`) listens on, from its line
        "listening on http://HOST:PORT"; fails with its output if it ends first."""
        said: list[re.Match[str]] = []

        def listening() -> bool:
            said.extend(re.finditer(r"listening on http://[^\s,]*:(\d+)", self.output(process)))
            return bool(said) or not self._alive(process)

        wait_for("serve to listen", listening)
        return int(said[0].group(1))

    def _alive(self, process: subprocess.Popen[str]) -> bool:
        assert process.poll() is None, self.output(process)
        return True

    @contextmanager
    def context(self) -> Iterator[Context]:
        with Context.open(load_settings(self.config)) as ctx:
            yield ctx

    def worker_names(self) -> set[str]:
        """The workers not lost (a killed one stays listed, lost, for a day)."""
        with self.context() as ctx:
            return {w.name for w in queue.list_workers(ctx) if w.state != "lost"}

    def enqueue(self, database: str) -> JobInfo:
        """Submit a backup: with a PostgreSQL catalog, jobs.submit queues it."""
        from respaldo.operations import jobs

        with self.context() as ctx:
            job = jobs.submit(ctx, cli_request(JobKind.BACKUP, database, {"type": "full"}))
        assert job.queue_name == "default"
        return job

    def jobs(self) -> list[JobInfo]:
        from respaldo.operations import jobs

        with self.context() as ctx:
            return jobs.list_jobs(ctx, limit=500)

    def job(self, job_id: int) -> JobInfo:
        return next(j for j in self.jobs() if j.id == job_id)

    def status(self, job_id: int) -> JobStatus:
        return self.job(job_id).status


@pytest.fixture
def site(respaldo: Respaldo, pg: TempCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    catalog = f"cat_{uuid.uuid4().hex[:10]}"
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(catalog)))
    secret = pg.password.get_secret_value()
    url = f"postgresql://{pg.superuser}:{secret}@{pg.host}:{pg.port}/{catalog}"
    monkeypatch.setenv("RESPALDO_CATALOG__URL", url)
    open_catalog(url, create=True).close()
    copies = []
    for n in (2, 3):
        name = f"{respaldo.dbname}_{n}"
        pg.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(respaldo.dbname)
            )
        )
        copies.append(name)
    text = respaldo.config.read_text()
    text = text[: text.index('[[databases]]\nname = "erp_hooked"')]
    erp = text[text.index('[[databases]]\nname = "erp"') :]
    for n, name in zip((2, 3), copies, strict=True):
        text += erp.replace('name = "erp"', f'name = "erp{n}"').replace(
            f'/{respaldo.dbname}"', f'/{name}"'
        )
    text += f"""
[jobs]
lease_seconds = {LEASE}

[queue]
shutdown_timeout_seconds = 1

[schedules]
time_zone = "UTC"
full = "off"
incremental = "off"
restore_test = "off"
cleanup = "off"
verify = "off"

[server]
listen = "127.0.0.1:0"
run_jobs = false
"""
    config = respaldo.tmp / "site.toml"
    config.write_text(text)
    site = Site(respaldo, pg, config, ["erp", "erp2", "erp3"], catalog)
    try:
        yield site
    finally:
        for process in site.processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
        for name in [*copies, catalog]:
            pg.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def dump_held(site: Site) -> Iterator[None]:
    """Backups of ``erp`` wait inside pg_dump until the block ends."""
    partitioned_table(site.pg, site.respaldo.dbname)
    with site.pg.connect(site.respaldo.dbname, autocommit=False) as locker:
        locker.execute("LOCK TABLE ONLY public.bitacora IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            locker.rollback()


def running_in_pg_dump(site: Site, job_id: int) -> bool:
    return site.status(job_id) is JobStatus.RUNNING and pg_dump_waiting(
        site.pg, site.respaldo.dbname
    )


def stopping(site: Site, name: str) -> bool:
    with site.context() as ctx:
        return any(w.name == name and w.stopping for w in queue.list_workers(ctx))


def pid_of(processes: list[subprocess.Popen[str]], pid: int | None) -> subprocess.Popen[str]:
    (found,) = [p for p in processes if p.pid == pid]
    return found


def overlaps(jobs: list[JobInfo]) -> list[tuple[int, int]]:
    """Pairs of jobs of one target whose runs overlapped in time."""
    found = []
    never = datetime.max.replace(tzinfo=UTC)  # still running
    runs = [(j, j.started_at, j.finished_at or never) for j in jobs if j.started_at is not None]
    for a, start_a, end_a in runs:
        for b, start_b, end_b in runs:
            if a.id < b.id and a.target == b.target and start_a < end_b and start_b < end_a:
                found.append((a.id, b.id))
    return found


def test_two_workers_share_the_queue_never_two_backups_of_a_database_nor_a_prune_under_one(
    site: Site,
) -> None:
    """Two workers (and a serve that queues nothing here) on one catalog, one of them held
    inside erp's pg_dump: the other takes the jobs of the other databases; a prune on it
    never collects under the held backup (with [locks] wait_seconds = 0 it is refused at
    once instead of waiting); a burst of backups never runs two of one database at once,
    and neither do backups typed in a terminal beside queued ones. Four checks on one
    pair of workers: starting the pair was most of each check's time when each had its
    own (four tests before, 25-50 test-seconds each)."""
    text = site.config.read_text().replace("[jobs]\n", "[locks]\nwait_seconds = 0\n\n[jobs]\n")
    site.config.write_text(text)
    serve = site.start("serve")
    w1, w2 = site.workers("w1", "w2")
    assert serve.poll() is None
    burst: list[JobInfo] = []
    lock = threading.Lock()

    def submit(database: str) -> None:
        job = site.enqueue(database)
        with lock:
            burst.append(job)

    threads = [threading.Thread(target=submit, args=[db]) for db in ["erp2", "erp3"] * 3 + ["erp"]]
    with dump_held(site):
        held = site.enqueue("erp")
        wait_for("a worker to hold erp in pg_dump", lambda: running_in_pg_dump(site, held.id))
        busy = pid_of([w1, w2], site.job(held.id).worker_pid)
        free = w2 if busy is w1 else w1
        # The jobs of the other databases go to the free worker.
        others = [site.enqueue("erp2"), site.enqueue("erp3")]
        for job in others:
            wait_for(f"job {job.id}", lambda j=job: site.status(j.id).is_final)  # type: ignore[misc]
            done = site.job(job.id)
            assert done.status is JobStatus.COMPLETED, done
            assert done.worker_pid == free.pid  # the other worker is busy with erp
        with site.context() as ctx:
            listed = {w.name: w for w in queue.list_workers(ctx)}
        assert set(listed) == {"w1", "w2"}
        holder = next(w for w in listed.values() if w.pid == busy.pid)
        assert [(j.id, j.target) for j in holder.running] == [(held.id, "erp")]
        assert holder.queues is None  # every queue

        # A prune on the free worker: the repository's leases keep it away from the
        # backup running on the other machine.
        with site.context() as ctx:
            refused = queue.enqueue(ctx, cli_request(JobKind.PRUNE, None))
        wait_for("the prune", lambda: site.status(refused.id).is_final)
        pruned = site.job(refused.id)
        assert pruned.status is JobStatus.FAILED, pruned
        assert pruned.retry_of is None and not [j for j in site.jobs() if j.retry_of]
        assert site.status(held.id) is JobStatus.RUNNING

        # A burst arrives while one worker holds erp in pg_dump, so the other takes the
        # rest: a free worker alone could drain a burst this small before the other one
        # polls (it did once, on a loaded machine), and "both workers took jobs" would
        # be luck.
        burst.append(held)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rest = {job.id for job in burst if job.target != "erp"}
        wait_for(
            "the other databases' jobs",
            lambda: all(j.status.is_final for j in site.jobs() if j.id in rest),
        )
    ids = {job.id for job in burst}
    wait_for("the burst", lambda: all(j.status.is_final for j in site.jobs() if j.id in ids))
    ran = [j for j in site.jobs() if j.id in ids]
    assert [j.status for j in ran] == [JobStatus.COMPLETED] * len(ids), ran
    assert overlaps(ran) == []
    # Both workers took jobs of the burst.
    assert {j.worker_pid for j in ran} <= {w1.pid, w2.pid}
    assert len({j.worker_pid for j in ran}) == 2

    # No backup runs now: the next prune collects, and keeps the held one's backup.
    backup = site.job(held.id)
    assert backup.status is JobStatus.COMPLETED
    with site.context() as ctx:
        again = queue.enqueue(ctx, cli_request(JobKind.PRUNE, None))
    wait_for("the second prune", lambda: site.status(again.id).is_final)
    assert site.status(again.id) is JobStatus.COMPLETED
    assert backup.result_id in site.respaldo.repository().backup_ids()
    shown = site.run(site.config, "workers")
    assert shown.code == 0, shown
    assert "w1" in shown.out and "w2" in shown.out

    # Backups typed in a terminal (each run in its own process) beside queued ones:
    # procrastinate's lock only orders the queue; they meet the queued ones at the
    # catalog's unique key of running jobs.
    before = max(j.id for j in site.jobs())
    argv = [sys.executable, "-m", "respaldo.cli.main", "--config", str(site.config)]
    queued = [site.enqueue("erp2") for _ in range(3)]
    typed = [
        subprocess.Popen(
            [*argv, "backup", "erp2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in typed]
    queued_ids = {job.id for job in queued}
    wait_for("the queued backups", lambda: all(site.status(i).is_final for i in queued_ids))
    erp2 = [j for j in site.jobs() if j.target == "erp2" and j.id > before]
    assert len(erp2) == 5
    assert overlaps(erp2) == []
    refused_runs = [j for j in erp2 if j.status is not JobStatus.COMPLETED]
    for job in refused_runs:  # refused by the catalog, never run beside another
        assert job.status is JobStatus.FAILED, job
        # "(job N)" names the holder when the query sees it; a start racing another in a
        # concurrent transaction is caught by the unique index, which cannot name it.
        assert (job.error or "").startswith("a backup of erp2 is already running"), job
        assert job.started_at is None
    for process, (_, err) in zip(typed, outputs, strict=True):
        assert process.returncode == 0 or "a backup of erp2 is already running" in err, err


def test_kill_9_of_a_worker_mid_backup_fails_its_job_and_retries_it_on_the_other(
    site: Site,
    webhook: Webhook,  # noqa: F811
) -> None:
    text = site.config.read_text()
    text += f'\n[notifications]\n[[notifications.targets]]\nname = "hook"\nurl = "{webhook.url}"\n'
    site.config.write_text(text)
    w1, w2 = site.workers("w1", "w2")
    with dump_held(site):
        lost = site.enqueue("erp")
        wait_for("a worker to hold erp in pg_dump", lambda: running_in_pg_dump(site, lost.id))
        victim = pid_of([w1, w2], site.job(lost.id).worker_pid)
        survivor = w2 if victim is w1 else w1
        pg_dump = [c for c in psutil.Process(victim.pid).children() if c.name() == "pg_dump"]
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
        for child in pg_dump:  # the killed worker's child: left waiting on the lock
            child.kill()
        wait_for("the lost job to fail", lambda: site.status(lost.id) is JobStatus.FAILED)
    failed = site.job(lost.id)
    # Found by whichever process looked first: dead on this host, or its lease lapsed.
    assert failed.error is not None and f"process {victim.pid}" in failed.error, failed
    # The alert of the lost job, sent once by whichever process failed it.
    alerts = [got["json"] for got in webhook.inbox.wait(1)]
    assert [a["title"][:19] for a in alerts] == ["[respaldo] CRITICAL"], alerts
    assert f"process {victim.pid}" in alerts[0]["message"]
    wait_for("a retry", lambda: any(j.retry_of == lost.id for j in site.jobs()))
    (retry,) = [j for j in site.jobs() if j.retry_of == lost.id]
    assert (retry.kind, retry.target, retry.attempt) == (JobKind.BACKUP, "erp", 2)
    wait_for("the retry to end", lambda: site.status(retry.id).is_final)
    retried = site.job(retry.id)
    assert retried.status is JobStatus.COMPLETED, retried
    assert retried.worker_pid == survivor.pid
    assert site.worker_names() == {"w2" if victim is w1 else "w1"}
    # The killed worker is listed lost (for a day), with the job lost with it and that
    # job's retry: before, its row was removed once silent for a lease, and it vanished.
    victim_name = "w1" if victim is w1 else "w2"

    def shown() -> dict[str, queue.WorkerInfo]:
        with site.context() as ctx:
            return {w.name: w for w in queue.list_workers(ctx)}

    wait_for("the killed worker to be lost", lambda: shown()[victim_name].state == "lost")
    gone = shown()[victim_name]
    assert [(j.id, j.retry_id) for j in gone.failed] == [(lost.id, retry.id)], gone
    table = site.run(site.config, "workers").out
    assert "lost (last seen" in table and f"retry {retry.id}" in table, table


def test_sigterm_cancels_a_job_still_running_after_the_timeout_and_queues_a_retry(
    site: Site,
) -> None:
    w1 = site.worker("w1")
    with dump_held(site):
        held = site.enqueue("erp")
        wait_for("w1 to hold erp in pg_dump", lambda: running_in_pg_dump(site, held.id))
        w1.send_signal(signal.SIGTERM)
        assert w1.wait(timeout=120) == 0, site.output(w1)
        job = site.job(held.id)
        assert (job.status, job.error) == (
            JobStatus.CANCELLED,
            "the worker was stopped before the job ended",
        )
        (retry,) = [j for j in site.jobs() if j.retry_of == held.id]
        assert retry.status is JobStatus.QUEUED
    assert site.worker_names() == set()
    site.worker("w2")
    wait_for("the retry to end", lambda: site.status(retry.id).is_final)
    assert site.status(retry.id) is JobStatus.COMPLETED


def test_sigterm_lets_a_running_job_finish_within_the_timeout(site: Site) -> None:
    text = site.config.read_text().replace(
        "shutdown_timeout_seconds = 1", "shutdown_timeout_seconds = 600"
    )
    site.config.write_text(text)
    w1 = site.worker("w1")
    with dump_held(site):
        held = site.enqueue("erp")
        wait_for("w1 to hold erp in pg_dump", lambda: running_in_pg_dump(site, held.id))
        w1.send_signal(signal.SIGTERM)
        wait_for("w1 to be stopping", lambda: stopping(site, "w1"))
    assert w1.wait(timeout=300) == 0, site.output(w1)
    assert site.status(held.id) is JobStatus.COMPLETED


def test_two_serve_processes_fire_each_schedule_once(site: Site) -> None:
    # Every second: the four firings the test waits for come twice as soon as at */2.
    text = site.config.read_text().replace('full = "off"', 'full = "* * * * * *"')
    site.config.write_text(text)
    for _ in range(2):
        site.start("serve")
    for process in site.processes:
        assert answers(site.port(process))

    def fired() -> list[JobInfo]:
        return [j for j in site.jobs() if j.requested_by == "full:erp"]

    wait_for("four firings", lambda: len({j.scheduled_for for j in fired()}) >= 4)
    for process in site.processes:
        assert process.poll() is None
    jobs = fired()
    times = [j.scheduled_for for j in jobs]
    assert None not in times
    assert len(times) == len(set(times)), sorted(times)  # type: ignore[type-var]
    # No worker runs: the first is queued, and the later firings skipped behind it.
    statuses = sorted(j.status for j in jobs)
    assert statuses.count(JobStatus.QUEUED) == 1, statuses


def test_serve_with_run_jobs_runs_the_scheduled_jobs_itself_and_stops_on_sigterm(
    site: Site,
) -> None:
    text = site.config.read_text().replace('full = "off"', 'full = "*/2 * * * * *"')
    site.config.write_text(text.replace("run_jobs = false", "run_jobs = true"))
    serve = site.start("serve")
    wait_for(
        "a scheduled backup",
        lambda: site._alive(serve) and any(j.status is JobStatus.COMPLETED for j in site.jobs()),
    )
    done = next(j for j in site.jobs() if j.status is JobStatus.COMPLETED)
    assert done.requested_by in {"full:erp", "full:erp2", "full:erp3"}
    assert (done.worker_pid, done.queue_name) == (serve.pid, "default")
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(timeout=300) == 0, site.output(serve)
    assert [j for j in site.jobs() if j.status is JobStatus.RUNNING] == []
    assert site.worker_names() == set()


def test_a_machine_whose_file_repository_is_its_own_disk_is_refused_not_split(
    site: Site,
) -> None:
    """Machine B's config names the repository by the same file:// path, on its own disk
    (docs/scaling.md asks for one store every machine reaches). Before, B's init made a
    repository there, its worker started, its backups were recorded completed under the
    name, A's restore and restore test said 'no backup', and A's prune counted B's as the
    kept one and deleted A's older good backup. Now B is refused at init, at its worker's
    start and at each command, naming both repository ids; nothing of B is recorded."""
    site.worker("a")
    job = site.enqueue("erp")
    wait_for("A's backup", lambda: site.status(job.id).is_final)
    assert site.status(job.id) is JobStatus.COMPLETED
    a_backup = site.job(job.id).result_id
    tmp = site.respaldo.tmp
    machine_b = tmp / "machine-b"
    machine_b.mkdir()
    config_b = machine_b / "site.toml"
    config_b.write_text(
        site.config.read_text()
        .replace(f'"file://{tmp / "repo"}"', f'"file://{machine_b / "repo"}"')
        .replace(f'"{tmp / "cache"}"', f'"{machine_b / "cache"}"')
    )
    with pytest.raises(RepositoryMismatch) as refused:
        initialize(load_settings(config_b), kdf=FAST_KDF)
    message = str(refused.value)
    assert (
        f"'respaldo init' created a new repository 'local' at file://{machine_b / 'repo'}"
        in message
    )
    assert "docs/scaling.md" in refused.value.hint
    assert "'respaldo catalog rebuild --repository local'" in refused.value.hint
    a_id = site.respaldo.repository().id
    assert a_id in message and f"file://{tmp / 'repo'}" in message

    def started_as_b(*args: str) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "respaldo.cli.main", "--config", str(config_b), *args]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def ended(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
        try:
            out, err = process.communicate(timeout=300)  # a hang detector, not a time limit
        finally:
            kill_if_running(process)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    # B's worker and B's backup are both refused before they write anything: started
    # together, the test waits for one interpreter's start-up instead of two.
    starting = [started_as_b("worker", "--name", "b"), started_as_b("backup", "erp")]
    worker_b, backup_b = (ended(process) for process in starting)
    assert worker_b.returncode == 1, worker_b
    assert "respaldo: error: repository 'local' at file://" in worker_b.stderr
    assert "Traceback" not in worker_b.stderr
    assert "b" not in site.worker_names()
    assert backup_b.returncode == 1, backup_b
    assert "is not the one this catalog knows by that name" in backup_b.stderr
    assert not list((machine_b / "repo").glob("manifests/*"))  # nothing written on B
    listed = site.respaldo.run("list", "--json")
    assert [(b["id"], b["status"]) for b in listed.json() if b["status"] != "failed"] == [
        (a_backup, "completed")
    ]
    assert site.respaldo.repository().backup_ids() == [a_backup]
    # The way out the hint gives when the catalog's repository is lost for good: a
    # catalog rebuilt from B's makes it the catalog's, and then A is the one refused.
    rebuilt = site.run(config_b, "catalog", "rebuild", "--repository", "local")
    assert rebuilt.code == 0, rebuilt
    again = site.respaldo.run("backup", "erp")
    assert again.code == 1 and "is not the one this catalog knows" in again.err, again


def test_backups_of_one_database_read_from_two_sources_make_its_status_amber(
    site: Site,
) -> None:
    """Machine B's dsn for erp leads to another database (a staging copy, erp's copy
    site.databases' erp2 is made from): its backup was recorded as erp's and the status
    was green. Now the full-backup item is amber naming both sources, while the newest
    two differ; green once two in a row come from one source (a server replaced on
    purpose says so once)."""
    tmp = site.respaldo.tmp
    machine_b = tmp / "machine-b"
    machine_b.mkdir()
    config_b = machine_b / "site.toml"
    copy = f"{site.respaldo.dbname}_2"
    text = site.config.read_text()
    erp = text.index('[[databases]]\nname = "erp"\n')
    end = text.index("[[databases]]", erp + 1)
    config_b.write_text(
        text[:erp]
        + text[erp:end].replace(f'/{site.respaldo.dbname}"', f'/{copy}"')
        + text[end:].replace(f'"{tmp / "cache"}"', f'"{machine_b / "cache"}"')
    )

    def erp_item() -> dict[str, str]:
        status = site.respaldo.run("status", "--json", "--no-servers").json()
        (item,) = [i for d in status["databases"] for i in d["items"] if i["key"] == "rpo:erp:full"]
        return item  # type: ignore[no-any-return]

    site.respaldo.backup("erp")
    assert erp_item()["level"] == "green"
    on_b = site.run(config_b, "backup", "erp")
    assert on_b.code == 0, on_b
    item = erp_item()
    assert item["level"] == "amber", item
    system = str(site.pg.scalar("SELECT system_identifier FROM pg_control_system()"))
    assert (
        f"was read from {system}/{copy}, the one before it from {system}/{site.respaldo.dbname}"
        in (item["reason"])
    )
    site.respaldo.backup("erp")  # A again: the newest two still differ
    assert erp_item()["level"] == "amber"
    site.respaldo.backup("erp")
    assert erp_item()["level"] == "green", erp_item()


def test_a_job_that_cannot_be_queued_is_not_recorded_either(site: Site) -> None:
    from respaldo.operations import jobs

    with site.context() as ctx:
        site.pg.execute("DROP TABLE procrastinate_jobs CASCADE", dbname=site.catalog)
        with pytest.raises(CatalogUnavailable) as caught:
            jobs.submit(ctx, cli_request(JobKind.BACKUP, "erp", {"type": "full"}))
        assert jobs.list_jobs(ctx) == []  # the job's row rolled back with it
    message = str(caught.value)
    assert message.startswith("cannot queue backup job for erp: ")
    assert "\n" not in message
    assert site.pg.password.get_secret_value() not in message
    assert "respaldo init" in caught.value.hint


def test_a_damaged_queue_schema_is_a_clear_error_when_the_catalog_opens(site: Site) -> None:
    site.pg.execute("DROP TABLE procrastinate_jobs CASCADE", dbname=site.catalog)
    run = site.run(site.config, "jobs")
    assert run.code == 1, run.err
    (line, hint) = run.err.splitlines()
    assert line.startswith("respaldo: error: cannot create the queue's tables in the catalog at ")
    assert "already exists" in line
    assert site.pg.password.get_secret_value() not in run.err
    assert hint.startswith("respaldo: hint: the catalog holds part of procrastinate's schema")
    # Nothing was changed: respaldo's tables are as they were.
    assert site.pg.scalar("SELECT count(*) FROM jobs", dbname=site.catalog) == 0


def test_a_process_that_writes_more_than_a_pipe_holds_is_not_held(site: Site) -> None:
    # Site.start gave each process pipes the test read only at the end: one that wrote
    # more than a pipe holds (64 KiB: a worker's tracebacks, --verbose, a long listing)
    # blocked on its next write, its jobs with it, and the test waited to its timeout
    # with nothing to say why. Here 150 queued jobs, listed as JSON (some 100 KB: half
    # again what a pipe holds, and half the jobs to queue of the 300 it took before).
    from respaldo.operations import jobs

    with site.context() as ctx:
        for _ in range(150):
            jobs.submit(ctx, cli_request(JobKind.BACKUP, "erp", {"type": "full"}))
    listing = site.start("jobs", "--json", "--limit", "500")
    assert (listing.stdout, listing.stderr) == (None, None)
    # A hang detector, not a time limit: the listing takes seconds.
    assert listing.wait(timeout=300) == 0, site.output(listing)
    said = site.output(listing)
    assert len(said.encode()) > 1 << 16
    assert len(json.loads(said)) == 150
