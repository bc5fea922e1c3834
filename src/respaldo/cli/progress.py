"""Rich progress bars driven by the operations' progress callback.

``rich.progress`` (and the 17 modules of Rich it brings: live display, tables, spinners)
is imported only when bars are drawn, on a terminal: a backup run by cron, a service or
a script never draws them, and the modules' objects stay in memory for the whole run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from respaldo.cli.app import err_console
from respaldo.operations.context import Progress as ProgressCallback

if TYPE_CHECKING:
    from rich.progress import TaskID


def interactive() -> bool:
    """Whether stderr is a terminal a person watches: only then are bars drawn. Not
    Rich's ``is_terminal``, which ``FORCE_COLOR`` (set by CI runners and some service
    managers) turns on for a pipe: cron mail and logs would fill with redrawn bars."""
    try:
        return err_console.is_terminal and os.isatty(err_console.file.fileno())
    except (AttributeError, OSError, ValueError):  # a file without a descriptor
        return False


@contextmanager
def progress_bars() -> Iterator[ProgressCallback]:
    """Yield a callback that shows one bar per phase on stderr (nothing when not a tty)."""
    if not interactive():
        yield _ignore
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int | None) -> None:
            task = tasks.get(phase)
            if task is None:
                task = tasks[phase] = bars.add_task(phase, total=total)
            bars.update(task, completed=done, total=total)

        yield report


def _ignore(phase: str, done: int, total: int | None) -> None:
    """The progress callback when no bars are drawn."""
