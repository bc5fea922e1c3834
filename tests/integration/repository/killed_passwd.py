"""Child process of test_kill_passwd: ``respaldo key passwd`` that stops after a step.

Run as ``python killed_passwd.py CONFIG STEPS`` with the current passphrase in
``RESPALDO_PASSPHRASE`` and the new one in ``RESPALDO_NEW_PASSPHRASE``. After its
``STEPS``-th write or removal of a key file (a put or a delete under ``keys/``, each
complete), it prints ``step`` and waits on stdin for ever: the test kills it there, as a
kill -9 or a power cut would catch the change between two steps.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from respaldo.config import load_settings
from respaldo.operations.context import Context
from respaldo.operations.keys import change_passphrase
from respaldo.repository import KdfParams
from respaldo.storage.local import LocalStorage


def _counting(method: Callable[..., Any], steps: int, done: list[int]) -> Callable[..., Any]:
    def wrapper(self: LocalStorage, name: str, *args: Any, **kwargs: Any) -> Any:
        result = method(self, name, *args, **kwargs)
        if name.startswith("keys/"):
            done[0] += 1
            if done[0] == steps:
                print("step", flush=True)
                sys.stdin.read()
        return result

    return wrapper


def main() -> int:
    config, steps = sys.argv[1], int(sys.argv[2])
    done = [0]
    LocalStorage.put = _counting(LocalStorage.put, steps, done)  # type: ignore[method-assign]
    LocalStorage.delete = _counting(LocalStorage.delete, steps, done)  # type: ignore[method-assign]
    with Context.open(load_settings(config), catalog=False) as ctx:
        change_passphrase(
            ctx,
            os.environ["RESPALDO_NEW_PASSPHRASE"],
            kdf=KdfParams(time_cost=1, memory_cost=1024, parallelism=1),
        )
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
