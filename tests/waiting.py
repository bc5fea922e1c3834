"""Waiting for a condition another thread or process brings about, by polling it."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds.

    The timeout only bounds a hang: on a loaded machine polls are late, never wrong.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
