"""``respaldo verify ID | --all``: read back every chunk and report what is wrong."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from respaldo import cancellation
from respaldo.cli.app import app, err_console, human_bytes, state
from respaldo.config import Settings
from respaldo.domain import JobKind
from respaldo.errors import ConfigError, StorageError
from respaldo.operations.context import Context
from respaldo.operations.jobs import cli_request, run_now
from respaldo.operations.repositories import open_repository
from respaldo.repository import Repository, VerifyReport, verify_backups, verify_repository
from respaldo.repository.locks import reading_lease
from respaldo.repository.verify import parse_subset, quarantine_damaged, verify_subset


@app.command("verify")
def verify(
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
    slice_ = None
    if subset is not None:
        try:
            slice_ = parse_subset(subset)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    settings = state(ctx).settings
    context = Context.open(settings)
    try:
        mode = "subset" if slice_ is not None else "all" if all_ else "backups"
        report, quarantined = run_now(
            context,
            cli_request(JobKind.VERIFY, repository, {"mode": mode, "subset": subset}),
            lambda job_ctx: _verify(job_ctx.settings, repository, slice_, all_, backup_ids),
        )
    finally:
        context.close()
    for problem in report.problems:
        # Escaped: a problem ends in "[backup … object …]", which Rich would take for a
        # style tag and swallow, hiding what is damaged.
        err_console.print(f"[red]problem:[/] {escape(str(problem))}", highlight=False)
    summary = (
        f"{report.backups} backups, {report.chunks} chunks, {human_bytes(report.bytes)} read"
        + (f", {report.packs} packs checked" if all_ else "")
    )
    if report.unreferenced_packs:
        summary += (
            f"; {report.unreferenced_packs} packs no index refers to "
            "(left by interrupted backups; garbage collection removes them)"
        )
    if quarantined:
        err_console.print(
            f"[yellow]quarantined[/] {quarantined} damaged chunk copies: no backup will "
            "use them again (the next backup of the same data stores it anew); run "
            "'respaldo repair' to take good copies from a mirror",
            highlight=False,
        )
    if report.ok:
        err_console.print(f"[green]ok[/]: {summary}", highlight=False)
        return
    err_console.print(f"[red]{len(report.problems)} problems[/]: {summary}", highlight=False)
    raise typer.Exit(3)


def _verify(
    settings: Settings,
    repository: str | None,
    slice_: tuple[int, int] | None,
    all_: bool,
    backup_ids: list[str] | None,
) -> tuple[VerifyReport, int]:
    repo = open_repository(settings, repository)
    # A shared lease: a garbage collection repacking meanwhile would show as damage.
    with (
        reading_lease(repo, "verify", _warn),
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        ) as progress,
    ):
        task = progress.add_task("verifying", total=None)

        def advance(n: int) -> None:
            progress.advance(task, n)
            cancellation.check()  # between chunks: a cancelled job stops here

        if slice_ is not None:
            report = verify_subset(repo, *slice_, advance)
        elif all_:
            report = verify_repository(repo, advance)
        else:
            report = verify_backups(repo, backup_ids or [], advance)
    quarantined = _quarantine(repo, report)
    return report, quarantined


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def _quarantine(repo: Repository, report: VerifyReport) -> int:
    """Record the damaged copies found; a store that cannot be written (read-only media)
    only loses the record, not the report."""
    try:
        return quarantine_damaged(repo, report)
    except StorageError as exc:
        _warn(f"cannot record the damaged chunks in the repository: {exc}")
        return 0
