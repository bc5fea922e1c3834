"""Child process of test_abandoned: a logical backup that stops after its manifest.

Run as ``python paused_backup.py CONFIG DATABASE`` (the passphrase in
``RESPALDO_PASSPHRASE``). It takes a real backup as ``respaldo backup DATABASE`` does (a
job, in this process), but once the manifest is committed, and before the catalog record
is completed, it prints
``manifest <backup id>`` and waits for its stdin to close: the test kills it there, with
SIGKILL, in the very window a crash would hit. If it is not killed it exits with status 3
and completes nothing.
"""

from __future__ import annotations

import sys
from typing import Any

from respaldo.cli.main import invoke
from respaldo.operations import backup

_dump = backup._dump


def _dump_then_wait(*args: Any, **kwargs: Any) -> Any:
    manifest, _stats = _dump(*args, **kwargs)
    sys.stdout.write(f"manifest {manifest.backup_id}\n")
    sys.stdout.flush()
    sys.stdin.read()  # returns only when the test closes our stdin instead of killing us
    sys.exit(3)


def main() -> int:
    config, database = sys.argv[1:3]
    backup._dump = _dump_then_wait  # the body calls the module's _dump at run time
    return invoke(["--config", config, "backup", database])


if __name__ == "__main__":
    sys.exit(main())
