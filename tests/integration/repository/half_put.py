"""Child process of test_kill_put: a put into a local store that stops half-way.

Run as ``python half_put.py ROOT NAME SIZE``. The put writes half of its data into its
temporary file, prints ``half`` and waits on stdin for ever: the test kills it there,
as a kill -9 (or a power cut) would catch a writer in the middle of a pack.
"""

from __future__ import annotations

import os
import sys

from typing_extensions import Buffer

from respaldo.storage.local import LocalStorage

_write = os.write


def _half_then_wait(fd: int, data: Buffer) -> int:
    view = memoryview(data)
    written = _write(fd, view[: len(view) // 2])
    print("half", flush=True)
    sys.stdin.read()
    return written


def main() -> int:
    root, name, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.write = _half_then_wait  # only the put writes through os.write here
    LocalStorage(root).put(name, os.urandom(size))
    print("stored", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
