"""A real ``respaldo`` process whose ``pg_basebackup`` stalls mid-stream: for the cancel test.

Run as ``python stalled_basebackup.py LIMIT ARGS…``: runs ``respaldo ARGS…`` (a physical
backup) in this process, but once ``LIMIT`` bytes of pg_basebackup's tar have been read,
pg_basebackup is stopped with SIGSTOP and ``stalled <pid>`` is printed. respaldo itself is
untouched: it waits in a read of pg_basebackup's pipe, as it would behind a server or a
network that stalls, until the backup is stopped from outside (``respaldo jobs cancel``).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import IO, Any

from respaldo.cli.main import invoke
from respaldo.operations import physical
from respaldo.postgres import ConnInfo
from respaldo.postgres.basebackup import BaseBackupReader, pg_basebackup
from respaldo.postgres.commands import RunningCommand


class _Stalling:
    """pg_basebackup's stdout: stops the program once ``limit`` bytes have passed."""

    def __init__(self, raw: IO[bytes], pid: int, limit: int) -> None:
        self.raw, self.pid, self.limit = raw, pid, limit
        self.done = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self.raw.read(size)
        before, self.done = self.done, self.done + len(data)
        if before < self.limit <= self.done:
            os.kill(self.pid, signal.SIGSTOP)
            print(f"stalled {self.pid}", flush=True)
        return data


def main() -> int:
    limit = int(sys.argv[1])
    started: list[int] = []

    def watched(conninfo: ConnInfo, **kwargs: Any) -> RunningCommand:
        command = pg_basebackup(conninfo, **kwargs)
        started.append(command.pid)
        return command

    def reader(raw: IO[bytes]) -> BaseBackupReader:
        return BaseBackupReader(_Stalling(raw, started[-1], limit))  # type: ignore[arg-type]

    # physical.py looks both names up in its module at run time.
    physical.pg_basebackup = watched  # type: ignore[attr-defined]
    physical.BaseBackupReader = reader  # type: ignore[attr-defined,assignment]
    return invoke(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
