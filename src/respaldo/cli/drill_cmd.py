"""``respaldo drill [DATABASE | FILE SET | ID]``: restore-test a backup;
``respaldo drills``: history."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from respaldo.cli.app import app, err_console, out_console, print_json, state
from respaldo.cli.progress import progress_bars
from respaldo.cli.text import escape
from respaldo.domain import JobKind
from respaldo.errors import JobCancelled, RespaldoError
from respaldo.operations.context import Context
from respaldo.operations.drill import DrillRound, run_restore_test_round
from respaldo.operations.jobs import cli_request, run_now
from respaldo.operations.listing import list_drills
from respaldo.operations.models import to_json_list


@app.command("drill")
def drill(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="A configured database or file set, or a backup id.")
    ],
    amcheck: Annotated[
        bool | None, typer.Option("--amcheck/--no-amcheck", help="Run pg_amcheck too.")
    ] = None,
    respaldo_command: Annotated[
        str | None,
        typer.Option(
            "--respaldo-command",
            help="The respaldo a physical drill's scratch server runs to fetch WAL.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Restore a backup into a throwaway database (logical), a scratch data directory
    and server (physical) or a scratch directory (files) and check it. For a database:
    the newest backup of each kind it relies on (logical, physical), each tested; for a
    backup id, that backup. Exit status 3 if a test fails, 1 if one could not run."""
    # A database's test says what each kind of its backups did; a backup id's (or a file
    # set's) prints the one test's result, as it always did.
    by_database = target in {db.name for db in state(ctx).settings.databases}
    tried = DrillRound([])
    with progress_bars() as progress:
        context = Context.open(state(ctx).settings, progress)
        try:
            done = run_now(
                context,
                cli_request(JobKind.DRILL, target, {"amcheck": amcheck}),
                lambda job_ctx: run_restore_test_round(
                    job_ctx,
                    target,
                    amcheck=amcheck,
                    respaldo_command=respaldo_command,
                    retest=True,
                    tried=tried,
                ),
                result_id=lambda round_: round_.backup_id,
            )
        except RespaldoError as exc:
            # No test of the round could run (its only kind's, or each kind's): the round
            # is still what --json prints, its errors naming each, as when one of two
            # could not; the error and its hint go to stderr, exit status 1. An error
            # before any test (no backup to test) is the command's, as for any command,
            # and so is a cancelled round: it prints nothing, as Ctrl-C and SIGTERM do
            # (a round with a test that could not run before it would print as if the
            # test cancelled had never been due).
            if as_json and by_database and tried.errors and not isinstance(exc, JobCancelled):
                print_json(tried.view(target).to_json())
            raise
        finally:
            context.close()
    if as_json:
        print_json(done.view(target).to_json() if by_database else done.results[0].view().to_json())
    for result in done.results:
        for warning in result.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        for check in result.checks:
            mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
            err_console.print(
                f"{mark} {escape(check.name)}: {escape(check.detail)}", highlight=False
            )
        verdict = "[green]passed[/]" if result.passed else "[red]failed[/]"
        err_console.print(f"drill of {result.backup_id} {verdict}; run {result.run_id}")
    for backup, error in done.errors:
        err_console.print(
            f"drill of {backup} [red]could not run[/]: {escape(str(error))}", highlight=False
        )
    if not all(result.passed for result in done.results):
        raise typer.Exit(3)
    if done.errors:
        raise typer.Exit(1)


@app.command("drills")
def drills(
    ctx: typer.Context,
    backup_id: Annotated[str | None, typer.Option("--backup")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List past restore tests, newest first."""
    with Context.open(state(ctx).settings) as context:
        runs = list_drills(context, backup_id=backup_id, limit=limit)
    if as_json:
        print_json(to_json_list(runs))
        return
    table = Table("run", "backup", "database", "status", "started (UTC)", "restore s", "failure")
    for r in runs:
        table.add_row(
            str(r.run_id),
            r.backup_id,
            escape(r.database or "-"),
            r.status.value,
            r.started_at.strftime("%Y-%m-%d %H:%M"),
            f"{r.restore_seconds:.1f}" if r.restore_seconds is not None else "-",
            escape(r.error_message or ""),
        )
    out_console.print(table)
