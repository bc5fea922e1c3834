"""A real ``respaldo`` process whose repository stalls mid-stream: for kill -9 tests.

Run as ``python stalled_restore.py LIMIT ARGS…``: runs ``respaldo ARGS…`` in this process,
but every stream a restore reads (a chunk or a window of chunks at a time) stops once
``LIMIT`` bytes of it have been handed on (and written by the restore): the process
prints ``stalled`` and waits on stdin for ever, a restore caught half-way, for the test
to kill with SIGKILL. A slow network or disk looks the same from inside respaldo.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from respaldo.cli.main import invoke
from respaldo.operations import restore

_stream = restore.StreamReader.stream
_batches = restore.StreamReader.batches


def main() -> int:
    limit = int(sys.argv[1])

    def stalling(self: restore.StreamReader, manifest: Any, name: str) -> Iterator[bytes]:
        done = 0
        for piece in _stream(self, manifest, name):
            yield piece
            done += len(piece)
            if done >= limit:
                print("stalled", flush=True)
                sys.stdin.read()

    def stalling_batches(
        self: restore.StreamReader, manifest: Any, name: str
    ) -> Iterator[list[bytes]]:
        done = 0
        for batch in _batches(self, manifest, name):
            yield batch
            done += sum(map(len, batch))
            if done >= limit:
                print("stalled", flush=True)
                sys.stdin.read()

    restore.StreamReader.stream = stalling  # type: ignore[method-assign]
    restore.StreamReader.batches = stalling_batches  # type: ignore[method-assign]
    return invoke(sys.argv[2:])


def kill_stalled_restore(config: Path, restore_args: list[str], limit: int) -> None:
    """Run ``respaldo --config CONFIG restore RESTORE_ARGS…`` stalled after ``limit`` bytes,
    then SIGKILL it there (for the tests of what a killed restore leaves)."""
    # Imported here, not above: this file also runs as the child's script, where the tests
    # package is not on the path.
    from tests.integration.processes import killed_at_end

    argv = [sys.executable, __file__, str(limit), "--config", str(config), "restore"]
    child = subprocess.Popen(
        [*argv, *restore_args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    with killed_at_end(child):
        assert child.stdout is not None
        assert child.stdout.readline() == "stalled\n"


if __name__ == "__main__":
    sys.exit(main())
