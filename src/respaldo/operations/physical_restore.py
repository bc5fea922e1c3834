"""Restoring a physical backup into a new data directory, with point-in-time recovery.

1. The backup's tar streams from the repository into an empty (or new) directory,
   checked against its ``backup_manifest`` on the way; ownership goes to the server's
   OS user (``postgres``) when respaldo runs as root, and the directory is 0700.
2. Recovery is configured: ``restore_command`` runs ``respaldo wal-fetch`` with this
   config file, the backup's system identifier and the repository the restore reads
   (the first that opens: a mirror when the primary is lost), the recovery target (time, LSN,
   restore point, ``immediate``, or none: all archived WAL) and
   ``recovery_target_action = 'promote'``; ``archive_mode = off`` unless archiving is
   kept (a restored copy must not push its WAL into the original's archive);
   ``listen_addresses`` (``127.0.0.1`` unless asked otherwise) and ``port`` (one free
   when the restore chose it, unless one is given): the backup's own settings would put
   a copy of production data on the network, or on the port of the original running on
   the same host; ``recovery.signal``.
3. With ``start``, the server is started (as its OS user) and watched until recovery
   has reached the target and the server promoted and accepts connections.

A failure in 1 or 2 removes everything written (the directory, if respaldo made it).
A failure in 3 leaves the directory for inspection: the message names its log. Until 2
is complete the directory holds the marker ``respaldo-restore-incomplete`` and its
``PG_VERSION`` is held back under another name, so that PostgreSQL refuses to start on
what a killed restore left; the next restore into it removes that and starts afresh.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shlex
import shutil
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from respaldo.childenv import server_environment
from respaldo.config import Settings
from respaldo.domain import BackupKind, validate_backup_id
from respaldo.errors import (
    BackupNotFound,
    ConfigError,
    InvalidInput,
    PortTaken,
    RecoveryFailed,
    RespaldoError,
    RestoreError,
    ToolNotFound,
    first_line,
    option,
)
from respaldo.operations.context import Context
from respaldo.operations.physical import BASE_STREAM
from respaldo.operations.restore import (
    StreamReader,
    load_manifest_any,
    load_manifest_told,
    open_with_fallbacks,
)
from respaldo.operations.restore_command_access import check_restore_command_files
from respaldo.operations.restore_request import DEFAULT_TIMEOUT
from respaldo.operations.targets import (
    abort_restore,
    begin_restore,
    finish_restore,
    sync_tree,
)
from respaldo.operations.wal_coverage import (
    archived_after,
    check_recovery_target,
    offset_warnings,
)
from respaldo.operations.zone import configured_zone
from respaldo.postgres.basetar import checksums_of
from respaldo.postgres.datadir import (
    NOT_REACHED,
    RECOVERY_LOG,
    Owner,
    RecoveryTarget,
    check_runnable_by,
    combine_backups,
    extract_base_backup,
    find_server_bindir,
    log_size,
    recovery_done,
    recovery_end,
    release_datadir,
    set_port,
    start_server,
    stop_server,
    synchronous_standbys,
    wait_for_recovery,
    write_missing_config,
    write_recovery_config,
)
from respaldo.postgres.toolsets import find_tools
from respaldo.postgres.wal import format_lsn, segment_name
from respaldo.repository import Manifest, Repository

PG_COMBINEBACKUP_LINK = 18
"""The first pg_combinebackup with ``--link``."""
START_LOG = "respaldo-start.log"
"""The log of the command printed to start a restored server (in its data directory)."""
PORT_ATTEMPTS = 3
"""Ports tried, with ``next_port``, before a start whose port was taken each time fails."""
LOCAL_ADDRESS = "127.0.0.1"
"""Where a restored server listens unless asked otherwise: on this machine only (the
drill's scratch server too; the ``pg_hba.conf`` a restore writes when the backup has none
allows it)."""
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def check_listen(listen: str) -> str:
    """``listen`` (``--listen``: addresses or host names separated by commas, or ``*``)
    as ``listen_addresses`` takes it. Raises InvalidInput (field ``listen``) for an entry
    that is none of those: PostgreSQL would refuse to start on it only after the restore
    had written everything. Pure."""
    parts = [part.strip() for part in listen.split(",")]
    for part in parts:
        if part == "*" or _HOST_NAME.match(part):
            continue
        try:
            ipaddress.ip_address(part)
        except ValueError:
            raise InvalidInput(
                "listen",
                f"{part!r} is not an address or host name to listen on",
                hint=f"give IP addresses or host names separated by commas, or '*' for every "
                f"address; without it the restored server listens on {LOCAL_ADDRESS} only",
            ) from None
    return ",".join(parts)


def check_port(port: int) -> int:
    """``port`` if it is a TCP port (1-65535); InvalidInput (field ``port``) if not."""
    if not 1 <= port <= 65535:
        raise InvalidInput(
            "port",
            f"{port} is not a TCP port",
            hint="give a port from 1 to 65535, or none: a free one is chosen",
        )
    return port


def free_port() -> int:
    """A TCP port free on the loopback address now (the kernel's choice). Another
    process may take it before a server binds it: see ``next_port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL_ADDRESS, 0))
        return int(sock.getsockname()[1])


