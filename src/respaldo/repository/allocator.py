"""glibc's allocator, told to hand big buffers back to the system when they are freed,
and to keep few arenas.

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

It also caps glibc's arenas at two (``M_ARENA_MAX``; default 8 a core). Every thread that
allocates gets an arena of its own while the cap allows, and each arena keeps the memory
freed in it for its own later use: a backup into S3 (whose upload and fetch threads each
parse and sign requests in their arena) had 17 MiB free but kept in its arenas at its
peak, 42.6 MiB of heap for 25 in use (``mallinfo2``), and peaked at 141.7 MiB; with
two arenas 135.4, and a restore from S3 126.9 instead of 137.1. glibc fixes its cap when a
ninth arena would be made, so setting it here, before the pipeline's threads start, holds
for them; arenas made before (a few at most) stay.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENA_MAX = 2
"""Two arenas: the main thread's and one the workers share (their hot work is in C
without allocating: hashing, zstd, AES-GCM into buffers made once)."""
MMAP_THRESHOLD = 1 << 20
"""Buffers of 1 MiB or more are mapped and given back when freed (sealed chunks, a few
KiB, stay on the heap, where reusing them is cheap)."""

_done = False
_lock = threading.Lock()


def tune() -> bool:
    """Set glibc's mmap threshold and arena cap once per process; returns whether the
    threshold was set now (False when already done, left to the environment, or not
    glibc). Each is left alone where the environment sets it (``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_ARENA_MAX``)."""
    global _done
    with _lock:
        if _done:
            return False
        _done = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            return False
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        # mallopt returns 1 on success; a C library that refuses it changes nothing.
        if "MALLOC_ARENA_MAX" not in os.environ:
            mallopt(M_ARENA_MAX, ARENA_MAX)
        if "MALLOC_MMAP_THRESHOLD_" in os.environ:
            return False
        return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
