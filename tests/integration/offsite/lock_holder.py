"""Child of test_verify_skipped and test_prune_alert_spanish: holds a lock on the
repository stored at ROOT until its standard input closes: the exclusive lock a garbage
collection takes, as a long prune on another process (or machine) does, or with
``shared PURPOSE`` the shared lease a running backup holds.

Run as ``python lock_holder.py ROOT [shared PURPOSE]``. Prints ``held <lock object>``
once the lock is taken, and ``released`` when it lets go.
"""

from __future__ import annotations

import sys

from respaldo.repository.locks import Lease, LockKind
from respaldo.storage.local import LocalStorage


def main() -> None:
    storage = LocalStorage(sys.argv[1])
    kind, purpose = LockKind.EXCLUSIVE, "garbage collection"
    if sys.argv[2:3] == ["shared"]:
        kind, purpose = LockKind.SHARED, sys.argv[3]
    with Lease.acquire(storage, kind, purpose) as lease:
        print(f"held {lease.name}", flush=True)
        sys.stdin.read()
    print("released", flush=True)


if __name__ == "__main__":
    main()
