"""What the lost-job tests (SQLite and PostgreSQL catalogs) share: a child process that
starts a job and is killed -9 mid-run, and a runner standing in for the service's."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

from respaldo.cancellation import CancelToken
from respaldo.operations import jobs
from respaldo.operations.context import Context

# The child of an API request's backup of file set "docs": reserves its record and
# submits its job as operations.background.start_backup does (argv[2] "here": held by
# this process, as on SQLite; "queue": in the queue, run as a worker runs it), and runs
# it through recorded_backup (which starts the reserved record) with a body that says
# the job's id and then blocks. argv[1]: the settings as JSON (no secrets: a catalog
# URL with a password comes from the environment).
API_CHILD = """
import json, sys, threading
from respaldo.config import Settings
from respaldo.domain import BackupKind, JobKind, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest
from respaldo.operations.recorded import recorded_backup, reserve_record

settings = Settings(**json.loads(sys.argv[1]))
ctx = Context.open(settings)
api = TriggeredBy.API
record = reserve_record(
    ctx, kind=BackupKind.FILES, source="docs", retention_days=None, triggered_by=api
)
request = JobRequest(
    JobKind.BACKUP, "docs", api, "ana", {"type": "files", "reserved": record.id}
)
job = jobs.submit(ctx, request, result_id=record.id, here=sys.argv[2] == "here")

def body(*_):
    print(job.id, flush=True)
    threading.Event().wait()

jobs.run(ctx, job.id, lambda c: recorded_backup(
    c, kind=BackupKind.FILES, source="docs", retention_days=None, triggered_by=api,
    pinned=False, body=body, reserved=record.id,
), result_id=record.id)
"""


def kill_once_started(argv: Sequence[str]) -> tuple[int, int]:
    """Run ``argv``, a child that prints the id of the job it started and works on, and
    kill it -9 as soon as it has printed: returns (the job's id, the child's pid)."""
    child = subprocess.Popen(list(argv), stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    job_id = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    return job_id, child.pid


class Runner:
    """Runs each job it is handed as a real job that completes at once, and records the
    ids it was handed."""

    def __init__(self) -> None:
        self.ran: list[int] = []

    def __call__(self, ctx: Context, job_id: int, token: CancelToken) -> Any:
        self.ran.append(job_id)
        return jobs.run(ctx, job_id, lambda _: None, token=token)


def retries_of(ctx: Context, job_id: int) -> list[jobs.JobInfo]:
    """The jobs that retry job ``job_id``."""
    return [j for j in jobs.list_jobs(ctx, limit=100) if j.retry_of == job_id]
