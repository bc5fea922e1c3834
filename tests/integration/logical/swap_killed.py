"""Child process of test_replace_killed: a ``restore --replace`` that stops half-way
through its swap.

Run as ``python swap_killed.py CONFIG RESPALDO-RESTORE-ARGS…`` (the passphrase in
``RESPALDO_PASSPHRASE``). It restores as ``respaldo restore`` does (a job, in this
process), but once the target has been renamed to its ``_old_`` name, and before the
staging database is renamed in its place, it prints ``renamed <target> <old>`` and waits
for its stdin to close: the test kills it there, with SIGKILL, in the very window a crash
would hit. If it is not killed it exits with status 3.
"""

from __future__ import annotations

import sys
from typing import Any

from respaldo.cli.main import invoke
from respaldo.operations import restore
from respaldo.postgres import rename_database

_rename = rename_database


def _rename_then_wait(conninfo: Any, old: str, new: str, **kwargs: Any) -> None:
    _rename(conninfo, old, new, **kwargs)
    if "_old_" in new:
        sys.stdout.write(f"renamed {old} {new}\n")
        sys.stdout.flush()
        sys.stdin.read()  # returns only when the test closes our stdin instead of killing us
        sys.exit(3)


def main() -> int:
    config, *args = sys.argv[1:]
    # _swap calls the module's name at run time.
    restore.rename_database = _rename_then_wait  # type: ignore[attr-defined]
    return invoke(["--config", config, "restore", *args])


if __name__ == "__main__":
    sys.exit(main())