@dataclass
class PhysicalRestoreResult:
    backup_id: str
    datadir: Path
    system_identifier: str
    bytes_restored: int = 0
    seconds: float = 0.0
    settings: dict[str, str] = field(default_factory=dict)
    started: bool = False
    log_file: Path | None = None
    recovery: list[str] = field(default_factory=list)
    """Log lines that tell where recovery stopped and which timeline it chose."""
    warnings: list[str] = field(default_factory=list)
    start_command: str = ""
    """The command that starts the restored server (as its OS user), quoted for a shell."""

    @property
    def listen(self) -> str:
        """Where the restored server listens (or will): ``listen_addresses``."""
        return self.settings.get("listen_addresses", "")

    @property
    def port(self) -> int | None:
        """Its port, if the restore set one."""
        return int(self.settings["port"]) if "port" in self.settings else None


def default_program() -> str:
    """The respaldo executable that a restored server should run for restore_command."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "respaldo" and argv0.is_file():
        return str(argv0.absolute())
    found = shutil.which("respaldo")
    if found is not None:
        return found
    beside = Path(sys.executable).with_name("respaldo")
    if beside.is_file():
        return str(beside)
    raise ConfigError(
        "cannot find the respaldo executable for restore_command",
        hint=f"give it with {option('respaldo_command')} /path/to/respaldo",
    )


def build_restore_command(
    settings: Settings,
    system_id: str,
    program: str | None,
    repository: str | None = None,
    *,
    primary_first: bool = False,
) -> str:
    """``respaldo --config FILE wal-fetch --system-id ID [--repository NAME
    [--primary-first]] %f %p``, quoted for the shell: WAL comes from ``repository`` when
    it is not the primary; with ``primary_first``, from the primary for each file it can
    give (see :func:`respaldo.operations.wal.fetch_wal`)."""
    config = type(settings).toml_path
    if config is None:
        raise ConfigError(
            "restore_command needs the config file, and respaldo was not given one",
            hint="run respaldo with --config FILE (or RESPALDO_CONFIG)",
        )
    source = ""
    if repository is not None and repository != settings.repository().name:
        source = f" --repository {_shell_word(repository)}"
        if primary_first:
            source += " --primary-first"
    return (
        f"{_shell_word(program or default_program())} --config "
        f"{_shell_word(str(config.absolute()))} wal-fetch --system-id {int(system_id)}"
        f"{source} %f %p"
    )


def _shell_word(text: str) -> str:
    """``text`` as one word of restore_command: quoted for the shell, and each ``%``
    written ``%%``, since PostgreSQL replaces %f, %p, %r and %% before the shell runs the
    command (and 16 and later refuse any other ``%x``): a config under ``…/100%fiables/``
    reached wal-fetch as ``…/100<WAL file name>iables/``."""
    return shlex.quote(text).replace("%", "%%")


def _unreachable_parent(path: Path, owner: Owner) -> Path | None:
    """The first parent of ``path`` that ``owner`` cannot enter (by mode bits), if any."""
    for parent in reversed(path.parents):
        if not parent.exists():
            break
        st = parent.stat()
        mode = st.st_mode
        if (
            (st.st_uid == owner.uid and mode & stat.S_IXUSR)
            or (st.st_gid == owner.gid and mode & stat.S_IXGRP)
            or mode & stat.S_IXOTH
        ):
            continue
        return parent
    return None


def _chain_member(
    repo: Repository, fallbacks: list[Repository], backup_id: str, member: str
) -> Manifest:
    try:
        return load_manifest_any(repo, fallbacks, member)
    except BackupNotFound:
        raise RestoreError(
            f"backup {backup_id} is incremental on backup {member}, which is gone",
            hint="restore another backup ('respaldo list'); retention keeps the backups an "
            "incremental needs, so this one was deleted by hand or lost",
        ) from None


def _checksums(manifest: Manifest) -> frozenset[str]:
    """The file checksums to compute while extracting this backup: those its server's
    manifest used (CRC32C; SHA-256 for backups taken before), recorded at backup time."""
    return checksums_of(manifest.meta.get("backup_manifest_checksums"))


def configured_bin_dir(settings: Settings, database: str) -> Path | None:
    """``pg_bin_dir`` of ``database`` if it is configured: a cluster is restored in a
    disaster, where the configuration may well not name it any more."""
    for db in settings.databases:
        if db.name == database:
            return db.pg_bin_dir
    return None


def _mirror_wal_warning(mirror: str, primary: str, error: RespaldoError | None) -> str:
    """Recovery fetches WAL from ``mirror`` for what the primary cannot give (see
    :func:`build_restore_command`): while the primary stays unreachable, recovery to
    'latest' ends at the mirror's last copy, minutes or hours behind the primary's
    archive, and promotes."""
    why = f" ({first_line(error)})" if error is not None else ""
    return (
        f"WAL comes from repository {mirror}: the primary repository {primary} could not be "
        f"opened{why}; recovery tries {primary} first for each WAL file, but while it stays "
        f"unreachable recovery may end before the newest WAL archived in {primary} (at "
        f"{mirror}'s last copy of it); if {primary} is only briefly unreachable, bring it "
        f"back before starting the server"
    )


def _check_recovery_end(
    datadir: Path, archived: int, manifest: Manifest, *, bindir: Path, owner: Owner | None
) -> None:
    """Raise RecoveryFailed (the server stopped) if recovery to the end of the archived
    WAL ended before the last segment archived before it started.

    Archived segments are whole: recovery replays into the last of them at least. One
    that ends earlier met WAL it could not read (a segment damaged before it was
    archived, whose sealed copy authenticates) and took that for the end of the WAL:
    PostgreSQL promotes there, and the copy lacks all that was archived after it, as a
    missing segment would leave it (which is refused before anything is written).
    """
    ended = recovery_end(datadir)
    size = int(manifest.meta["wal_segment_size"])
    if ended is None or ended[1] >= archived - size:
        return
    stop_server(datadir, bindir=bindir, owner=owner)
    tli, lsn = ended
    raise RecoveryFailed(
        f"recovery ended at {format_lsn(lsn)}, in segment {segment_name(tli, lsn, size)}, "
        f"but the WAL archived before the restore began reaches {format_lsn(archived)}: "
        "the server could not read the WAL there and promoted without the rest (the "
        f"log says why: {datadir / RECOVERY_LOG}); it is stopped",
        hint="replace the damaged segment (a mirror's copy, 'respaldo repair --wal', or "
        "wal-push from the server's pg_wal) and restore again, or restore knowingly to a "
        f"target before it (--target-lsn, --immediate); {datadir} is left as the server "
        "stopped: remove it before restoring into it again",
    )


def restore_datadir(
    ctx: Context,
    backup_id: str,
    datadir: Path,
    *,
    target: RecoveryTarget | None = None,
    start: bool = False,
    port: int | None = None,
    os_user: str = "postgres",
    keep_archiving: bool = False,
    respaldo_command: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    repository: str | None = None,
    next_port: Callable[[], int] | None = None,
    server_settings: Mapping[str, str] | None = None,
    listen: str | None = None,
    durable: bool = True,
    throwaway: bool = False,
) -> PhysicalRestoreResult:
    """Restore physical backup ``backup_id`` into ``datadir`` and configure recovery.

    ``repository`` names the one repository to read, the backup and the WAL that
    recovery fetches (default: the first that opens, the others as fallbacks).
    ``server_settings`` go into ``postgresql.auto.conf`` with the recovery settings,
    after ``listen_addresses = listen`` (default :data:`LOCAL_ADDRESS`) and ``port``
    (without it, one free now: :func:`free_port`). With ``next_port`` (or a port chosen
    here), a server that stopped because another process held its port (chosen free a
    moment before) is started again on the port ``next_port`` gives, up to
    :data:`PORT_ATTEMPTS` ports in all; ``settings["port"]`` is the one it got. A port
    given without ``next_port`` is the only one tried. ``durable`` (a restore test's
    throwaway copy says no) has every file fsynced before ``PG_VERSION`` is put in place.
    ``throwaway`` (a restore test's copy): nothing is said of what a server put to use
    needs (its synchronous standbys made again).

    Raises ConfigError (not a physical backup, no config file), BackupNotFound,
    RestoreError (target not empty, unreachable; a recovery target before the backup's
    end, behind a gap in the archived WAL or not archived yet), IntegrityError
    and BaseBackupInvalid (nothing left behind), ToolNotFound (no server of the backup's
    version to start), RecoveryFailed (the server stopped, or recovery took too long;
    PortTaken: its port was taken, on every port tried).
    """
    validate_backup_id(backup_id)
    listen = check_listen(listen) if listen is not None else LOCAL_ADDRESS
    if port is None:
        port = free_port()
        next_port = next_port or free_port
    else:
        check_port(port)
    target = target or RecoveryTarget()
    started = time.monotonic()
    with contextlib.ExitStack() as leases:
        # Shared leases: no garbage collection repacks what is being read.
        unopened: dict[str, RespaldoError] = {}
        repo, fallbacks, warnings = open_with_fallbacks(
            ctx, leases, f"restore of {backup_id}", unopened, only=repository
        )
        # Told as a logical restore tells it: an expired backup whose record waits for
        # a mirror, a failed or unfinished one, a damaged manifest.
        manifest = load_manifest_told(ctx, repo, fallbacks, backup_id)
        if manifest.kind != BackupKind.INCREMENTAL.value:
            raise ConfigError(
                f"backup {backup_id} is a {manifest.kind} backup, not a physical one",
                hint=f"{option('target_datadir')} restores physical (incremental) backups; use "
                f"{option('target_database')} for logical backups and "
                f"{option('target_dir')} for files backups",
            )
        system_id = str(manifest.meta["system_identifier"])
        # A target the archived WAL cannot reach (before the backup's end, behind a gap,
        # not archived yet) is refused before anything is written.
        # A target time follows only the timelines that had begun by then.
        coverage = archived_after(repo, manifest, target.time)
        warnings += check_recovery_target(repo, manifest, target, coverage)
        settings = ctx.settings
        warnings += offset_warnings(target, configured_zone(settings))
        program = respaldo_command or default_program()
        # WAL comes from the repository whose archive was just checked: the first that
        # opens, a mirror when the primary is lost (its WAL copied by copy_wal_to).
        wal_source = ctx.repository_name(repo)
        # A primary that could not be opened now may open while the server recovers: its
        # WAL is then fetched from it, not only what the mirror's last copy holds (which
        # would end recovery, and promote, before the newest WAL). A repository named on
        # purpose is read alone.
        restore_command = build_restore_command(
            settings, system_id, program, wal_source, primary_first=repository is None
        )
        primary = settings.repository().name
        if wal_source is not None and wal_source != primary:
            if repository is None:
                warnings.append(_mirror_wal_warning(wal_source, primary, unopened.get(primary)))
            else:
                warnings.append(
                    f"WAL comes from repository {wal_source}, as asked: recovery ends at its "
                    f"last copy of the archive, which may be before the newest WAL archived "
                    f"in {primary}"
                )
        if settings.passphrase_file is None:
            warnings.append(
                "restore_command runs in the server's environment, where RESPALDO_PASSPHRASE is "
                "probably not set: configure passphrase_file (readable by the server's user)"
            )
        owner = Owner.lookup(os_user) if os.geteuid() == 0 else None
        datadir = datadir.absolute()
        if owner is not None and (blocked := _unreachable_parent(datadir, owner)) is not None:
            raise RestoreError(
                f"{owner.name} cannot reach {datadir}: {blocked} is closed to it",
                hint=f"restore below a directory {owner.name} can enter (chmod o+x {blocked})",
            )
        check_runnable_by(program, owner)
        major = int(manifest.meta["server_version_num"]) // 10000
        configured = configured_bin_dir(settings, manifest.source)
        bindir = find_server_bindir(major, configured) if start else None
        # An incremental backup restores on top of its chain (operations/physical_chain.py).
        chain = [
            _chain_member(repo, fallbacks, backup_id, i) for i in manifest.meta.get("chain", [])
        ]
        # After what the backup itself lacks (a chain's lost parent), which no file
        # permission would mend.
        check_restore_command_files(settings, wal_source, owner)
        combine = (
            find_tools(
                "combine",
                int(manifest.meta["server_version_num"]) // 10000,
                pg_bin_dir=configured_bin_dir(settings, manifest.source),
            )
            if chain
            else None
        )
        # Where the WAL archived before the server starts reaches: recovery to its end
        # must get there (checked once it promoted; WAL archived meanwhile does not count).
        archived = None
        if start and target == RecoveryTarget() and not isinstance(coverage, str):
            archived = coverage.end
        restore_target = begin_restore(datadir, backup_id)
        warnings += restore_target.warnings
        result = PhysicalRestoreResult(backup_id, datadir, system_id, warnings=warnings)
        reader = StreamReader(repo, fallbacks, result.warnings)
        total = sum(m.stream(BASE_STREAM).size for m in [*chain, manifest])

        def pieces(member: Manifest) -> Iterator[bytes]:
            for data in reader.stream(member, BASE_STREAM):
                result.bytes_restored += len(data)
                ctx.progress("restore", result.bytes_restored, total)
                yield data

        try:
            if combine is not None:
                combine_backups(
                    [pieces(m) for m in [*chain, manifest]],
                    datadir,
                    bindir=combine.bindir,
                    owner=owner,
                    link=combine.major >= PG_COMBINEBACKUP_LINK,
                    checksums=[_checksums(m) for m in [*chain, manifest]],
                )
            else:
                extract_base_backup(
                    pieces(manifest), datadir, owner=owner, checksums=_checksums(manifest)
                )
            result.warnings += write_missing_config(datadir, owner=owner)
            if not throwaway:
                # Read before the recovery settings set it empty.
                result.warnings += _standbys_note(synchronous_standbys(datadir))
            result.settings = write_recovery_config(
                datadir,
                restore_command=restore_command,
                target=target,
                timeline="latest" if isinstance(coverage, str) else coverage.timeline,
                port=port,
                archive_off=not keep_archiving,
                owner=owner,
                comment=f"recovery of respaldo backup {backup_id}",
                server_settings={"listen_addresses": listen, **(server_settings or {})},
            )
            # Only a complete directory, on disk, gets its PG_VERSION, then loses its
            # marker: after a power cut a directory PostgreSQL starts on holds every file.
            if durable:
                sync_tree(datadir)
            release_datadir(datadir)
            finish_restore(restore_target)
        except BaseException:
            abort_restore(restore_target)
            raise
        result.start_command = _start_command(datadir, bindir or _bindir(major, configured), owner)
        if bindir is not None:
            env = server_environment(settings, repository=wal_source)
            taken: list[str] = []
            while True:
                since = log_size(datadir)
                result.log_file = start_server(datadir, bindir=bindir, owner=owner, env=env)
                result.started = True
                try:
                    result.recovery = wait_for_recovery(
                        datadir,
                        bindir=bindir,
                        owner=owner,
                        log_file=result.log_file,
                        timeout=timeout,
                        since=since,
                    )
                    break
                except RecoveryFailed as exc:
                    if not isinstance(exc, PortTaken):
                        named = _named_point_missing(exc, target, backup_id, datadir)
                        if named is exc:
                            raise
                        raise named from exc
                    if next_port is None:
                        raise
                    taken.append(result.settings.get("port", "its configured port"))
                    if len(taken) >= PORT_ATTEMPTS:
                        raise PortTaken(
                            f"the restored server in {datadir} could not listen on any of "
                            f"{len(taken)} ports, another process took each one before it "
                            f"started: {', '.join(taken)}. {exc}",
                            hint="run it again; if it fails again, something on this host "
                            "takes free ports at a high rate",
                        ) from exc
                # Nothing of recovery ran yet: the same directory starts on another port.
                port = next_port()
                set_port(datadir, port, owner=owner)
                result.settings["port"] = str(port)
                result.warnings.append(
                    f"port {taken[-1]} was taken before the restored server started: "
                    f"started it again on port {port}"
                )
            if (
                target != RecoveryTarget()
                or result.settings.get("recovery_target_timeline", "latest") != "latest"
            ):
                # Recovery is over: its target and timeline would be a standby's too.
                recovery_done(datadir, owner=owner)
            if archived is not None:
                _check_recovery_end(datadir, archived, manifest, bindir=bindir, owner=owner)
        result.seconds = time.monotonic() - started
        return result


def _standbys_note(names: str) -> list[str]:
    """A warning when the backed-up server waited for synchronous standbys (``names``,
    its ``synchronous_standby_names``): the restored server waits for none, and the
    standbys must be made again. They follow the original: from ahead of where the
    restored server's new timeline begins PostgreSQL refuses to follow it, and none
    connects to the restored server as it is."""
    if not names:
        return []
    literal = "'" + names.replace("'", "''") + "'"
    return [
        f"the backed-up server waited for synchronous standbys (synchronous_standby_names "
        f"= {literal}): the restored server waits for none "
        "(synchronous_standby_names = '' in its postgresql.auto.conf), else every commit "
        "would wait for ever; its standbys follow the original server, not this one. Make "
        "them again from the restored server (pg_basebackup -R), then ALTER SYSTEM SET "
        f"synchronous_standby_names = {literal} and SELECT pg_reload_conf()"
    ]


def _named_point_missing(
    exc: RecoveryFailed, target: RecoveryTarget, backup_id: str, datadir: Path
) -> RecoveryFailed:
    """``exc``, said of a restore point, if recovery to one ended before it was reached:
    PostgreSQL replays every archived segment, finds no restore point of that name, and
    stops. The general reason ("the archived WAL ends before it") and hint (an earlier
    target, pg_switch_wal) sent the user to wait for WAL, while a misspelt name, or one
    created before the backup started (never replayed), can never be reached from it."""
    text = str(exc)
    if target.name is None or NOT_REACHED not in text:
        return exc
    return RecoveryFailed(
        text.replace(
            NOT_REACHED,
            f"recovery ended before the recovery target was reached: no restore point named "
            f"{target.name!r} is in the WAL archived after backup {backup_id}",
            1,
        ),
        hint="check the name (it is matched exactly; the server logs 'restore point "
        '"NAME" created at ...\' when pg_create_restore_point() makes one); one created '
        "before the backup started is never replayed: restore a backup taken before it "
        "('respaldo list'); if it is still to be archived, run SELECT pg_switch_wal() on "
        f"the server and wait until it is archived ('respaldo check'); {datadir} is left "
        "as the server stopped: remove it before restoring into it again",
    )


def _bindir(major: int, configured: Path | None) -> Path | None:
    """The server's programs for the command a user starts it with, if installed here (a
    restore without ``start`` needs none: the directory may be for another machine)."""
    try:
        return find_server_bindir(major, configured)
    except ToolNotFound:
        return None


def _start_command(datadir: Path, bindir: Path | None, owner: Owner | None) -> str:
    """``pg_ctl start -D DATADIR -l DATADIR/START_LOG`` as its user runs it: pg_ctl refuses
    to run as root, Debian's pg_ctl is not on the PATH (its directory is named when
    known), and without a log file the server would write its log to the terminal it was
    started from. The log goes where pg_ctl can create it (a directory of the data
    directory would have to be made now, and the restored directory would no longer pass
    ``pg_verifybackup``)."""
    pg_ctl = str(bindir / "pg_ctl") if bindir is not None else "pg_ctl"
    argv = [pg_ctl, "start", "-D", str(datadir), "-l", str(datadir / START_LOG)]
    if owner is not None and owner.uid != 0:
        argv = ["runuser", "-u", owner.name, "--", *argv]
    return shlex.join(argv)
