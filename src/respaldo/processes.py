"""Processes on this machine: is one still alive, and what this machine is called.

Leases, catalog records, jobs and private directories all record the pid and host of
the process that holds them, so that a later run can tell a holder that died (kill -9,
power loss) from one still at work. One probe for all of them.
"""

from __future__ import annotations

import os
import socket


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists on this machine (signal 0 probes, sends nothing).

    A process owned by another user counts as alive. A zombie (exited, not yet reaped by
    its parent) also counts as alive; so does an unrelated process that reused the pid,
    which is why callers pair it with a heartbeat timeout or the process's start time.
    """
    if pid <= 0:
        # 0 and negative pids address process groups, not one process.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def this_host() -> str:
    """The name recorded with a pid: pids are only meaningful on their own host."""
    return socket.gethostname()
