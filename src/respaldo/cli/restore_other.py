"""The physical and files parts of ``respaldo restore`` (``--target-datadir``, ``--target-dir``).

Kept apart from :mod:`respaldo.cli.restore_cmd`, which parses every option of the one
``restore`` command and hands these two cases here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.markup import escape

from respaldo.cli.app import err_console, human_bytes
from respaldo.cli.progress import progress_bars
from respaldo.config import Settings
from respaldo.domain import JobKind
from respaldo.errors import ConfigError
from respaldo.operations.context import Context
from respaldo.operations.files_restore import restore_files
from respaldo.operations.jobs import cli_request, run_now
from respaldo.operations.physical_restore import restore_datadir
from respaldo.postgres.datadir import RecoveryTarget


@dataclass(frozen=True)
class PitrOptions:
    target_time: str | None = None
    target_lsn: str | None = None
    target_name: str | None = None
    immediate: bool = False
    start: bool = False
    port: int | None = None
    os_user: str = "postgres"
    keep_archiving: bool = False
    respaldo_command: str | None = None
    timeout: float = 3600.0

    def given(self) -> list[str]:
        """The physical-only options that were given (for refusing them elsewhere)."""
        names = {
            "--target-time": self.target_time is not None,
            "--target-lsn": self.target_lsn is not None,
            "--target-name": self.target_name is not None,
            "--immediate": self.immediate,
            "--start": self.start,
            "--port": self.port is not None,
            "--keep-archiving": self.keep_archiving,
            "--respaldo-command": self.respaldo_command is not None,
        }
        return [name for name, set_ in names.items() if set_]

    def recovery_target(self) -> RecoveryTarget:
        when = None
        if self.target_time is not None:
            try:
                when = datetime.fromisoformat(self.target_time.replace("Z", "+00:00"))
            except ValueError:
                raise ConfigError(
                    f"--target-time {self.target_time!r} is not an ISO 8601 time",
                    hint="e.g. 2026-11-28T08:30:00+01:00 or 2026-11-28 07:30:00Z",
                ) from None
        try:
            return RecoveryTarget(when, self.target_lsn, self.target_name, self.immediate)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def restore_other(
    settings: Settings,
    backup_id: str,
    *,
    datadir: Path | None,
    directory: Path | None,
    target_database: str | None,
    pitr: PitrOptions,
) -> None:
    """Restore into a data directory or a plain directory; raises ConfigError for a
    combination of targets and options that does not make sense."""
    targets = [t for t in (datadir, directory, target_database) if t is not None]
    if len(targets) != 1:
        raise ConfigError(
            "give exactly one of --target-database, --target-datadir and --target-dir"
        )
    if directory is not None and pitr.given():
        raise ConfigError(f"{', '.join(pitr.given())} only apply to --target-datadir")
    with progress_bars() as progress:
        context = Context.open(settings, progress)
        try:
            target = directory if directory is not None else datadir
            assert target is not None
            run_now(
                context,
                cli_request(JobKind.RESTORE, str(target), {"backup_id": backup_id}),
                lambda job_ctx: _restore_into(job_ctx, backup_id, directory, datadir, pitr),
                result_id=lambda _: backup_id,
            )
        finally:
            context.close()


def _restore_into(
    context: Context,
    backup_id: str,
    directory: Path | None,
    datadir: Path | None,
    pitr: PitrOptions,
) -> None:
    if directory is not None:
        _files(context, backup_id, directory)
    else:
        assert datadir is not None
        _physical(context, backup_id, datadir, pitr)


def _files(context: Context, backup_id: str, directory: Path) -> None:
    result = restore_files(context, backup_id, directory)
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    err_console.print(
        f"restored {backup_id} into {result.target}: {result.files} files, "
        f"{result.directories} directories, {result.symlinks} links, "
        f"{human_bytes(result.bytes_restored)}, {result.seconds:.1f} s",
        highlight=False,
    )


def _physical(context: Context, backup_id: str, datadir: Path, pitr: PitrOptions) -> None:
    target = pitr.recovery_target()
    result = restore_datadir(
        context,
        backup_id,
        datadir,
        target=target,
        start=pitr.start,
        port=pitr.port,
        os_user=pitr.os_user,
        keep_archiving=pitr.keep_archiving,
        respaldo_command=pitr.respaldo_command,
        timeout=pitr.timeout,
    )
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    err_console.print(
        f"restored {backup_id} into {result.datadir}: {human_bytes(result.bytes_restored)}, "
        f"recovery to {target.describe()}",
        highlight=False,
    )
    for line in result.recovery:
        err_console.print(f"  {escape(line)}", highlight=False)
    if result.started:
        where = f" on port {pitr.port}" if pitr.port is not None else ""
        err_console.print(
            f"the restored server runs{where}, promoted; log: {result.log_file}",
            highlight=False,
        )
    else:
        err_console.print(
            f"start it with: pg_ctl start -D {result.datadir} (it recovers, then promotes)",
            highlight=False,
        )
