"""glibc's allocator, told to hand big buffers back to the system when they are freed.

A backup or a restore moves megabyte-sized buffers between threads: 1 MiB blocks of the
stream, 12 MiB packs joined and uploaded, windows of sealed chunks. With glibc's default
the mmap threshold rises to the size of the largest buffer freed (up to 32 MiB), after
which packs and blocks are carved from the heap, where freed space is fragmented and
rarely returned. A first backup of 1 GB peaked at 157-158 MiB with the default and at
142 MiB with ``MALLOC_MMAP_THRESHOLD_=1048576`` (fewer arenas, ``MALLOC_ARENA_MAX=2``,
alone changed nothing: 164 MiB; together 142-146).

:func:`tune` sets the threshold with ``mallopt`` for a process that is about to open a
repository, unless the environment sets it already (an operator's setting wins).
Elsewhere (another C library, no ``mallopt``) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20
"""Buffers of 1 MiB or more are mapped and given back when freed (sealed chunks, a few
KiB, stay on the heap, where reusing them is cheap)."""

_done = False
_lock = threading.Lock()


def tune() -> bool:
    """Set glibc's mmap threshold once per process; returns whether it was set now
    (False when already done, left to the environment, or not glibc)."""
    global _done
    with _lock:
        if _done:
            return False
        _done = True
        if "MALLOC_MMAP_THRESHOLD_" in os.environ:
            return False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            return False
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        # mallopt returns 1 on success; a C library that refuses it changes nothing.
        return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
