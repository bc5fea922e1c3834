"""A process that opens a repository hands megabyte buffers back to the system when it
frees them (glibc's mmap threshold fixed at 1 MiB, :mod:`respaldo.repository.allocator`):
with glibc's default, the threshold rises to the largest buffer freed (a 12 MiB pack) and
later buffers are carved from the heap, where they stay in the process's memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

_PROBE = textwrap.dedent(
    """
    import sys
    from respaldo.storage.memory import MemoryStorage
    from tests.unit.repository.helpers import init_repo, open_repo

    def anon():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024

    storage = MemoryStorage()
    init_repo(storage)
    if sys.argv[1] == "open":
        open_repo(storage)
    big = bytearray(16 << 20)  # a pack-sized buffer, freed: glibc's threshold rises
    big[::4096] = b"x" * len(big[::4096])
    del big
    before = anon()
    buf = bytearray(4 << 20)
    buf[::4096] = b"y" * len(buf[::4096])
    pins = [bytearray(200) for _ in range(2000)]  # allocated after it: the heap stays up
    del buf
    print((anon() - before) >> 20)
    """
)


def _probe(script: str, mode: str) -> int:
    """What ``script`` prints, run in a fresh interpreter with ``mode`` as its argument
    and glibc's allocator at its defaults (no ``MALLOC_*`` from this environment)."""
    here = Path(__file__).resolve().parents[3]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(here)) if p)
    done = subprocess.run(
        [sys.executable, "-c", script, mode],
        cwd=here,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip())


def _kept_mib(mode: str) -> int:
    return _probe(_PROBE, mode)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_process_that_opened_a_repository_gives_freed_buffers_back() -> None:
    assert _kept_mib("open") == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_probe_sees_what_glibcs_default_keeps() -> None:
    # The same probe without opening a repository: the 4 MiB stay (the test above could
    # not pass by accident).
    assert _kept_mib("init") >= 3


_ARENAS = textwrap.dedent(
    """
    import ctypes, sys, tempfile, threading
    from respaldo.storage.memory import MemoryStorage
    from tests.unit.repository.helpers import init_repo, open_repo

    storage = MemoryStorage()
    init_repo(storage)
    if sys.argv[1] == "open":
        open_repo(storage)
    # Threads that allocate while all of them are alive: glibc gives each its own arena
    # (up to 8 a core) unless the number of arenas is capped.
    ready = threading.Barrier(7)
    def work():
        kept = [bytearray(3000) for _ in range(200)]
        ready.wait()
        ready.wait()
        del kept
    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    ready.wait()
    libc = ctypes.CDLL("libc.so.6")
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    with tempfile.NamedTemporaryFile() as out:
        fp = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, fp)
        libc.fclose(fp)
        print(open(out.name).read().count("<heap nr="))
    ready.wait()
    for t in threads:
        t.join()
    """
)


def _arenas(mode: str) -> int:
    return _probe(_ARENAS, mode)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_process_that_opened_a_repository_keeps_few_malloc_arenas() -> None:
    # Each arena keeps its own free memory: a backup into S3 had 17 MiB free in them at
    # its peak with glibc's default (8 arenas a core), 12 with two.
    assert _arenas("open") <= 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_arena_probe_sees_glibcs_default() -> None:
    # Without opening a repository, each of the probe's threads has an arena of its own.
    assert _arenas("init") >= 5
