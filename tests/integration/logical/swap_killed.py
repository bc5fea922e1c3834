"""Child process of test_replace_killed: a ``restore --replace`` that stops half-way
through its swap.

Run as ``python swap_killed.py POINT CONFIG RESPALDO-RESTORE-ARGS…`` (the passphrase in
``RESPALDO_PASSPHRASE``). It restores as ``respaldo restore`` does (a job, in this
process), but at POINT of the swap it prints a line and waits for its stdin to close: the
test kills it there, with SIGKILL, in the very window a crash would hit. If it is not
killed it exits with status 3. The points:

- ``shut``: the target refuses new connections, not yet renamed (``shut <target>``);
- ``renamed``: the target has its ``_old_`` name, the staging database is not yet renamed
  in its place (``renamed <target> <old>``);
- ``swapped``: the restored copy has the target's name, the kept one (``_old_``) is not
  yet opened again (``swapped <staging> <target>``).
"""

from __future__ import annotations

import sys
from typing import Any

from respaldo.cli.main import invoke
from respaldo.operations import restore
from respaldo.postgres import rename_database
from respaldo.postgres.server import allow_connections

_rename = rename_database
_allow = allow_connections
POINT = ""


def _stop(line: str) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()
    sys.stdin.read()  # returns only when the test closes our stdin instead of killing us
    sys.exit(3)


def _rename_then_wait(conninfo: Any, old: str, new: str, **kwargs: Any) -> None:
    _rename(conninfo, old, new, **kwargs)
    if POINT == "renamed" and "_old_" in new:
        _stop(f"renamed {old} {new}")
    if POINT == "swapped" and "_old_" not in new and "_old_" not in old:
        _stop(f"swapped {old} {new}")


def _allow_then_wait(conninfo: Any, name: str, allow: bool) -> None:
    _allow(conninfo, name, allow)
    if POINT == "shut" and not allow:
        _stop(f"shut {name}")


def main() -> int:
    global POINT
    POINT, config, *args = sys.argv[1:]
    # _swap calls the module's names at run time.
    restore.rename_database = _rename_then_wait  # type: ignore[attr-defined]
    restore.allow_connections = _allow_then_wait  # type: ignore[attr-defined]
    return invoke(["--config", config, "restore", *args])


if __name__ == "__main__":
    sys.exit(main())
