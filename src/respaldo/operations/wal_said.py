"""Whether a restore_command warning was said already in this recovery.

The server runs ``restore_command`` once per file it fetches: a restore from the mirror
after the primary repository was lost tried the primary first for every file, and each
fetch logged "reading it from offsite: the primary repository local: …", hundreds of
times in the server's log for one cause. The first fetch of a recovery says it; later
ones log it at INFO (``--verbose`` shows them).

A recovery is told apart by its ``recovery.signal`` (or ``standby.signal``), which a
restore creates and the server removes when recovery ends: the marker in the data
directory holds that file's inode and time and what was said. A new restore, into the
same directory or of a backup of this server, makes a new signal file, and the warning
is said again. The server removes the signal file before the last fetches of a recovery
(the timeline history files): those go by the marker alone. Without either (``wal-fetch``
run by hand), or when the marker cannot be read or written, it is said every time: never
not at all.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

MARKER = "respaldo-wal-said"
"""In the data directory of the server in recovery (``%p``'s, ``pg_wal/..``)."""


def first_time(destination: Path, what: str) -> bool:
    """Whether ``what`` is said for the first time in the recovery that fetches into
    ``destination`` (restore_command's ``%p``); notes it if so."""
    datadir = destination.absolute().parent.parent
    marker = datadir / MARKER
    noted = ""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        noted = marker.read_text(encoding="utf-8")
    recovery = _recovery(datadir)
    if recovery is None:
        # The end of a recovery: the server removes its signal file before its last
        # fetches (the timeline history files, once it chose a new timeline). What the
        # marker says stands until the next restore makes a new signal file.
        return noted.partition(" ")[2] != f"{what}\n"
    said = f"{recovery} {what}\n"
    if noted == said:
        return False
    tmp = marker.with_name(f".{MARKER}.{os.getpid()}")
    with contextlib.suppress(OSError):
        tmp.write_text(said, encoding="utf-8")
        tmp.replace(marker)
    return True


def _recovery(datadir: Path) -> str | None:
    """This recovery's signal file, as ``NAME:INODE:MTIME_NS``; None without one."""
    for name in ("recovery.signal", "standby.signal"):
        try:
            st = (datadir / name).stat()
        except OSError:
            continue
        return f"{name}:{st.st_ino}:{st.st_mtime_ns}"
    return None
