"""Rich progress bars driven by the operations' progress callback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from respaldo.cli.app import err_console
from respaldo.operations.context import Progress as ProgressCallback


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
    """Yield a callback that shows one bar per phase on stderr (hidden when not a tty)."""
    with Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=not interactive(),
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int | None) -> None:
            task = tasks.get(phase)
            if task is None:
                task = tasks[phase] = bars.add_task(phase, total=total)
            bars.update(task, completed=done, total=total)

        yield report
