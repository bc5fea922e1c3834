"""A real ``respaldo`` process that sends itself SIGTERM at a chosen point of a backup:
for the backup-termination tests.

Run as ``python terminated_backup.py POINT TIMES ARGS…``: runs ``respaldo ARGS…`` (a
backup) in this process, with the CLI's signal handling, and sends this process SIGTERM
``TIMES`` times (1, or 2 for a user who insists) once the local storage has written an
object whose path holds ``POINT``: ``repo/manifests/`` (the backup's manifest is
written, its record not completed yet), ``repo/index/`` (its last index file, before its
manifest) or ``offsite/manifests/`` (its copy to the secondary repository); or, with
POINT ``job-finish``, as the job is about to be recorded completed (the backup done), as
``systemctl stop`` or ``timeout`` would at that moment. POINT ``copy-record``: once
after writing ``offsite/index/`` (the copy cut), and once more as the cut copy's manifest
is looked for in the secondary, a look that then hangs as on an S3 endpoint that stopped
answering (until the second signal's KeyboardInterrupt ends the wait).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from respaldo.catalog.jobs import Jobs
from respaldo.catalog.models import Job
from respaldo.cli.main import invoke, take_interrupts
from respaldo.domain import JobStatus
from respaldo.storage.base import ObjectInfo
from respaldo.storage.local import LocalStorage

HUNG_SECONDS = 900
"""How long the hung look of POINT ``copy-record`` waits: longer than the test waits for
the process (300 s), so a second signal held instead of raised fails the test."""


def main() -> int:
    point, times, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    real_put = LocalStorage.put
    fired = False

    def put(self: LocalStorage, name: str, data: bytes) -> None:
        nonlocal fired
        real_put(self, name, data)
        wanted = "offsite/index/" if point == "copy-record" else point
        if wanted in str(self.root / name) and not fired:
            fired = True
            print(f"terminated after writing {name}", flush=True)
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGTERM)

    real_stat = LocalStorage.stat

    def stat(self: LocalStorage, name: str) -> ObjectInfo:
        if point == "copy-record" and fired and "offsite/manifests/" in str(self.root / name):
            print(f"terminated again while looking for {name}", flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            # A hung endpoint: only a signal that is raised, not held, ends this wait.
            threading.Event().wait(HUNG_SECONDS)
        return real_stat(self, name)

    real_finish = Jobs.finish

    def finish(self: Jobs, job_id: int, status: JobStatus, **kwargs: Any) -> Job:
        nonlocal fired
        if point == "job-finish" and status is JobStatus.COMPLETED and not fired:
            fired = True
            print(f"terminated after writing the job {job_id}", flush=True)
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGTERM)
        return real_finish(self, job_id, status, **kwargs)

    LocalStorage.put = put  # type: ignore[method-assign]
    LocalStorage.stat = stat  # type: ignore[method-assign]
    Jobs.finish = finish  # type: ignore[method-assign]
    take_interrupts()
    return invoke(argv)


if __name__ == "__main__":
    sys.exit(main())
