"""``respaldo restore ID --target-database NAME | --target-datadir DIR | --target-dir DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from respaldo.cli.app import app, err_console, human_bytes, state
from respaldo.cli.progress import progress_bars
from respaldo.cli.text import escape
from respaldo.domain import JobKind
from respaldo.operations.context import Context
from respaldo.operations.jobs import cli_request, run_now
from respaldo.operations.restore_request import RestoreOutcome, RestoreRequest, restore
from respaldo.phrases import counted


@app.command("restore")
def restore_command(
    ctx: typer.Context,
    backup_id: Annotated[str, typer.Argument(help="Backup id.")],
    target_database: Annotated[
        str | None,
        typer.Option("--target-database", "-t", help="Database to restore into (logical)."),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Swap an existing database (kept as *_old_*).")
    ] = False,
    drop_old: Annotated[
        bool, typer.Option("--drop-old", help="With --replace: drop the old database.")
    ] = False,
    force_system_database: Annotated[
        bool,
        typer.Option(
            "--force-system-database",
            help="Allow postgres or template1 as the target (template0 never).",
        ),
    ] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Parallel pg_restore.")] = 1,
    with_globals: Annotated[
        bool, typer.Option("--globals", help="Restore roles and tablespaces first.")
    ] = False,
    no_owner: Annotated[bool, typer.Option("--no-owner", help="Skip ownership.")] = False,
    database: Annotated[
        str | None, typer.Option("--database", "-d", help="Configured server to restore to.")
    ] = None,
    work_dir: Annotated[
        Path | None, typer.Option("--work-dir", help="Where --jobs spools the dump.")
    ] = None,
    table: Annotated[
        list[str] | None,
        typer.Option(
            "--table", help="Only this table (schema.table; repeatable), into a new database."
        ),
    ] = None,
    schema: Annotated[
        list[str] | None,
        typer.Option("--schema", help="Only this schema's objects (repeatable)."),
    ] = None,
    repository: Annotated[
        str | None,
        typer.Option(
            "--repository", help="Read only this repository (default: the first that opens)."
        ),
    ] = None,
    target_datadir: Annotated[
        Path | None,
        typer.Option("--target-datadir", help="New data directory (physical backups)."),
    ] = None,
    target_dir: Annotated[
        Path | None, typer.Option("--target-dir", help="Empty directory (files backups).")
    ] = None,
    target_time: Annotated[
        str | None, typer.Option("--target-time", help="Recover to this time (with zone).")
    ] = None,
    target_lsn: Annotated[str | None, typer.Option("--target-lsn", help="... to this LSN.")] = None,
    target_name: Annotated[
        str | None, typer.Option("--target-name", help="... to this restore point.")
    ] = None,
    immediate: Annotated[
        bool, typer.Option("--immediate", help="... only to the end of the backup.")
    ] = False,
    start: Annotated[
        bool, typer.Option("--start", help="Start it, wait for recovery, promote.")
    ] = False,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port of the restored server (default: a free one)."),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="Its listen_addresses (default: 127.0.0.1; '*': every address).",
        ),
    ] = None,
    os_user: Annotated[
        str, typer.Option("--os-user", help="Owner and server user when run as root.")
    ] = "postgres",
    keep_archiving: Annotated[
        bool, typer.Option("--keep-archiving", help="Keep archive_mode of the backup.")
    ] = False,
    respaldo_command: Annotated[
        str | None, typer.Option("--respaldo-command", help="respaldo as the server runs it.")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds --start waits for recovery.")
    ] = 3600.0,
) -> None:
    """Verify and restore a backup: a logical one into a new database (or swapped in with
    --replace; or only some tables with --table/--schema), a physical one into a new data
    directory with point-in-time recovery, a files backup into an empty directory."""
    request = RestoreRequest(
        backup_id,
        target_database=target_database,
        target_datadir=target_datadir,
        target_dir=target_dir,
        database=database,
        replace=replace,
        drop_old=drop_old,
        force_system_database=force_system_database,
        jobs=jobs,
        with_globals=with_globals,
        no_owner=no_owner,
        work_dir=work_dir,
        tables=tuple(table or ()),
        schemas=tuple(schema or ()),
        repository=repository,
        target_time=target_time,
        target_lsn=target_lsn,
        target_name=target_name,
        immediate=immediate,
        start=start,
        port=port,
        listen=listen,
        os_user=os_user,
        keep_archiving=keep_archiving,
        respaldo_command=respaldo_command,
        timeout=timeout,
    )
    with progress_bars() as progress, Context.open(state(ctx).settings, progress) as context:
        outcome = run_now(
            context,
            cli_request(
                JobKind.RESTORE,
                request.target,
                {
                    "backup_id": backup_id,
                    "replace": replace,
                    # What a job listing shows of a restore of some tables only.
                    "tables": ", ".join(request.tables) or None,
                    "schemas": ", ".join(request.schemas) or None,
                    "repository": repository,
                },
            ),
            lambda job_ctx: restore(job_ctx, request),
            result_id=lambda _: backup_id,
        )
    _print(backup_id, outcome)


def _print(backup_id: str, outcome: RestoreOutcome) -> None:
    for warning in outcome.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if outcome.files is not None:
        f = outcome.files
        files = counted(f.files, "{count} file", "{count} files")
        directories = counted(f.directories, "{count} directory", "{count} directories")
        links = counted(f.symlinks, "{count} link", "{count} links")
        err_console.print(
            f"restored {backup_id} into {escape(str(f.target))}: {files}, {directories}, {links}, "
            f"{human_bytes(f.bytes_restored)}, {f.seconds:.1f} s",
            highlight=False,
        )
    elif outcome.datadir is not None:
        _print_datadir(backup_id, outcome)
    elif outcome.logical is not None:
        result = outcome.logical
        # Names as PostgreSQL holds them: a database "[/y]" made rich raise after the
        # restore had succeeded (a traceback, exit 1), and "[bold]z" printed as "z".
        tables = escape(_tables_named(result.tables))
        what = f"{tables} of {backup_id}" if result.tables else backup_id
        read = " of the dump read" if result.tables else ""
        objects = (
            counted(
                result.large_objects_checked,
                "{count} large object checked, ",
                "{count} large objects checked, ",
            )
            if result.large_objects_checked is not None
            else ""
        )
        counts = counted(
            result.row_counts_checked,
            "{count} table's row count checked",
            "{count} tables' row counts checked",
        )
        message = (
            f"restored {what} into {escape(result.target)}: "
            f"{human_bytes(result.bytes_restored)}{read}, {counts}, {objects}"
            f"{result.seconds:.1f} s"
        )
        if result.replaced:
            message += (
                f"; previous database kept as {escape(result.old_database)}"
                if result.old_database
                else "; previous database dropped"
            )
        err_console.print(message, highlight=False)


NAMED_TABLES = 10
"""How many restored tables the last line names: ``--table`` of a partitioned table with
2,000 partitions printed one line of some 30 KB."""


def _tables_named(tables: list[str]) -> str:
    if len(tables) <= NAMED_TABLES:
        return ", ".join(tables)
    more = counted(len(tables) - NAMED_TABLES, "{count} more table", "{count} more tables")
    return f"{', '.join(tables[:NAMED_TABLES])} and {more}"


def _print_datadir(backup_id: str, outcome: RestoreOutcome) -> None:
    result = outcome.datadir
    assert result is not None
    err_console.print(
        f"restored {backup_id} into {escape(str(result.datadir))}: "
        f"{human_bytes(result.bytes_restored)}, "
        f"recovery to {outcome.recovery}",
        highlight=False,
    )
    for line in result.recovery:
        err_console.print(f"  {escape(line)}", highlight=False)
    # The port the server got, which is not the one asked for after a taken one.
    where = f"on {result.listen or 'no TCP address'} port {result.port}"
    if result.started:
        err_console.print(
            f"the restored server runs {where}, promoted; log: {escape(str(result.log_file))}",
            highlight=False,
        )
    else:
        err_console.print(
            f"start it with: {escape(result.start_command)} (it recovers, then promotes; "
            f"it listens {where})",
            highlight=False,
        )
