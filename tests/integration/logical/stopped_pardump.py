"""Child process of test_parallel_dump: a parallel backup stopped after its first file.

Run as ``python stopped_pardump.py CONFIG DATABASE MODE`` (the passphrase in
``RESPALDO_PASSPHRASE``). It takes a real backup as ``respaldo backup DATABASE`` does,
but once the first file of the dump is stored it prints ``stored`` and then, with MODE
``wait``, waits for its stdin to close (the test kills it there with SIGKILL, as a crash
would), or with MODE ``fail`` raises, as a failing storage would, and the backup fails
the ordinary way. It never completes a backup.
"""

from __future__ import annotations

import sys
from typing import Any

from respaldo.cli.main import invoke
from respaldo.operations import pardump

_store = pardump._store


def _store_then_stop(*args: Any, **kwargs: Any) -> Any:
    _store(*args, **kwargs)
    sys.stdout.write("stored\n")
    sys.stdout.flush()
    if sys.argv[3] == "fail":
        raise OSError("injected failure after the first file")
    sys.stdin.read()  # returns only when the test closes our stdin instead of killing us
    sys.exit(3)


def main() -> int:
    config, database = sys.argv[1:3]
    pardump._store = _store_then_stop  # dump_directory calls the module's _store
    return invoke(["--config", config, "backup", database])


if __name__ == "__main__":
    sys.exit(main())
