"""Child of test_verify_skipped: holds the exclusive lock a garbage collection takes on
the repository stored at ROOT until its standard input closes, as a long prune on
another process (or machine) does.

Run as ``python lock_holder.py ROOT``. Prints ``held <lock object>`` once the lock is
taken, and ``released`` when it lets go.
"""

from __future__ import annotations

import sys

from respaldo.repository.locks import Lease, LockKind
from respaldo.storage.local import LocalStorage


def main() -> None:
    storage = LocalStorage(sys.argv[1])
    with Lease.acquire(storage, LockKind.EXCLUSIVE, "garbage collection") as lease:
        print(f"held {lease.name}", flush=True)
        sys.stdin.read()
    print("released", flush=True)


if __name__ == "__main__":
    main()
