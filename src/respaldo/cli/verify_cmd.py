"""``respaldo verify ID | --all | --subset n/t``: read back every chunk and report what is
wrong (see :mod:`respaldo.operations.verify`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from respaldo.cli.app import app, err_console, human_bytes, state
from respaldo.cli.progress import interactive
from respaldo.cli.text import escape
from respaldo.domain import JobKind
from respaldo.errors import ConfigError
from respaldo.operations.context import Context
from respaldo.operations.jobs import cli_request, run_now
from respaldo.operations.verify import VerifyResult, verify
from respaldo.phrases import counted


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    backup_ids: Annotated[list[str] | None, typer.Argument(help="Backup ids to verify.")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Check index, packs and every backup.")
    ] = False,
    subset: Annotated[
        str | None,
        typer.Option("--subset", help="Check slice n/t of all chunks (t runs cover all)."),
    ] = None,
    repository: Annotated[str | None, typer.Option("--repository", "-r")] = None,
) -> None:
    """Read every chunk of the given backups (or of all), check ids and checksums.

    Exit status 3 when problems are found; each is printed with the backup and object.
    """
    if sum((bool(backup_ids), all_, subset is not None)) != 1:
        raise ConfigError("give backup ids, --all or --subset n/t (one of them)")
    mode = "subset" if subset is not None else "all" if all_ else "backups"
    with (
        Context.open(state(ctx).settings) as context,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err_console,
            transient=True,
            disable=not interactive(),
        ) as progress,
    ):
        task = progress.add_task("verifying", total=None)
        result = run_now(
            context,
            cli_request(JobKind.VERIFY, repository, {"mode": mode, "subset": subset}),
            lambda job_ctx: verify(
                job_ctx,
                backup_ids=backup_ids,
                everything=all_,
                subset=subset,
                repository=repository,
                advance=lambda n: progress.advance(task, n),
            ),
        )
    _print(result)
    if not result.ok:
        raise typer.Exit(3)


def _print(result: VerifyResult) -> None:
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    for problem in result.problems:
        # Escaped: a problem ends in "[backup … object …]", which Rich would take for a
        # style tag and swallow, hiding what is damaged.
        err_console.print(f"[red]problem:[/] {escape(problem)}", highlight=False)
    backups = counted(result.backups, "{count} backup", "{count} backups")
    chunks = counted(result.chunks, "{count} chunk", "{count} chunks")
    packs = counted(result.packs, "{count} pack checked", "{count} packs checked")
    summary = f"{backups}, {chunks}, {human_bytes(result.bytes)} read" + (
        f", {packs}" if result.packs_checked else ""
    )
    unreferenced = counted(result.unreferenced_packs, "{count} pack", "{count} packs")
    if result.unreferenced_packs and result.damaged_index_files:
        # Then they may hold live data the damaged file described: not leftovers.
        summary += (
            f"; {unreferenced} not covered by a readable index ('respaldo index rebuild' fixes it)"
        )
    elif result.unreferenced_packs:
        summary += (
            f"; {unreferenced} no index refers to "
            "(left by interrupted backups; garbage collection removes them)"
        )
    if result.quarantined:
        copies = counted(
            result.quarantined,
            "{count} damaged chunk copy: no backup will use it again",
            "{count} damaged chunk copies: no backup will use them again",
        )
        err_console.print(
            f"[yellow]quarantined[/] {copies} (the next backup of the same data stores it "
            "anew); run 'respaldo repair' to take good copies from a mirror",
            highlight=False,
        )
    if result.ok:
        err_console.print(f"[green]ok[/]: {summary}", highlight=False)
    else:
        problems = counted(len(result.problems), "{count} problem", "{count} problems")
        err_console.print(f"[red]{problems}[/]: {summary}", highlight=False)
