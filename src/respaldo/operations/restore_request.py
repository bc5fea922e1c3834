"""``restore``: one entry for the three kinds of restore, chosen by the target.

A logical backup goes into a database (``target_database``), a physical one into a new
data directory (``target_datadir``, with point-in-time recovery), a files backup into an
empty directory (``target_dir``). Every interface fills one :class:`RestoreRequest`;
:func:`restore` checks that its parts fit together and runs the restore.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from respaldo.errors import ConfigError, InvalidInput
from respaldo.operations.context import Context
from respaldo.postgres.datadir import RecoveryTarget

# Each kind of restore is imported when a restore of that kind runs: a one-shot
# ``respaldo restore`` starts a process for one of them (start-up, docs/benchmarks.md).
if TYPE_CHECKING:
    from respaldo.operations.files_restore import FilesRestoreResult
    from respaldo.operations.physical_restore import PhysicalRestoreResult
    from respaldo.operations.restore import RestoreResult

DEFAULT_TIMEOUT = 3600.0
"""Seconds a restore into a data directory with ``start`` waits for recovery to end."""

# The options that only a restore into a data directory takes (and their "not given").
_PHYSICAL_ONLY = {
    "target_time": None,
    "target_lsn": None,
    "target_name": None,
    "immediate": False,
    "start": False,
    "port": None,
    "listen": None,
    "keep_archiving": False,
    "respaldo_command": None,
}

# The options that only a restore of a logical backup takes (and their "not given"): a
# files restore refuses them rather than ignore them (--no-owner would still set owners).
_LOGICAL_ONLY = {
    "database": None,
    "replace": False,
    "drop_old": False,
    "force_system_database": False,
    "jobs": 1,
    "with_globals": False,
    "no_owner": False,
    "work_dir": None,
}


@dataclass(frozen=True)
class RestoreRequest:
    """What to restore where, and how. Exactly one of the three targets is given.

    Raises ConfigError (not exactly one target) or InvalidInput (an option the target
    does not take, a malformed recovery time) when made: nothing can start for a request
    that cannot run.
    """

    backup_id: str
    target_database: str | None = None
    target_datadir: Path | None = None
    target_dir: Path | None = None
    # A logical restore: the configured database whose server receives it (default:
    # the backup's own), swapping an existing database, pg_restore's options.
    database: str | None = None
    replace: bool = False
    drop_old: bool = False
    force_system_database: bool = False
    jobs: int = 1
    with_globals: bool = False
    no_owner: bool = False
    work_dir: Path | None = None
    # Only these tables (schema.table) and schemas, into a new database.
    tables: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()
    # The one repository to read (default: the first that opens, the others as fallbacks).
    repository: str | None = None
    # A physical restore: the recovery target (ISO 8601 time with a zone, LSN, restore
    # point or the end of the backup) and whether to start the restored server.
    target_time: str | None = None
    target_lsn: str | None = None
    target_name: str | None = None
    immediate: bool = False
    start: bool = False
    # Where the restored server listens: 127.0.0.1 and a free port unless given.
    port: int | None = None
    listen: str | None = None
    os_user: str = "postgres"
    keep_archiving: bool = False
    respaldo_command: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        # Checked on construction, so that no job is ever submitted for a request that
        # cannot run: ConfigError unless exactly one target; InvalidInput for an option
        # the target does not take, or a malformed recovery target.
        targets = [
            t for t in (self.target_database, self.target_datadir, self.target_dir) if t is not None
        ]
        if len(targets) != 1:
            raise ConfigError(
                "give exactly one target: a database, a data directory or a directory"
            )
        if self.target_database is None and (self.tables or self.schemas):
            raise InvalidInput(
                "tables" if self.tables else "schemas",
                "only applies to a restore of a logical backup into a database",
            )
        if (self.tables or self.schemas) and self.replace:
            from respaldo.operations.restore import check_partial

            check_partial(self.tables, self.schemas, replace=self.replace)
        if self.target_datadir is None and self.physical_options_given():
            raise InvalidInput(
                self.physical_options_given()[0],
                "only applies to a restore into a data directory",
            )
        if self.target_dir is not None:
            self._check_files_options()
        if self.target_datadir is not None:
            self.recovery_target()
            from respaldo.operations.physical_restore import check_listen, check_port

            if self.listen is not None:
                check_listen(self.listen)
            if self.port is not None:
                check_port(self.port)

    def _check_files_options(self) -> None:
        """InvalidInput for an option a restore into a directory (files) would ignore."""
        logical = [
            f.name
            for f in fields(self)
            if f.name in _LOGICAL_ONLY and getattr(self, f.name) != _LOGICAL_ONLY[f.name]
        ]
        if logical:
            raise InvalidInput(
                logical[0], "only applies to a restore of a logical backup into a database"
            )
        if self.os_user != "postgres":
            raise InvalidInput("os_user", "only applies to a restore into a data directory")

    @property
    def target(self) -> str:
        """The target, as text (the database name or the directory)."""
        return str(self.target_database or self.target_datadir or self.target_dir)

    def physical_options_given(self) -> list[str]:
        """The names of the data-directory-only options that were given."""
        return [
            f.name
            for f in fields(self)
            if f.name in _PHYSICAL_ONLY and getattr(self, f.name) != _PHYSICAL_ONLY[f.name]
        ]

    def recovery_target(self) -> RecoveryTarget:
        """The recovery target. Raises InvalidInput for a time that is not ISO 8601,
        ConfigError for targets that exclude each other."""
        when = None
        if self.target_time is not None:
            try:
                when = datetime.fromisoformat(self.target_time.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidInput(
                    "target_time",
                    f"{self.target_time!r} is not an ISO 8601 time",
                    hint="e.g. 2026-11-28T08:30:00+01:00 or 2026-11-28 07:30:00Z",
                ) from None
            if when.utcoffset() is None:
                # Which zone a bare time is in is not guessed: this machine's, the
                # server's and the installation's may all differ, and an hour of commits
                # depends on it (docs/physical.md).
                raise InvalidInput(
                    "target_time",
                    f"{self.target_time!r} has no UTC offset",
                    hint="add the offset of the time zone it is in at that date, e.g. "
                    "2026-11-28T08:30:00+01:00 (Madrid in winter, +02:00 in summer), "
                    "-06:00 (Mexico City), -05:00 (Bogotá), -03:00 (Santiago in summer), "
                    "or Z for UTC",
                )
        try:
            return RecoveryTarget(when, self.target_lsn, self.target_name, self.immediate)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class RestoreOutcome:
    """The result of the one restore that ran; the other two are None. ``recovery`` is
    the recovery target of a physical restore, described."""

    logical: RestoreResult | None = None
    datadir: PhysicalRestoreResult | None = None
    files: FilesRestoreResult | None = None
    recovery: str | None = None

    @property
    def warnings(self) -> list[str]:
        result = self.logical or self.datadir or self.files
        return list(result.warnings) if result is not None else []


def restore(ctx: Context, request: RestoreRequest) -> RestoreOutcome:
    """Run the restore ``request`` asks for (see the module docstring).

    The request was checked when it was made (see :class:`RestoreRequest`). Raises what
    :func:`~respaldo.operations.restore.restore_backup`,
    :func:`~respaldo.operations.physical_restore.restore_datadir` and
    :func:`~respaldo.operations.files_restore.restore_files` raise.
    """
    r = request
    targets = [t for t in (r.target_database, r.target_datadir, r.target_dir) if t is not None]
    if len(targets) != 1:
        raise ConfigError("give exactly one target: a database, a data directory or a directory")
    if r.target_datadir is None and r.physical_options_given():
        raise InvalidInput(
            r.physical_options_given()[0],
            "only applies to a restore into a data directory",
        )
    if r.target_dir is not None:
        from respaldo.operations.files_restore import restore_files

        return RestoreOutcome(
            files=restore_files(ctx, r.backup_id, r.target_dir, repository=r.repository)
        )
    if r.target_datadir is not None:
        from respaldo.operations.physical_restore import restore_datadir

        target = r.recovery_target()
        result = restore_datadir(
            ctx,
            r.backup_id,
            r.target_datadir,
            target=target,
            start=r.start,
            port=r.port,
            listen=r.listen,
            os_user=r.os_user,
            keep_archiving=r.keep_archiving,
            respaldo_command=r.respaldo_command,
            timeout=r.timeout,
            repository=r.repository,
        )
        return RestoreOutcome(datadir=result, recovery=target.describe())
    assert r.target_database is not None
    from respaldo.operations.restore import restore_backup

    return RestoreOutcome(
        logical=restore_backup(
            ctx,
            r.backup_id,
            r.target_database,
            database=r.database,
            replace=r.replace,
            drop_old=r.drop_old,
            jobs=r.jobs,
            with_globals=r.with_globals,
            no_owner=r.no_owner,
            work_dir=r.work_dir,
            force_system_database=r.force_system_database,
            tables=r.tables,
            schemas=r.schemas,
            repository=r.repository,
        )
    )
