"""Child process of test_kill_writer: writes one backup slowly, until it is killed.

Run as ``python slow_writer.py ROOT BACKUP_ID SIZE``; the passphrase comes from
``RESPALDO_PASSPHRASE`` in the environment (never argv, which other users can read).
Prints ``started`` once the writer is open; reaching ``committed`` means the test failed
to kill it in time.
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import UTC, datetime

from respaldo.repository import BackupWriter, Repository
from respaldo.storage.local import LocalStorage

PACK_SIZE = 16 * 1024
PIECE = 4096
PAUSE = 0.005


class SlowRandomSource:
    """``size`` reproducible random bytes, a piece at a time with a pause between pieces."""

    def __init__(self, size: int, seed: int) -> None:
        self._left = size
        self._rng = random.Random(seed)

    def read(self, size: int = -1, /) -> bytes:
        if self._left <= 0:
            return b""
        time.sleep(PAUSE)
        n = min(PIECE, self._left) if size < 0 else min(size, PIECE, self._left)
        self._left -= n
        return self._rng.randbytes(n)


def main() -> int:
    root, backup_id, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    passphrase = os.environ["RESPALDO_PASSPHRASE"]
    repo = Repository.open(LocalStorage(root), passphrase, pack_size=PACK_SIZE)
    with BackupWriter(repo, backup_id) as writer:
        print("started", flush=True)
        writer.write_stream("dump", SlowRandomSource(size, seed=1234))
        writer.commit(kind="full", source="killed", started_at=datetime.now(UTC))
    print("committed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
