"""``respaldo backup SOURCE [--type full|incremental|files|snapshot]``: take a backup now.

SOURCE is a configured database (``full``: logical, the default; ``incremental``:
physical, the whole cluster) or file set (``files``, the default for file sets).
"""

from __future__ import annotations

from typing import Annotated

import typer

from respaldo import cancellation
from respaldo.cli.app import app, err_console, human_bytes, print_json, state
from respaldo.cli.copies import print_copies
from respaldo.cli.progress import progress_bars
from respaldo.cli.text import escape
from respaldo.domain import BackupKind, JobKind
from respaldo.operations.context import Context
from respaldo.operations.jobs import cli_request, run_now
from respaldo.operations.recorded import unconfirmed_problem
from respaldo.operations.snapshot import backup_source
from respaldo.phrases import counted


@app.command("backup")
def backup(
    ctx: typer.Context,
    database: Annotated[str, typer.Argument(help="A database or file set name from the config.")],
    kind: Annotated[
        BackupKind | None,
        typer.Option(
            "--type",
            help="full (logical, default for databases), incremental (physical: the whole "
            "cluster), files (default for file sets), snapshot (full, pinned).",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            help="pg_dump workers of a logical backup (default: the database's dump_jobs); "
            "above 1, a parallel directory-format dump.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
) -> None:
    """Back up a configured database or file set; prints the backup id as the last line."""
    settings = state(ctx).settings
    params = {"type": kind, **({"jobs": jobs} if jobs is not None else {})}
    with progress_bars() as progress:
        context = Context.open(settings, progress)
        try:
            result = run_now(
                context,
                cli_request(JobKind.BACKUP, database, params),
                lambda job_ctx: backup_source(job_ctx, database, kind, jobs=jobs),
                result_id=lambda done: done.view.id,
            )
        finally:
            context.close()
    stats = result.stats
    chunks = counted(stats.chunks, "{count} chunk", "{count} chunks")
    err_console.print(
        f"backup of {database} completed: {human_bytes(stats.size_bytes)} dumped, "
        f"{human_bytes(stats.size_compressed)} compressed, "
        f"{human_bytes(stats.stored_bytes)} new in the repository "
        f"({stats.new_chunks} of {chunks} new), "
        f"{result.view.duration or 0:.1f} s",
        highlight=False,
    )
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if stats.damaged_rewritten:
        err_console.print(
            counted(
                stats.damaged_rewritten,
                "stored {count} chunk anew whose earlier copy is quarantined (damaged)",
                "stored {count} chunks anew whose earlier copies are quarantined (damaged)",
            ),
            highlight=False,
        )
    if stats.unconfirmed_chunks:
        err_console.print(
            f"[yellow]warning:[/] {escape(unconfirmed_problem(stats.unconfirmed_chunks))}",
            highlight=False,
        )
    print_copies(result)
    # Taken after the manifest (result.signal) or after the backup, as its job ended.
    late = result.signal or cancellation.taken_signal()
    if late is not None:
        # The signal came once the manifest was being written: the backup stands, and
        # the exit status says so (0, not 128 + the signal: cli/main.py), as do its job
        # and record (operations/recorded.py).
        left = " its copies to the other repositories were left to the next backup." * (
            result.copies_left
        )
        err_console.print(
            f"[yellow]warning:[/] the backup completed before the signal took effect "
            f"({escape(late)}): {result.view.id}.{left}",
            highlight=False,
        )
    if as_json:
        print_json(result.view.to_json())
    else:
        typer.echo(result.view.id)
