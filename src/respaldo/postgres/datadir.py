"""A data directory from a base backup: extract it, configure recovery, start it.

Extraction (:func:`extract_base_backup`) writes the tar of a base backup into an empty
directory as it streams past, checking it against its ``backup_manifest`` on the way
(the same :class:`~respaldo.postgres.basetar.BaseBackupCheck` as at backup time). Member
names are checked (no absolute paths, no ``..``), files are created with ``O_EXCL`` and
``O_NOFOLLOW`` and links are never created, so nothing lands outside the directory.

Recovery (:func:`write_recovery_config`) is configured the way ``pg_basebackup -R``
does it: settings appended to ``postgresql.auto.conf`` (read after
``postgresql.conf``, so they win) and an empty ``recovery.signal``. The restored server
fetches WAL with ``restore_command`` until the recovery target, then promotes
(``recovery_target_action = 'promote'``).

:func:`start_server` and :func:`wait_for_recovery` run ``pg_ctl`` (as the server's OS
user when we are root: the server refuses to run as root) and watch the data directory:
recovery is over when the server has removed ``recovery.signal`` and reports itself
ready in ``postmaster.pid``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from respaldo.childenv import base_environment, english_messages
from respaldo.errors import (
    InvalidWalFile,
    PortTaken,
    PostgresError,
    RecoveryFailed,
    RestoreError,
    UnsafePath,
)
from respaldo.postgres.basetar import (
    CHECKSUMS,
    BaseBackupCheck,
    BaseBackupInfo,
    TarMember,
    TarParser,
    Tee,
)
from respaldo.postgres.toolsets import find_tools
from respaldo.postgres.wal import RECOVERY_TARGETS, parse_timeline_history

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
RECOVERY_LOG = Path("log") / "respaldo-recovery.log"
ENGLISH_LOG = "-c lc_messages=C"
"""The server option (``pg_ctl -o``) of the starts respaldo reads the log of."""
HELD_BACK = "PG_VERSION"
HELD_BACK_AS = "PG_VERSION.respaldo-incomplete"
"""``PG_VERSION`` is written under another name until the restore is complete: without
it, PostgreSQL refuses to start on the directory ("File "PG_VERSION" is missing"), so a
half-written data directory left by a killed restore can never be started by mistake."""
DB_IN_PRODUCTION = 6
"""``DBState`` in pg_control (after system identifier, pg_control and catalog versions)."""


@dataclass(frozen=True)
class Owner:
    """The OS user that will own the files and run the server."""

    name: str
    uid: int
    gid: int

    @classmethod
    def lookup(cls, name: str) -> Owner:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise RestoreError(
                f"OS user {name!r} does not exist",
                hint="give the user the server runs as with --os-user",
            ) from None
        return cls(name, entry.pw_uid, entry.pw_gid)


class DatadirWriter:
    """A :class:`~respaldo.postgres.basetar.TarHandler` that writes members below ``root``."""

    def __init__(self, root: Path, owner: Owner | None) -> None:
        self.root = root
        self.owner = owner
        self._fd: int | None = None
        self._dirs: list[tuple[Path, TarMember]] = []

    def _path(self, member: TarMember) -> Path:
        if member.name == HELD_BACK:
            return self.root / HELD_BACK_AS
        # Names were normalised and checked by the parser; this is a second fence.
        path = self.root.joinpath(*member.name.split("/"))
        if os.path.commonpath([self.root, path]) != str(self.root) or path == self.root:
            raise UnsafePath(f"member {member.name!r} would be written outside {self.root}")
        return path

    def begin(self, member: TarMember) -> None:
        path = self._path(member)
        if member.kind == "symlink":
            raise UnsafePath(
                f"{member.name} is a link (a tablespace?): links are never restored",
                hint="physical backups of clusters with tablespaces are not supported",
            )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if member.kind == "dir":
            path.mkdir(mode=0o700, exist_ok=True)
            self._dirs.append((path, member))
            return
        self._fd = os.open(path, _FLAGS, 0o600)

    def data(self, member: TarMember, view: memoryview) -> None:
        assert self._fd is not None
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def end(self, member: TarMember) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.fchmod(fd, member.mode & 0o777)
            os.utime(fd, (member.mtime, member.mtime))
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Directory modes and times (after their contents), then ownership of everything."""
        for path, member in reversed(self._dirs):
            path.chmod(member.mode & 0o777)
            os.utime(path, (member.mtime, member.mtime))
        # PostgreSQL refuses a data directory that others can enter.
        self.root.chmod(0o700)
        if self.owner is not None:
            chown_tree(self.root, self.owner)

    def abort(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def chown_tree(root: Path, owner: Owner) -> None:
    os.lchown(root, owner.uid, owner.gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.lchown(Path(dirpath, name), owner.uid, owner.gid)


def extract_base_backup(
    pieces: Iterable[bytes],
    target: Path,
    *,
    owner: Owner | None,
    checksums: frozenset[str] = frozenset(CHECKSUMS),
) -> BaseBackupInfo:
    """Write the base backup whose tar is ``pieces`` into the empty directory ``target``.

    Checks it against its manifest as it goes, computing the file checksums
    ``checksums`` (what the backup recorded: :func:`~respaldo.postgres.basetar.checksums_of`);
    raises BaseBackupInvalid or UnsafePath (the caller removes what was written).
    Ownership goes to ``owner`` when given. ``PG_VERSION`` is held back
    (:data:`HELD_BACK_AS`) until :func:`release_datadir`.
    """
    check = BaseBackupCheck(checksums)
    writer = DatadirWriter(target, owner)
    parser = TarParser(Tee(check, writer))
    pending = b""
    try:
        for piece in pieces:
            buf = pending + piece if pending else piece
            consumed = parser.feed(buf)
            pending = buf[consumed:]
        parser.feed(pending, final=True)
        parser.close()
    finally:
        writer.abort()
    info = check.result()
    writer.finish()
    return info


COMBINE_DIR = ".respaldo-combine"
"""Below the target of a restore of an incremental backup: the chain's backups, each
extracted, and what pg_combinebackup makes of them, until it is moved into place."""


def combine_backups(
    chain: Sequence[Iterable[bytes]],
    target: Path,
    *,
    bindir: Path,
    owner: Owner | None,
    link: bool = False,
    checksums: Sequence[frozenset[str]] = (),
) -> BaseBackupInfo:
    """Restore a chain of base backups into the empty directory ``target``.

    ``chain`` is the tar of each backup, oldest first: a full backup, then each
    incremental on the one before. Each is extracted and checked against its manifest
    (as :func:`extract_base_backup` does) into a directory below ``target``, then
    ``pg_combinebackup`` (of ``bindir``, run as ``owner``) writes the combined data
    directory, which is moved into ``target``, ``PG_VERSION`` held back as there. The
    extracted copies are removed. ``link`` (pg_combinebackup 18+) hard-links the files it
    takes whole from the extracted backups instead of copying them: they are on the same
    file system, and removed right after. Raises BaseBackupInvalid, UnsafePath, PostgresError
    (pg_combinebackup refused: its message says why); the caller removes what was
    written. Returns what the last backup's manifest says. ``checksums``: the file
    checksums to compute for each backup of the chain, as for :func:`extract_base_backup`
    (all of them for a backup not listed).
    """
    work = target / COMBINE_DIR
    work.mkdir(mode=0o700)
    if owner is not None:
        # pg_combinebackup runs as the server's user: it must enter and write here.
        os.chown(target, owner.uid, owner.gid)
        os.chown(work, owner.uid, owner.gid)
    inputs: list[Path] = []
    info: BaseBackupInfo | None = None
    for number, pieces in enumerate(chain):
        directory = work / f"{number:03d}"
        directory.mkdir(mode=0o700)
        computed = checksums[number] if number < len(checksums) else frozenset(CHECKSUMS)
        info = extract_base_backup(pieces, directory, owner=owner, checksums=computed)
        release_datadir(directory)
        inputs.append(directory)
    if info is None:
        raise ValueError("an empty chain of backups")
    combined = work / "combined"
    argv = [str(bindir / "pg_combinebackup"), *map(str, inputs), f"--output={combined}"]
    if link:
        argv.append("--link")
    # It runs as the server's user, who may read its /proc/PID/environ: it reads and
    # writes files only, and needs none of respaldo's passphrase, passwords or keys.
    env = base_environment()
    english_messages(env)  # its refusal becomes the error respaldo reports
    done = subprocess.run(
        _as_owner(argv, owner), capture_output=True, text=True, check=False, cwd="/", env=env
    )
    if done.returncode != 0:
        raise PostgresError("pg_combinebackup", done.returncode, done.stderr)
    for entry in combined.iterdir():
        entry.rename(target / (HELD_BACK_AS if entry.name == HELD_BACK else entry.name))
    shutil.rmtree(work)
    target.chmod(0o700)
    return info


def release_datadir(target: Path) -> None:
    """Put ``PG_VERSION`` in place: from now on PostgreSQL will start on ``target``.

    Call it when everything else has been written; the rename is made durable.
    """
    (target / HELD_BACK_AS).replace(target / HELD_BACK)
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- recovery configuration ----------------------------------------------------------------

_LSN = re.compile(r"[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}")


RECOVERY_DEFAULTS = {
    "recovery_target_inclusive": "on",
    "recovery_target_timeline": "latest",
    "recovery_end_command": "",
    "archive_cleanup_command": "",
    "recovery_min_apply_delay": "0",
}
"""What a restore's recovery runs with whatever the backup's configuration says: a target
reached inclusively, the newest timeline followed (what the WAL checks before the start
assume), none of the original's commands (a standby's ``archive_cleanup_command``
would delete WAL from its archive at each restartpoint of the copy's recovery), and no
delay: PostgreSQL honours a delayed standby's ``recovery_min_apply_delay`` in archive
recovery too (and a primary's, set in a configuration it shares with its standbys), so a
restored copy held back each commit younger than the delay and did not promote until it
had passed."""


@dataclass(frozen=True)
class RecoveryTarget:
    """Where recovery stops: at most one of its fields is set; none means "all WAL"."""

    time: datetime | None = None
    lsn: str | None = None
    name: str | None = None
    immediate: bool = False

    def __post_init__(self) -> None:
        given = [self.time is not None, self.lsn is not None, self.name is not None]
        if sum(given) + self.immediate > 1:
            raise ValueError("give at most one recovery target")
        if self.time is not None and self.time.utcoffset() is None:
            raise ValueError("the recovery target time needs a time zone (e.g. +00:00 or Z)")
        if self.lsn is not None and not _LSN.fullmatch(self.lsn):
            raise ValueError(f"{self.lsn!r} is not an LSN (like 0/1A2B3C4D)")
        if self.name is not None and not 0 < len(self.name) < 64:
            raise ValueError("a restore point name is 1 to 63 characters")

    def settings(self) -> dict[str, str]:
        if self.time is not None:
            return {"recovery_target_time": self.time.isoformat(sep=" ")}
        if self.lsn is not None:
            return {"recovery_target_lsn": self.lsn.upper()}
        if self.name is not None:
            return {"recovery_target_name": self.name}
        if self.immediate:
            return {"recovery_target": "immediate"}
        return {}

    def describe(self) -> str:
        for key, value in self.settings().items():
            return f"{key} = {value}"
        return "the end of the archived WAL"


def quote_setting(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def write_recovery_config(
    datadir: Path,
    *,
    restore_command: str,
    target: RecoveryTarget,
    port: int | None,
    archive_off: bool,
    owner: Owner | None,
    comment: str,
    server_settings: Mapping[str, str] | None = None,
    timeline: str = "latest",
) -> dict[str, str]:
    """Append the recovery settings to ``postgresql.auto.conf`` and create ``recovery.signal``.

    Returns the settings written. ``archive_off`` writes ``archive_mode = off`` so that
    a restored copy does not push its WAL into the original's archive;
    ``server_settings`` are written too (a drill's scratch server: where it listens);
    ``timeline`` is the ``recovery_target_timeline`` (a number where the archive's newest
    timeline does not descend from the backup: PostgreSQL refuses to start on it).
    """
    chosen = target.settings()
    # The backup's own postgresql.auto.conf may hold the recovery settings of an earlier
    # recovery (a server restored to a point in time, then made the primary): its target
    # of another kind made PostgreSQL refuse to start ("multiple recovery targets
    # specified"), and one of the same kind or with no target asked for, stop recovery
    # at that old point. Each is emptied here (and RECOVERY_DEFAULTS set); only the last
    # occurrence of a setting
    # counts, applied in its place, so the one chosen comes after the emptied ones.
    settings = {"restore_command": restore_command} | RECOVERY_DEFAULTS
    settings["recovery_target_timeline"] = timeline
    settings |= {key: "" for key in RECOVERY_TARGETS if key not in chosen}
    settings |= chosen
    settings["recovery_target_action"] = "promote"
    if port is not None:
        settings["port"] = str(port)
    if archive_off:
        settings["archive_mode"] = "off"
    # The original's synchronous standbys follow the original (a standby cannot follow
    # the restored server's new timeline from ahead of its start): a restored server
    # told to wait for them made every commit wait for ever once it was promoted.
    settings["synchronous_standby_names"] = ""
    # A backup of a standby holds its connection to its primary (pg_basebackup -R): with
    # it, and standby.signal below, the restored server streamed from the production
    # primary as one more standby.
    settings["primary_conninfo"] = ""
    settings["primary_slot_name"] = ""
    settings.update(server_settings or {})
    _append_settings(datadir, settings, owner, comment)
    # standby.signal wins over recovery.signal: a backup of a standby restored with it
    # never promoted (it waited for its primary's WAL for ever) and the restore waited an
    # hour for the promotion.
    (datadir / "standby.signal").unlink(missing_ok=True)
    signal = datadir / "recovery.signal"
    signal.touch()
    signal.chmod(0o600)
    if owner is not None:
        os.chown(signal, owner.uid, owner.gid)
    return settings


_SYNCHRONOUS_STANDBYS = re.compile(
    r"^\s*synchronous_standby_names\s*=?\s*(?:'((?:[^']|'')*)'|([^\s#']+))", re.IGNORECASE
)


def synchronous_standbys(datadir: Path) -> str:
    """The ``synchronous_standby_names`` of the configuration restored into ``datadir``
    (empty: none): the last setting of ``postgresql.conf``, then of
    ``postgresql.auto.conf``, which PostgreSQL reads after it (a file it includes is not
    read: this is for saying what the restore changed, not for deciding it)."""
    found = ""
    for name in ("postgresql.conf", "postgresql.auto.conf"):
        try:
            lines = (datadir / name).read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            match = _SYNCHRONOUS_STANDBYS.match(line)
            if match:
                quoted, bare = match.groups()
                found = quoted.replace("''", "'") if quoted is not None else bare
    return found.strip()


def set_port(datadir: Path, port: int, *, owner: Owner | None) -> None:
    """Give the restored server in ``datadir`` another port (the last setting in
    ``postgresql.auto.conf`` wins), for a start again after :class:`PortTaken`."""
    _append_settings(datadir, {"port": str(port)}, owner, "another port: the last was taken")


def recovery_done(datadir: Path, *, owner: Owner | None) -> None:
    """Write PostgreSQL's defaults back after a restore's recovery target and timeline
    (empty targets, ``recovery_target_timeline = 'latest'``), once the server in
    ``datadir`` has promoted.

    ``postgresql.auto.conf`` outlives the recovery, and ``pg_basebackup -R`` copies it
    into a standby made from the restored server: with the target and ``promote`` kept,
    such a standby ended its recovery at once (after ``--immediate``, it promoted itself
    as soon as it was consistent: a second primary); told to follow timeline 1 while the
    server ran on 3, it never became consistent ("unexpected timeline ID 3 in log segment
    …", over and over)."""
    _append_settings(
        datadir,
        {key: "" for key in RECOVERY_TARGETS} | {"recovery_target_timeline": "latest"},
        owner,
        "recovery done: a later recovery (a standby made from this server) has no target "
        "and follows the newest timeline",
    )


def _append_settings(
    datadir: Path, settings: Mapping[str, str], owner: Owner | None, comment: str
) -> None:
    auto = datadir / "postgresql.auto.conf"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"\n# {comment} ({stamp})\n"]
    lines += [f"{key} = {quote_setting(value)}\n" for key, value in settings.items()]
    with auto.open("a", encoding="utf-8") as fh:
        fh.writelines(lines)
    auto.chmod(0o600)
    if owner is not None:
        os.chown(auto, owner.uid, owner.gid)


# A server that keeps its configuration outside its data directory (Debian's and Ubuntu's
# packages: /etc/postgresql/<major>/<cluster>) has none in its base backup, and PostgreSQL
# will not start without postgresql.conf and pg_hba.conf in the restored directory.
_MISSING_CONFIG = {
    "postgresql.conf": (
        "# Written by respaldo: the backup holds no postgresql.conf (the server kept its\n"
        "# configuration outside its data directory). PostgreSQL's defaults apply: copy\n"
        "# the original server's settings in as needed.\n"
        "#\n"
        "# Off for recovery: with hot standby, PostgreSQL stops recovery when a default\n"
        "# (max_connections...) is lower than the original server's setting.\n"
        "hot_standby = off\n"
    ),
    "pg_hba.conf": (
        "# Written by respaldo: the backup holds no pg_hba.conf. Local connections only:\n"
        "# as the OS user of the same name, or with the role's password over loopback.\n"
        "local all all peer\n"
        "host all all 127.0.0.1/32 md5\n"
        "host all all ::1/128 md5\n"
    ),
    "pg_ident.conf": "# Written by respaldo: the backup holds no pg_ident.conf.\n",
}


def write_missing_config(datadir: Path, *, owner: Owner | None) -> list[str]:
    """Write a minimal ``postgresql.conf``, ``pg_hba.conf`` and ``pg_ident.conf`` into a
    restored ``datadir`` whose backup holds no ``postgresql.conf``; returns a warning
    saying so (none when the backup had its own configuration)."""
    if (datadir / "postgresql.conf").exists():
        return []
    written = []
    for name, text in _MISSING_CONFIG.items():
        path = datadir / name
        if path.exists():
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if owner is not None:
            os.chown(path, owner.uid, owner.gid)
        written.append(name)
    return [
        f"the backup holds no postgresql.conf (the server kept its configuration outside "
        f"its data directory, as Debian's packages do): wrote {', '.join(written)} into "
        f"{datadir} with PostgreSQL's defaults and local connections only; copy the "
        "original server's configuration in before using the restored server for more"
    ]


def recovery_end(datadir: Path) -> tuple[int, int] | None:
    """(timeline, LSN) where the recovery of a promoted ``datadir`` ended: the last line
    of its newest timeline's history file, which PostgreSQL writes at the promotion.
    None when there is none to read."""
    newest: tuple[int, Path] | None = None
    with contextlib.suppress(OSError):
        for path in (datadir / "pg_wal").glob("*.history"):
            with contextlib.suppress(ValueError):
                tli = int(path.name.split(".")[0], 16)
                if newest is None or tli > newest[0]:
                    newest = (tli, path)
    if newest is None:
        return None
    try:
        entries = parse_timeline_history(newest[1].read_text(errors="replace"))
    except (OSError, InvalidWalFile):
        return None
    return entries[-1] if entries else None


# --- starting it -----------------------------------------------------------------------------


def find_server_bindir(major: int, configured: Path | str | None = None) -> Path:
    """The directory of ``postgres`` and ``pg_ctl`` of PostgreSQL ``major``.

    A data directory only starts with the server of its own major version: ``configured``
    (a database's ``pg_bin_dir``) if given, else the system's installations or the
    ``respaldo[pg18]`` extra (see respaldo.postgres.toolsets). Raises ToolNotFound naming
    the package to install.
    """
    return find_tools("server", major, pg_bin_dir=configured).bindir


def _as_owner(argv: Sequence[str], owner: Owner | None) -> list[str]:
    if owner is not None and os.geteuid() == 0 and owner.uid != 0:
        return ["runuser", "-u", owner.name, "--", *argv]
    return list(argv)


def check_runnable_by(program: str, owner: Owner | None) -> None:
    """Raise RestoreError unless ``owner`` can run ``program`` (``PROGRAM --help``).

    The server runs ``restore_command`` as its own OS user; a respaldo it cannot execute
    (a virtual environment under root's home, say) makes every fetch fail, and the server
    then reports only that WAL is missing. Asked before anything is written.
    """
    if owner is None or os.geteuid() != 0 or owner.uid == 0:
        return
    try:
        done = subprocess.run(
            _as_owner([program, "--help"], owner),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=base_environment(),  # a probe: no passphrase, no password
        )
    except (OSError, subprocess.SubprocessError) as exc:
        reason = str(exc)
    else:
        if done.returncode == 0:
            return
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {done.returncode}"
    raise RestoreError(
        f"restore_command is not executable by {owner.name}: {program}: {reason}",
        hint=f"install respaldo for the whole machine (make install, docs/install.md), or give "
        f"--respaldo-command with a respaldo that {owner.name} can run",
    )


def start_server(
    datadir: Path, *, bindir: Path, owner: Owner | None, env: Mapping[str, str]
) -> Path:
    """``pg_ctl start`` without waiting; returns the log file. Raises RecoveryFailed.

    ``env`` is all the environment the server gets (and keeps for as long as it runs,
    handing it to its own children): build it with
    :func:`respaldo.childenv.server_environment`, never pass respaldo's own.
    """
    log_file = datadir / RECOVERY_LOG
    log_file.parent.mkdir(mode=0o700, exist_ok=True)
    log_file.touch(mode=0o600)
    if owner is not None:
        os.chown(log_file.parent, owner.uid, owner.gid)
        os.chown(log_file, owner.uid, owner.gid)
    # respaldo reads this log (where recovery stopped, why it failed, a taken port) in
    # PostgreSQL's English; the restored configuration may log in another language
    # (lc_messages = 'es_ES.UTF-8'), which is kept: an option of this start overrides it
    # until the server is started again by anything else (pg_ctl restart excepted: it
    # reuses these options from postmaster.opts).
    argv = [str(bindir / "pg_ctl"), "start", "-D", str(datadir), "-l", str(log_file), "-W"]
    argv += ["-o", ENGLISH_LOG]
    done = subprocess.run(
        _as_owner(argv, owner),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(env),
    )
    if done.returncode != 0:
        raise RecoveryFailed(
            f"pg_ctl start failed (exit {done.returncode}): "
            f"{(done.stderr or done.stdout).strip()}{_log_tail(log_file)}"
        )
    return log_file


def log_size(datadir: Path) -> int:
    """How long the restored server's log is now: what a start writes comes after it
    (:func:`wait_for_recovery`'s ``since``; a start again appends to the same log)."""
    try:
        return (datadir / RECOVERY_LOG).stat().st_size
    except FileNotFoundError:
        return 0


# PostgreSQL's log (in English: ENGLISH_LOG) when the port is held on every address it
# was to listen on: a LOG line per address, then this FATAL. An address that binds while
# another does not is only a warning, and the server runs: that is no taken port for us.
_BIND_REFUSED = re.compile(r'LOG:  could not bind \S+ address "[^"]*": Address already in use')
_NO_SOCKETS = "FATAL:  could not create any TCP/IP sockets"
# The port's Unix socket held by another server (the original, in the same socket
# directory), once some TCP address did bind: the port is taken all the same.
_SOCKET_LOCKED = re.compile(r'FATAL:  (lock file "[^"]*\.s\.PGSQL\.\d+\.lock" already exists)')


def _port_taken(log_file: Path, since: int) -> str | None:
    """The log's line saying the port was taken, written after offset ``since``, if the
    server stopped for it."""
    try:
        with log_file.open("rb") as fh:
            fh.seek(since)
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    locked = _SOCKET_LOCKED.search(text)
    if locked is not None:
        return locked.group(1)
    if _NO_SOCKETS not in text:
        return None
    found = _BIND_REFUSED.search(text)
    return found.group(0).removeprefix("LOG:  ") if found else None


# The postmaster's banner, logged (in English: ENGLISH_LOG) once it has created
# postmaster.pid: with it in this start's log, a missing postmaster.pid means stopped.
_BANNER = "LOG:  starting PostgreSQL "


def _started(log_file: Path, since: int) -> bool:
    """True if this start's postmaster (the log after offset ``since``) got as far as
    its start banner, i.e. postmaster.pid has existed."""
    try:
        with log_file.open("rb") as fh:
            fh.seek(since)
            return _BANNER in fh.read().decode(errors="replace")
    except OSError:
        return False


# What the shell and PostgreSQL log when restore_command's program cannot be run at all
# (exit status 126 or 127, which PostgreSQL treats as fatal).
_UNRUNNABLE = re.compile(r"Permission denied|not found|not executable|No such file")


def _unrunnable_restore_command(log_file: Path) -> str | None:
    """The log line saying restore_command's program could not be run, if there is one."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if _UNRUNNABLE.search(line) and ("sh:" in line or "restore_command" in line):
            return line.strip()
    return None


def _log_tail(log_file: Path, lines: int = 8) -> str:
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return ""
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return ("\n--- end of " + str(log_file) + " ---\n" + "\n".join(tail)) if tail else ""


def _postmaster_status(datadir: Path) -> str | None:
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    return lines[7].strip() if len(lines) > 7 else ""


def _in_production(datadir: Path) -> bool:
    """True once pg_control says the cluster runs normally (recovery over, promoted)."""
    if (datadir / "recovery.signal").exists():
        return False
    try:
        with (datadir / "global" / "pg_control").open("rb") as fh:
            head = fh.read(20)
    except OSError:
        return False
    return len(head) == 20 and struct.unpack_from("<i", head, 16)[0] == DB_IN_PRODUCTION


def _running(datadir: Path, bindir: Path, owner: Owner | None) -> bool:
    argv = [str(bindir / "pg_ctl"), "status", "-D", str(datadir)]
    # pg_ctl status and stop start nothing: they need no more than the base.
    done = subprocess.run(
        _as_owner(argv, owner),
        capture_output=True,
        timeout=30,
        check=False,
        env=base_environment(),
    )
    return done.returncode == 0


def wait_for_recovery(
    datadir: Path,
    *,
    bindir: Path,
    owner: Owner | None,
    log_file: Path,
    timeout: float,
    poll: float = 0.3,
    since: int = 0,
) -> list[str]:
    """Wait until the started server has finished recovery, promoted, and accepts
    connections; return the log lines that tell where recovery stopped.

    Raises RecoveryFailed (with the end of the log) if the server stops meanwhile (a
    recovery target it cannot reach is fatal from PostgreSQL 13 on), or is still
    recovering after ``timeout`` seconds (it is left running then); PortTaken if it
    stopped because another process held its port (the log after offset ``since``, where
    this start's lines begin, says so).
    """
    deadline = time.monotonic() + timeout
    # pg_ctl start -W returns before the server has written postmaster.pid: its absence
    # means "not yet" until it has been seen once, and "stopped" after that. A server
    # whose first restore_command fails can start and stop between two looks: its start
    # banner in this start's log (written after postmaster.pid) tells that it has been
    # there, instead of waiting out the grace (a minute more for every such failure).
    seen = False
    grace = time.monotonic() + 60
    while True:
        status = _postmaster_status(datadir)
        seen = seen or status is not None or _started(log_file, since)
        # "ready" alone is no proof: a hot standby accepts (read-only) connections too.
        if status == "ready" and _in_production(datadir):
            return _recovery_lines(log_file)
        # A taken port stops the server before it may ever have been seen running: its
        # log says so at once, no need to wait out the grace.
        taken = _port_taken(log_file, since) if status is None else None
        if (
            status is None
            and (seen or taken is not None or time.monotonic() > grace)
            and not _running(datadir, bindir, owner)
        ):
            if taken is not None:
                raise PortTaken(
                    f"the restored server in {datadir} could not listen: {taken}"
                    + _log_tail(log_file, 12),
                    hint="another process took the port: start it on another (--port)",
                )
            unrunnable = _unrunnable_restore_command(log_file)
            if unrunnable:
                reason = f": restore_command could not be run ({unrunnable})"
                hint = (
                    "make respaldo executable by the server's user (make install, docs/install.md)"
                )
            else:
                reason, hint = _why_recovery_stopped(log_file)
            raise RecoveryFailed(
                f"the restored server in {datadir} stopped during recovery{reason}"
                + _log_tail(log_file, 12),
                hint=f"{hint}; {datadir} is left as the server stopped: remove it before "
                "restoring into it again",
            )
        if time.monotonic() > deadline:
            raise RecoveryFailed(
                f"the restored server in {datadir} is still recovering after {timeout:.0f} s "
                "(it keeps running)" + _log_tail(log_file),
            )
        time.sleep(poll)


NOT_REACHED = (
    "recovery ended before the recovery target was reached (the archived WAL ends before it)"
)
"""What a restore says when PostgreSQL replayed every archived segment without reaching
its target (a restore point's restore says more: operations.physical_restore)."""

# PostgreSQL's FATAL messages that end a recovery, and what they mean for a restore.
_STOPPED = {
    "recovery ended before configured recovery target was reached": (
        f": {NOT_REACHED}",
        "choose an earlier target; or, if the WAL is still to be archived, run SELECT "
        "pg_switch_wal() on the server, wait until it is archived ('respaldo check') and "
        "restore again",
    ),
    "requested recovery stop point is before consistent recovery point": (
        ": the recovery target is before the backup's end (its consistent point)",
        "choose a backup that ended before the target ('respaldo list')",
    ),
    # wal-fetch's own refusal (respaldo.operations.wal), in the log as restore_command's.
    "creates a tablespace (CREATE TABLESPACE) in": (
        ": the archived WAL creates a tablespace in a directory that is in use (the log "
        "names both)",
        "physical backups of clusters with tablespaces are not supported: recover to a "
        "target before the tablespace was created, or on a machine where that directory "
        "is empty or missing",
    ),
}


# How respaldo's CLI prints an error (cli/main.py); wal-fetch's go to the server's log.
_FETCH_ERROR = "respaldo: error: "


def _why_recovery_stopped(log_file: Path) -> tuple[str, str]:
    """What the server's log says stopped recovery, and a hint; a general one if nothing."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        text = ""
    for fatal, (reason, hint) in _STOPPED.items():
        if fatal in text:
            return reason, hint
    # respaldo's own error in restore_command (wal-fetch): the server then sees a fetch
    # that failed, and the general hint below blamed the target or missing WAL.
    failed = [line.strip() for line in text.splitlines() if line.startswith(_FETCH_ERROR)]
    if failed:
        return f": its restore_command failed ({failed[-1]})", (
            "the server runs 'respaldo --config FILE wal-fetch' as its own OS user, with "
            "the passphrase and credentials that config names: fix what its error says and "
            "restore again"
        )
    return "", (
        "a recovery target after the end of the archived WAL, or WAL missing from the "
        "archive, are the usual causes"
    )


def _recovery_lines(log_file: Path) -> list[str]:
    keep = (
        "recovery stopping",
        "consistent recovery state",
        "selected new timeline",
        "last completed transaction",
        "archive recovery complete",
    )
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if any(k in line for k in keep)]


def stop_server(datadir: Path, *, bindir: Path, owner: Owner | None, mode: str = "fast") -> None:
    """``pg_ctl stop``; idempotent, never raises (for cleaning up after tests and failures)."""
    if not (datadir / "postmaster.pid").exists():
        return
    argv = [str(bindir / "pg_ctl"), "stop", "-D", str(datadir), "-m", mode, "-w"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            _as_owner(argv, owner),
            capture_output=True,
            timeout=120,
            check=False,
            env=base_environment(),
        )
