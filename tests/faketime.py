"""libfaketime for a child process: its wall clock set apart from this one's.

Preloaded into the process itself (``LD_PRELOAD``), not through the ``faketime`` command,
which would run it as its child: killing that would leave the real process running.
scripts/setup.sh installs the library (Debian package libfaketime).
"""

from __future__ import annotations

import os
from pathlib import Path

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def faketime_env(**settings: str) -> dict[str, str]:
    """This process's environment with libfaketime preloaded and ``settings`` (``FAKETIME``
    and the like) added."""
    assert LIBFAKETIME.is_file(), (
        f"{LIBFAKETIME} is missing (Debian package libfaketime; scripts/setup.sh installs it)"
    )
    return {**os.environ, "LD_PRELOAD": str(LIBFAKETIME), **settings}


def stepped_clock(folder: Path) -> tuple[Path, dict[str, str]]:
    """A clock the test steps while the process runs: the file it rewrites ("+3600\\n" is
    an hour ahead; it starts at "+0") and the process's environment. The file is read at
    every call, so a step is seen at once; the monotonic clock is left alone, as a step of
    the machine's clock leaves it."""
    clock = folder / "faketime"
    clock.write_text("+0\n")
    env = faketime_env(
        FAKETIME_TIMESTAMP_FILE=str(clock),
        FAKETIME_NO_CACHE="1",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
    )
    return clock, env
