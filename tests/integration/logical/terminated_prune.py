"""A real ``respaldo`` process sent SIGTERM by itself right after it deleted its first
manifest: for the prune-termination test.

Run as ``python terminated_prune.py ARGS…``: runs ``respaldo ARGS…`` (a prune) in this
process, with the CLI's signal handling, and once a ``manifests/`` object of the local
repository has been deleted sends this process SIGTERM, as ``systemctl stop`` or
``timeout`` would at that moment: between a backup's manifest and its catalog record.
"""

from __future__ import annotations

import os
import signal
import sys

from respaldo.cli.main import invoke, take_interrupts
from respaldo.storage.local import LocalStorage


def main() -> int:
    real_delete = LocalStorage.delete
    fired = False

    def delete(self: LocalStorage, name: str) -> None:
        nonlocal fired
        real_delete(self, name)
        if name.startswith("manifests/") and not fired:
            fired = True
            print(f"terminated after deleting {name}", flush=True)
            os.kill(os.getpid(), signal.SIGTERM)

    LocalStorage.delete = delete  # type: ignore[method-assign]
    take_interrupts()
    return invoke(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
