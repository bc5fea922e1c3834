"""Child of test_prune_kill: runs one ``prune`` and kills itself with SIGKILL just before
the N-th change whose description contains PATTERN (changes: ``put <object>``,
``delete <object>``, ``catalog delete <backup id>``), the state a kill -9 at that point
leaves.

Run as ``python prune_child.py CONFIG PATTERN N NOW``; the passphrase comes from the
environment. Prints ``killed before <change>`` or, if it never got there, ``done <count>``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import datetime

from respaldo.catalog import BackupRecords
from respaldo.config import RepositorySettings, load_settings
from respaldo.operations import repositories
from respaldo.operations.context import Context
from respaldo.operations.prune import prune
from respaldo.storage.base import BufferedSpool, ObjectInfo, Spool, Storage


class KillingStorage:
    """Delegates to a real store; calls ``tick`` before every change."""

    def __init__(self, inner: Storage, tick: Callable[[str], None]) -> None:
        self.inner = inner
        self.tick = tick

    @property
    def location(self) -> str:
        return self.inner.location

    def put(self, name: str, data: bytes) -> None:
        self.tick(f"put {name}")
        self.inner.put(name, data)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.get(name, offset, length)

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def sync(self, name: str) -> None:
        self.inner.sync(name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self.tick(f"delete {name}")
        self.inner.delete(name)

    def open_spool(self, directory: str) -> Spool:
        # Through this wrapper's put: packs too pass where it looks.
        return BufferedSpool(self)

    def close(self) -> None:
        self.inner.close()


def main() -> int:
    config, pattern, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
    now = datetime.fromisoformat(sys.argv[4])
    count = 0
    matched = 0

    def tick(what: str) -> None:
        nonlocal count, matched
        count += 1
        if pattern in what:
            matched += 1
            if matched >= nth:
                print(f"killed before {what}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    real_open_store = repositories.open_store

    def open_store(repo: RepositorySettings, *, retries: int = 4) -> Storage:
        return KillingStorage(real_open_store(repo, retries=retries), tick)

    repositories.open_store = open_store
    real_delete = BackupRecords.delete

    def delete(self: BackupRecords, backup_id: str) -> None:
        tick(f"catalog delete {backup_id}")
        real_delete(self, backup_id)

    BackupRecords.delete = delete  # type: ignore[method-assign]
    ctx = Context.open(load_settings(config))
    try:
        result = prune(ctx, now=now)
    finally:
        ctx.close()
    print(f"done {count} ok={result.ok}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
