"""Physical backups: ``pg_basebackup`` streamed, checked as it passes, WAL included.

Why ``--format=tar --pgdata=- --wal-method=fetch``: a tar on stdout is the only form
pg_basebackup streams (every other form writes files first, which would need the disk
space of the whole cluster). To stdout it refuses ``--wal-method=stream`` ("cannot stream
write-ahead logs in tar mode to stdout") and clusters with extra tablespaces (one tar
only), so the WAL the backup needs is *fetched*: sent in the same tar (``pg_wal/…``) at
the end of the backup, which keeps the backup self-contained (it restores without any
WAL archive). Fetching needs that WAL still on the server at the end; a busy server could
recycle it meanwhile, so :func:`wal_reservation` holds a *temporary* replication slot
(created with ``immediately_reserve``) for the backup's duration. A temporary slot dies
with the session that made it: respaldo killed mid-backup cannot leave a slot that makes
WAL pile up forever. ``--checkpoint=fast``: without it the backup waits for the next
scheduled checkpoint, which can take many minutes. ``--manifest-checksums=CRC32C``
(:data:`MANIFEST_CHECKSUMS`, PostgreSQL's default): every file is checked against it as
the tar passes, at C speed (the ``crc32c`` module); SHA-256 instead cost a second full
hash pass here and on the server, for damage a CRC finds as well (see :mod:`.basetar`;
the stream keeps its SHA-256 and the chunks their keyed ids). PostgreSQL appends
``backup_manifest`` to a tar written to stdout.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import psycopg

from respaldo.errors import first_line
from respaldo.postgres.basetar import BaseBackupCheck, BaseBackupInfo, TarParser
from respaldo.postgres.commands import PIPE_SIZE as PIPE_SIZE  # its tests read it here
from respaldo.postgres.commands import PasswordMethod, RunningCommand, _start, widen_pipe
from respaldo.postgres.connection import ConnInfo, scrub
from respaldo.postgres.server import Connection, connect
from respaldo.postgres.wal import parse_lsn

log = logging.getLogger(__name__)

READ_SIZE = 1024 * 1024
MANIFEST_CHECKSUMS = "CRC32C"
"""The file checksums pg_basebackup is asked for, and the one a backup computes."""
# readinto parses straight into buffers of at least this size; a smaller one (the end
# of the chunker's block, a caller's small read) gets a piece parsed aside, READ_PIECE.
DIRECT_MIN = 64 * 1024
READ_PIECE = 128 * 1024
# pg_basebackup's stdout pipe is widened to PIPE_SIZE (respaldo.postgres.commands): with
# 64 KiB, pg_basebackup (and the server behind it) stopped whenever this side parsed,
# hashed and chunked a block, so their times added up instead of overlapping.


def pg_basebackup(
    conninfo: ConnInfo,
    *,
    label: str,
    incremental: Path | None = None,
    bindir: Path | str | None = None,
    method: PasswordMethod = "passfile",
) -> RunningCommand:
    """Start ``pg_basebackup`` writing a tar of the whole cluster to stdout.

    ``incremental``: the ``backup_manifest`` of an earlier backup of this cluster; the
    server (PostgreSQL 17+, ``summarize_wal = on``) then sends only the blocks changed
    since it (``INCREMENTAL.*`` files), and the backup restores only through
    ``pg_combinebackup`` with that earlier one.

    The role of ``conninfo`` needs the REPLICATION attribute (or superuser) and a
    ``replication`` line in pg_hba.conf; the database name is ignored. Read ``.stdout``
    to its end (through :class:`BaseBackupReader`), then leave the context, which raises
    PostgresError if pg_basebackup failed (see :func:`basebackup_hint`).
    """
    build = [
        "--pgdata=-",
        "--format=tar",
        "--wal-method=fetch",
        "--checkpoint=fast",
        f"--label={label}",
        f"--manifest-checksums={MANIFEST_CHECKSUMS}",
        "--no-password",
    ]
    if incremental is not None:
        build.append(f"--incremental={incremental}")
    command = _start(
        "pg_basebackup",
        conninfo,
        build,
        bindir=bindir,
        method=method,
        stdin=False,
        stdout="pipe",
    )
    widen_pipe(command.stdout.fileno())
    return command


def incremental_refusal(conninfo: ConnInfo, timeline: int, since_lsn: int) -> str | None:
    """None when the server can take a backup incremental on one that started at
    ``since_lsn`` on ``timeline``; else why not, in words. Needs PostgreSQL 17+.

    ``summarize_wal`` must be on, and the WAL summaries must reach back to that start
    (they begin when summarizing was switched on and are removed after
    ``wal_summary_keep_time``). A role that may not list them gets None: the server
    itself then decides, and says why it refuses. Raises ConnectionFailed, QueryFailed.
    """
    with connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT pg_catalog.current_setting('summarize_wal')").fetchone()
        if row is None or str(row[0]) != "on":
            return "summarize_wal is off on the server"
        try:
            first = conn.execute(
                "SELECT min(start_lsn)::text FROM pg_catalog.pg_available_wal_summaries()"
                " WHERE tli = %s",
                [timeline],
            ).fetchone()
        except psycopg.Error:
            return None
    if first is None or first[0] is None or parse_lsn(str(first[0])) > since_lsn:
        return "the server's WAL summaries do not reach back to the previous backup"
    return None


WAL_REMOVED_HINT = (
    "WAL needed by the backup was removed; raise max_replication_slots or wal_keep_size"
)
REPLICATION_HINT = "grant the backup role REPLICATION (ALTER ROLE … WITH REPLICATION)"


def basebackup_hint(stderr: str, conn: Connection | None = None) -> str | None:
    """What to do about a pg_basebackup failure, from its message; None if unknown.

    The server's part of the message is in its language (lc_messages): the English words
    below are found on an English server only. So with ``conn`` (a session of the same
    role), a role that may not stream is found by asking the server."""
    hint = _hint_from_text(stderr)
    if hint is None and conn is not None and not _may_replicate(conn):
        hint = REPLICATION_HINT
    return hint


def _may_replicate(conn: Connection) -> bool:
    try:
        row = conn.execute(
            "SELECT rolreplication OR rolsuper FROM pg_catalog.pg_roles"
            " WHERE rolname = current_user"
        ).fetchone()
    except psycopg.Error:
        return True  # not known: no hint rather than a wrong one
    return bool(row is None or row[0])


def _hint_from_text(stderr: str) -> str | None:
    text = stderr.lower()
    if "single tablespace" in text or ("tablespace" in text and "stdout" in text):
        return "physical backups of clusters with tablespaces are not supported yet"
    # pg_basebackup makes replication connections only: a pg_hba.conf refusal is of one,
    # whatever the language of the rest ("conexión de replicación").
    if "pg_hba.conf" in text:
        return "allow replication connections in pg_hba.conf; 'respaldo check' shows the line"
    if "superuser or replication role" in text or "permission denied to start wal" in text:
        return REPLICATION_HINT
    if "max_wal_senders" in text or "wal_level" in text:
        return "the server is not set up for physical backups; run 'respaldo check'"
    if _WAL_FILE.search(stderr):
        return WAL_REMOVED_HINT
    return None


# A WAL file's name (timeline, log and segment: 24 hexadecimal digits). In pg_basebackup's
# failure it is the server naming the WAL it could not send at the end ("requested WAL
# segment %s has already been removed", 'could not find WAL file "%s"'), the one part of
# that message the same in every language of the server (lc_messages: "el segmento de WAL
# solicitado %s ya ha sido eliminado"); pg_basebackup itself names none, writing to stdout.
_WAL_FILE = re.compile(r"\b[0-9A-F]{24}\b")


@contextlib.contextmanager
def wal_reservation(conninfo: ConnInfo, conn: Connection | None = None) -> Iterator[str | None]:
    """Hold a temporary physical replication slot reserving WAL from now on.

    Yields the slot's name, or None when the server cannot make one (no free
    ``max_replication_slots``, a role without REPLICATION): the backup then goes on, as
    pg_basebackup alone would, and a warning is logged. The slot is made on ``conn`` (an
    open autocommit connection to ``conninfo``, the caller's, left open: a backup that
    already has one saves a session) or on a connection of its own; it disappears when
    the context exits or this process dies (it belongs to the session). Raises
    ConnectionFailed if the server cannot be reached.
    """
    if conn is None:
        with (
            connect(conninfo, autocommit=True, application_name="respaldo wal reservation") as own,
            wal_reservation(conninfo, own) as slot,
        ):
            yield slot
        return
    name: str | None = f"respaldo_{secrets.token_hex(6)}"
    reason = ""
    try:
        conn.execute(
            "SELECT pg_catalog.pg_create_physical_replication_slot(%s, true, true)", (name,)
        )
    except psycopg.Error as exc:
        reason = scrub(first_line(exc), conninfo.secrets())
        name = None
    if name is None:
        log.warning("cannot reserve WAL for the backup (%s); going on without", reason)
        yield None
        return
    log.debug("reserving WAL with temporary slot %s", name)
    try:
        yield name
    finally:
        # The session may outlive the context: the slot goes now. Should this fail
        # (the connection broke), the session's end drops the temporary slot anyway.
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_catalog.pg_drop_replication_slot(%s)", (name,))


class BaseBackupReader:
    """pg_basebackup's stdout for the chunker, parsed and checked as it passes.

    Offers ``read`` and ``readinto`` (what the chunker uses). With ``zero_stale_wal``
    (the default) stale pages of recycled WAL segments are zeroed on the way (see
    :mod:`.basetar`). After the stream's end, :meth:`finish` checks the backup against
    its manifest and returns what it says; ``checksums`` are the file checksum
    algorithms computed for that (what :func:`pg_basebackup` asks the server for).

    ``readinto`` reads the pipe straight into the caller's buffer and parses it there
    (stale WAL zeroed in place): no bytes object per read and no copy between the pipe
    and the chunker's block. A new 1 MiB object per read, copied twice, cost 30 ms of
    CPU (page faults and copies) for a 70 MiB stream, a quarter of this reader's time.
    The parser may stop short of the end of what was read (a header not whole yet);
    those few bytes are held back and go first into the next buffer.
    """

    def __init__(
        self,
        raw: IO[bytes],
        *,
        zero_stale_wal: bool = True,
        checksums: frozenset[str] = frozenset([MANIFEST_CHECKSUMS]),
    ) -> None:
        self._raw = raw
        self.check = BaseBackupCheck(checksums)
        self.parser = TarParser(self.check, zero_stale_wal=zero_stale_wal)
        self._held = b""  # read, not yet parsed: fewer bytes than a tar or page header
        self._ready = memoryview(b"")  # parsed, not yet handed out (small buffers only)
        self._eof = False
        self.bytes_read = 0

    def _read_raw(self, dest: memoryview) -> int:
        """Fill ``dest`` from the pipe, as far as one read goes; 0 at its end. A source
        without a working ``readinto`` (one with ``read`` alone) is read and copied."""
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            try:
                return int(readinto(dest) or 0)
            except NotImplementedError:  # io.RawIOBase's, for a class that has read() only
                pass
        data = self._raw.read(len(dest))
        dest[: len(data)] = data
        return len(data)

    def _parse_into(self, dest: memoryview) -> int:
        """Fill the start of ``dest`` with parsed bytes (held ones first); how many, 0 at
        the end. ``dest`` must hold more than a tar header and a WAL page header."""
        held = len(self._held)
        dest[:held] = self._held
        self._held = b""
        filled, consumed = held, 0
        while not self._eof:
            got = self._read_raw(dest[filled:])
            if got == 0:
                self._eof = True
                break
            filled += got
            consumed += self.parser.feed(dest[consumed:filled])
            if consumed or filled == len(dest):
                break
        if self._eof:
            self.parser.feed(dest[consumed:filled], final=True)
            consumed = filled  # a truncated tail passes on; finish() reports it
        self._held = bytes(dest[consumed:filled])
        return consumed

    def readinto(self, dest: memoryview | bytearray) -> int:
        view = memoryview(dest).cast("B")
        if not self._ready and len(view) >= DIRECT_MIN:
            done = self._parse_into(view)
        else:  # a small buffer: parse a piece of the stream aside, hand it out in parts
            if not self._ready and not (self._eof and not self._held):
                piece = memoryview(bytearray(READ_PIECE))
                self._ready = piece[: self._parse_into(piece)]
            done = min(len(view), len(self._ready))
            view[:done] = self._ready[:done]
            self._ready = self._ready[done:]
        self.bytes_read += done
        return done

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(READ_SIZE):
                parts.append(chunk)
            return b"".join(parts)
        buf = bytearray(size)
        n = self.readinto(buf)
        return bytes(buf[:n])

    def finish(self) -> BaseBackupInfo:
        """Check the whole backup; raises BaseBackupInvalid. Call after the last read."""
        self.parser.close()
        return self.check.result(wal_zeroed=self.parser.wal_zeroed)
