"""Rich progress bars driven by the operations' progress callback."""

from __future__ import annotations

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
        disable=not err_console.is_terminal,
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int | None) -> None:
            task = tasks.get(phase)
            if task is None:
                task = tasks[phase] = bars.add_task(phase, total=total)
            bars.update(task, completed=done, total=total)

        yield report
