"""How far the archived WAL lets a physical backup recover, and targets it cannot reach.

A base backup is consistent only from its end (its stop LSN): a recovery target before
it is refused by PostgreSQL ("requested recovery stop point is before consistent recovery
point"). After it, recovery replays archived segments one after the other and ends at the
first one ``restore_command`` cannot fetch: a segment missing from the archive ends
recovery *there*, and without a target PostgreSQL then promotes a server that lacks
everything after the gap, as though that were all the WAL there is. So before a restore
writes anything, respaldo lists the archive (names only: nothing is read or decrypted)
and refuses what recovery cannot reach (:func:`check_recovery_target`):

- a target LSN before the backup's stop LSN, a target time before the server's start of
  the backup (its backup_label's START TIME, taken just after the checkpoint; commits
  before it are in the backup's files and never replayed). Where the backup became
  consistent is an LSN: a time while it ran is warned about, and PostgreSQL refuses it if
  a commit lies between it and that point;
- recovery to the end of the archived WAL when a segment after the backup is missing and
  later ones are archived (a gap);
- a target LSN beyond the continuous archived WAL (behind a gap, or not archived yet),
  and a target time in the future (later than :data:`CLOCK_SKEW` after this machine's
  clock): no commit can be that late yet, so recovery would replay all the archived WAL
  and stop with "recovery ended before configured recovery target was reached" (a date,
  an offset or the order of day and month typed wrong);
- recovery to the end, or to a target LSN, past the server's switch to ``wal_level =
  minimal`` after the backup (:func:`minimal_switch`, recorded by ``wal-push``), which
  archive recovery refuses to replay.

A target time or restore point cannot be placed in the WAL from names alone: with a gap,
recovery to one of them is only warned about, and PostgreSQL (13 and later) stops with
"recovery ended before configured recovery target was reached" if it lies behind the gap.

Recovery follows the newest timeline (``recovery_target_timeline = 'latest'``): when the
archive holds later timelines of the cluster (a promoted copy archived there), the newest
is found as PostgreSQL finds it (consecutive history files), its history file is read,
and each segment is looked for on the timeline recovery takes it from. A newer timeline
that branched off the backup's history before the backup's end (a copy restored from an
older backup and promoted, while production went on and took this backup) cannot be
followed: PostgreSQL refuses to start on it ("requested timeline 2 is not a child of this
server's history"), so the newest timeline that can be is followed instead
(:attr:`WalCoverage.timeline`, written as ``recovery_target_timeline``; the backup's own
at the least), with a warning naming those passed over. A newest timeline other than the
backup's is warned about, more strongly when an older timeline has WAL archived after the
switch (production kept writing on it while a restored copy was promoted): recovery
replays the copy's branch instead of it. A recovery target time follows a newer timeline
only if it had begun by then (:func:`_begun_by`): before, the history was its parent's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import pairwise

from respaldo.errors import (
    InvalidWalFile,
    ObjectNotFound,
    RespaldoError,
    RestoreError,
    first_line,
    option,
)
from respaldo.operations.zone import offset_warnings as zone_offset_warnings
from respaldo.phrases import N_, Phrase, counted
from respaldo.postgres.datadir import RecoveryTarget
from respaldo.postgres.label_time import parse_label_time
from respaldo.postgres.wal import (
    WalKind,
    format_lsn,
    parse_lsn,
    parse_timeline_history,
    parse_wal_name,
    segment_name,
    segment_start,
)
from respaldo.postgres.wal_records import (
    POSTGRES_EPOCH_UNIX_US,
    continuation,
    timeline_start,
    xact_end_times,
)
from respaldo.repository import Manifest, Repository
from respaldo.repository.wal import get_wal, list_wal, read_cluster


@dataclass(frozen=True)
class WalCoverage:
    """The archived WAL after a backup, along the timelines recovery follows."""

    end: int
    """The LSN up to which WAL is there without a hole: the backup's own (in its tar),
    then the archived segments that follow it one after the other."""
    missing: str | None
    """The first segment missing although a later one is archived (a gap), or None."""
    resumes: str | None
    """The first archived segment after the gap."""
    path: tuple[tuple[int, int], ...] = ()
    """The timelines recovery follows and the LSN where each begins, from the backup's."""
    left: tuple[int, str] | None = None
    """An older timeline of ``path`` that has archived WAL after recovery leaves it for the
    next (its server kept writing on it), and the newest such segment; else None."""
    replayed: tuple[str, ...] = ()
    """The archived segments recovery replays from the backup's end to ``end``, in order
    (their names only were looked at)."""
    passed_over: tuple[tuple[int, str], ...] = ()
    """Newer timelines of the archive recovery cannot follow from this backup, each with
    why (newest first): recovery follows the last timeline of ``path`` instead of the
    newest, which PostgreSQL's ``'latest'`` would take and then refuse to start on."""
    begun_after: tuple[int, datetime] | None = None
    """For a recovery target time: the first timeline after ``path``'s last that recovery
    could follow but that began after the target, and when (its server's clock): at the
    target the history was ``path``'s, which recovery then follows to the target."""
    unsure: str | None = None
    """Why it could not be told whether a timeline began before the target time."""

    @property
    def timeline(self) -> str:
        """The ``recovery_target_timeline`` recovery needs: ``latest`` where that is the
        last timeline of ``path``, else that timeline's number."""
        followed = self.passed_over or self.begun_after
        return str(self.path[-1][0]) if followed and self.path else "latest"


def newest_timeline(names: Sequence[str], timeline: int) -> int:
    """The timeline recovery follows (``recovery_target_timeline = 'latest'``) from a
    backup of ``timeline``: as PostgreSQL finds it, the last of the history files of
    ``timeline`` + 1, + 2, ... that are archived one after the other."""
    histories = {
        int(name[:8], 16)
        for name in names
        if len(name) == 16 and name.endswith(".history") and _is_wal_name(name)
    }
    newest = timeline
    while newest + 1 in histories:
        newest += 1
    return newest


def _is_wal_name(name: str) -> bool:
    try:
        parse_wal_name(name)
    except InvalidWalFile:
        return False
    return True


def timeline_path(history: str, newest: int) -> list[tuple[int, int]]:
    """(timeline, LSN where it begins) from the oldest to ``newest``, from the text of
    ``newest``'s history file (:func:`parse_timeline_history`; InvalidWalFile for a line
    that is not one)."""
    path: list[tuple[int, int]] = []
    begin = 0
    for parent, switch in parse_timeline_history(history):
        path.append((parent, begin))
        begin = switch
    path.append((newest, begin))
    return path


def wal_coverage(
    names: Sequence[str],
    *,
    timeline: int,
    stop_lsn: int,
    segment_size: int,
    path: list[tuple[int, int]] | None = None,
) -> WalCoverage:
    """What the archived WAL files ``names`` (bare file names of one cluster) give a
    backup of ``timeline`` that ended at ``stop_lsn``, following ``path`` (timelines and
    where each begins, oldest first, from ``timeline`` on; default: ``timeline`` alone).
    Each segment is expected on the newest timeline of the path that has begun by its
    start, as PostgreSQL asks for it (the segment of a switch is the new timeline's)."""
    # The backup's own timeline is expected from the start (its segments after the backup).
    path = [(timeline, 0), *(path or [(timeline, 0)])[1:]]
    followed = {tli for tli, _ in path}
    segments: set[tuple[int, int]] = set()
    for name in names:
        try:
            parsed = parse_wal_name(name)
        except InvalidWalFile:
            continue  # not a WAL file: nothing recovery would ask for
        tli = int(parsed.timeline, 16)
        if parsed.kind is WalKind.SEGMENT and tli in followed:
            segments.add((tli, segment_start(name, segment_size) // segment_size))

    def expected(segno: int) -> int:
        return max(tli for tli, begin in path if begin // segment_size <= segno)

    # The backup's tar holds its WAL up to the segment of its last byte, of its own
    # timeline: a switch in that segment makes recovery ask for the new timeline's.
    last = max(stop_lsn - 1, 0) // segment_size

    def name_of(segno: int) -> str:
        return segment_name(expected(segno), segno * segment_size, segment_size)

    number = first = last + 1 if expected(last) == timeline else last
    while (expected(number), number) in segments:
        number += 1
    beyond = sorted(n for tli, n in segments if n > number and tli == expected(n))

    # A full segment of a timeline that a later one had begun by (the switch's segment on:
    # a promoted server archives its old timeline's last one as .partial) holds WAL
    # written on the old timeline after the switch, which recovery does not replay.
    left = max(((n, tli) for tli, n in segments if tli < expected(n)), default=None)
    return WalCoverage(
        end=max(number * segment_size, stop_lsn),
        missing=name_of(number) if beyond else None,
        resumes=name_of(beyond[0]) if beyond else None,
        path=tuple(path),
        replayed=tuple(name_of(n) for n in range(first, number)),
        left=(
            None
            if left is None
            else (left[1], segment_name(left[1], left[0] * segment_size, segment_size))
        ),
    )


def backup_end_time(manifest: Manifest) -> datetime:
    """When the backup had ended at the latest, on the server's clock (``stop_time``,
    read after pg_basebackup has exited: later than the real end), else when respaldo
    completed it (later still). Not a bound a target time may be refused by."""
    stop = manifest.meta.get("stop_time")
    return datetime.fromisoformat(str(stop)) if stop else manifest.completed_at


def label_start_time(manifest: Manifest) -> datetime | None:
    """When the backup's checkpoint had ended, on the server's clock (the clock commit
    timestamps and so target times are on): the backup_label's ``START TIME``, which the
    server takes just after the checkpoint, or None where it is not recorded or its time
    zone cannot be read without guessing (:func:`parse_label_time`): read in the server's
    ``log_timezone`` where the backup recorded it by a name the tz database has; otherwise
    a reading counts only within the backup's own run on respaldo's clock, give or take
    :data:`CLOCK_SKEW`."""
    window = (manifest.started_at - CLOCK_SKEW, backup_end_time(manifest) + CLOCK_SKEW)
    zone = manifest.meta.get("log_timezone")
    return parse_label_time(
        str(manifest.meta.get("start_time") or ""),
        window,
        zone if isinstance(zone, str) else None,
    )


CLOCK_SKEW = timedelta(minutes=10)
"""How far the server's clock may be from respaldo's for the label's time to be trusted."""


def earliest_target_time(manifest: Manifest) -> tuple[datetime, bool]:
    """The earliest target time recovery of ``manifest`` is not refused for, and whether
    it is on the server's clock (True) or only respaldo's ``started_at`` (False).

    The backup_label's ``START TIME`` is written in whole seconds, so the checkpoint may
    have ended up to a second after what it says: the bound is the end of that second,
    but never later than the backup's end (:func:`backup_end_time`), after which any
    target is valid."""
    label = label_start_time(manifest)
    if label is None:
        return manifest.started_at, False
    return min(label + timedelta(seconds=1), backup_end_time(manifest)), True


def archived_after(
    repo: Repository,
    manifest: Manifest,
    before: datetime | None = None,
    names: Sequence[str] | None = None,
) -> WalCoverage | str:
    """The archived WAL after physical backup ``manifest``, along the timelines recovery
    follows, or why it could not be looked at (an old manifest, a listing or a history
    file that could not be read, a newest timeline that does not descend from the
    backup's). With ``before`` (a recovery target time), only the timelines that had
    begun by then are followed (:func:`_begun_by`). ``names``: the bare file names of the
    backup's cluster's archived WAL, where the caller listed them already (one listing
    for many backups of a cluster); else they are listed here."""
    meta = manifest.meta
    stop_lsn = parse_lsn(str(meta.get("stop_lsn") or "0/0"))
    if not stop_lsn or "wal_segment_size" not in meta:
        return "the backup's manifest does not say where its WAL ends: the archive was not checked"
    system_id = str(meta["system_identifier"])
    timeline = int(meta["timeline"])
    passed_over: list[tuple[int, str]] = []
    try:
        if names is None:
            names = [name.rsplit("/", 1)[-1] for name in list_wal(repo, system_id)]
        # From the newest timeline down to the backup's own: the first whose history
        # holds the backup's end. One that branched off earlier (a copy of an older backup
        # promoted while this backup's server went on) is no child of the backup's history.
        path = [(timeline, 0)]
        for candidate in range(newest_timeline(names, timeline), timeline, -1):
            history = get_wal(repo, system_id, f"{candidate:08X}", f"{candidate:08X}.history")
            found = timeline_path(history.decode("utf-8", "replace"), candidate)
            why = _not_followable(found, timeline, stop_lsn)
            if why is None:
                path = found
                break
            passed_over.append((candidate, why))
    except (RespaldoError, ValueError) as exc:
        return f"could not read the archived WAL's names and history to check it for gaps: {exc}"
    tlis = [tli for tli, _ in path]
    path = path[tlis.index(timeline) :]
    size = int(meta["wal_segment_size"])
    begun_after: tuple[int, datetime] | None = None
    unsure: str | None = None
    if before is not None:
        path, begun_after, unsure = _begun_by(repo, system_id, path, before, size)
    coverage = wal_coverage(
        names, timeline=timeline, stop_lsn=stop_lsn, segment_size=size, path=path
    )
    return replace(coverage, passed_over=tuple(passed_over), begun_after=begun_after, unsure=unsure)


def _begun_by(
    repo: Repository, system_id: str, path: list[tuple[int, int]], when: datetime, size: int
) -> tuple[list[tuple[int, int]], tuple[int, datetime] | None, str | None]:
    """``path`` up to the last timeline that had begun by ``when`` (a recovery target
    time), the first one that had not and when it began, and why that could not be told
    (None when it could).

    A timeline branches off its parent at an LSN, but it begins when its server promotes:
    the parent may have gone on meanwhile, writing WAL after the branch point. After a
    point-in-time recovery (the parent's server stopped, the restored copy promoted and
    archiving as the new primary), a target time between the branch point's commit and
    the promotion is on the parent: 'latest' followed the new timeline instead, whose first
    commit is after the target, and recovery stopped at the branch point, without the
    parent's commits up to the target (and with a target LSN after the branch point, on
    the new timeline's WAL of that LSN). When a timeline began is read from the record its
    promotion wrote first (the end-of-recovery checkpoint), in the segment of the switch."""
    for index, (tli, begin) in enumerate(path[1:], start=1):
        segment = segment_name(tli, begin // size * size, size)
        try:
            data = get_wal(repo, system_id, f"{tli:08X}", segment)
        except ObjectNotFound:
            return path, None, f"{segment}, where timeline {tli} begins, is not archived"
        except RespaldoError as exc:
            return path, None, f"{segment} could not be read ({first_line(exc)})"
        micros = timeline_start(data, tli, begin)
        if micros is None:
            return path, None, f"{segment} holds no record of timeline {tli}'s promotion"
        began = datetime.fromtimestamp(micros / 1_000_000, UTC)
        if began > when:
            return path[:index], (tli, began), None
    return path, None, None


def _not_followable(path: list[tuple[int, int]], timeline: int, stop_lsn: int) -> str | None:
    """Why recovery of a backup of ``timeline`` that ended at ``stop_lsn`` cannot follow
    the timelines ``path`` (:func:`timeline_path`) to their last; None if it can."""
    tlis = [tli for tli, _ in path]
    if timeline not in tlis:
        return f"it does not descend from timeline {timeline}"
    after = tlis.index(timeline) + 1
    if after < len(path) and path[after][1] < stop_lsn:
        return (
            f"timeline {path[after][0]} branched off timeline {timeline} at "
            f"{format_lsn(path[after][1])}, before the backup's end"
        )
    return None


def gap_said(coverage: WalCoverage) -> str:
    """The hole in the archive ``coverage`` found (its first missing segment, the next one
    archived, where recovery stops), as restores, restore tests and verify say it."""
    return (
        f"WAL segment {coverage.missing} is missing from the archive (archived again from "
        f"{coverage.resumes} on): recovery cannot go past {format_lsn(coverage.end)}"
    )


def minimal_switch(
    repo: Repository, manifest: Manifest, coverage: WalCoverage | str | None = None
) -> int | None:
    """The LSN where the server switched to ``wal_level = minimal`` after physical backup
    ``manifest`` ended, as ``wal-push`` recorded it in the cluster record of its database
    (the last such switch archived: after an earlier one too, a backup older than both
    stops at the first); None when there is none, the record is of another cluster, or
    the switch is on a timeline recovery of the backup does not follow there: along
    ``coverage``'s path (:func:`archived_after`) where it is given, else any timeline
    older than the backup's (a point-in-time restore to before the switch, promoted,
    branched off before it). Archive recovery refuses to replay past it."""
    meta = manifest.meta
    try:
        record = read_cluster(repo, manifest.source)
    except RespaldoError:
        return None
    if record is None or record.minimal_wal is None:
        return None
    if record.system_identifier != str(meta.get("system_identifier")):
        return None
    switch = parse_lsn(record.minimal_wal)
    if switch <= parse_lsn(str(meta.get("stop_lsn") or "0/0")):
        return None
    timeline = record.minimal_timeline
    if timeline is None:
        return switch  # not recorded: on every path, as before
    if isinstance(coverage, WalCoverage) and coverage.path:
        return switch if _on_path(coverage.path, timeline, switch) else None
    return switch if timeline >= int(meta.get("timeline") or 1) else None


def _on_path(path: tuple[tuple[int, int], ...], timeline: int, lsn: int) -> bool:
    """Whether recovery along ``path`` (:attr:`WalCoverage.path`) replays ``lsn`` of
    ``timeline``: it follows ``timeline`` from where it begins to where the next begins."""
    for i, (tli, begin) in enumerate(path):
        if tli == timeline:
            end = path[i + 1][1] if i + 1 < len(path) else None
            return begin <= lsn and (end is None or lsn < end)
    return False


def _minimal_said(switch: int, backup_id: str) -> str:
    return (
        f"the server switched to wal_level = minimal at {format_lsn(switch)}, after backup "
        f"{backup_id}: recovery cannot replay past it (PostgreSQL stops there: 'WAL was "
        "generated with wal_level=minimal')"
    )


ReadWal = Callable[[str], str | None]
"""Reads an archived WAL file (by file name) whole, as ``wal-fetch`` gives it to recovery:
None, or a note when it came from another repository than the first. Raises what
``wal-fetch`` raises (a damaged file: IntegrityError)."""


def archive_check(
    repo: Repository, manifest: Manifest, read: ReadWal | None = None
) -> tuple[bool, str, list[str]]:
    """A restore test's verdict on the archived WAL after the backup: False when a
    segment is missing, or the server switched to ``wal_level = minimal`` since, or (with
    ``read``) a segment recovery replays cannot be read whole (point-in-time recovery
    from this backup cannot go past any of them). Returns the verdict, its detail and
    the notes of ``read``. Names alone said "continuous" of an archive holding a
    damaged segment: a drill passed while recovery past that segment failed.

    An archive that could not be looked at (its listing or a history file unreadable, a
    manifest that predates ``stop_lsn``) is False too, saying why: a check that could
    not run proves nothing, and it passed, marking the backup verified, while nothing of
    its WAL had been read."""
    coverage = archived_after(repo, manifest)
    if isinstance(coverage, str):
        return False, coverage, []
    if coverage.missing is not None:
        return False, gap_said(coverage), []
    switch = minimal_switch(repo, manifest, coverage)
    if switch is not None:
        return False, _minimal_said(switch, manifest.backup_id), []
    end = format_lsn(coverage.end)
    if read is None or not coverage.replayed:
        return True, f"continuous from the backup's end to {end}", []
    notes: list[str] = []
    size = int(manifest.meta["wal_segment_size"])
    for name in coverage.replayed:
        try:
            note = read(name)
        except (RespaldoError, OSError) as exc:
            lsn = format_lsn(segment_start(name, size))
            return (
                False,
                f"WAL segment {name} cannot be read ({first_line(exc)}): recovery cannot go "
                f"past {lsn}",
                notes,
            )
        if note is not None:
            notes.append(note)
    count = len(coverage.replayed)
    said = counted(
        count,
        N_("continuous from the backup's end to {lsn}, 1 archived segment read whole"),
        N_("continuous from the backup's end to {lsn}, {count} archived segments read whole"),
        lsn=end,
    )
    return True, said, notes


def check_recovery_target(
    repo: Repository,
    manifest: Manifest,
    target: RecoveryTarget,
    coverage: WalCoverage | str | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Raise RestoreError if recovery of ``manifest`` (a physical backup) cannot reach
    ``target`` with the WAL archived in ``repo``; return warnings. Reads names only, or
    nothing when ``coverage`` (:func:`archived_after`'s answer) is given. ``now``: this
    machine's time (default: the clock's)."""
    backup_id = manifest.backup_id
    meta = manifest.meta
    stop_lsn = parse_lsn(str(meta.get("stop_lsn") or "0/0"))
    if target.lsn is not None and parse_lsn(target.lsn) < stop_lsn:
        raise RestoreError(
            f"the recovery target {target.lsn} is before backup {backup_id} is consistent "
            f"(its end, at LSN {format_lsn(stop_lsn)})",
            hint="choose a backup that ended before the target ('respaldo list'), or a later "
            "target",
        )
    warnings = _target_time_warnings(manifest, target, now or datetime.now(UTC))
    if coverage is None:
        coverage = archived_after(repo, manifest)
    if not isinstance(coverage, str):
        warnings += passed_over_warnings(coverage, backup_id)
    if target.immediate:
        return warnings  # the backup's own WAL suffices
    switch = minimal_switch(repo, manifest, coverage)
    if switch is not None:
        said = _minimal_said(switch, backup_id)
        hint = (
            f"recover to a target before it ({option('target_lsn')} before "
            f"{format_lsn(switch)}, {option('target_time')}, {option('immediate')}), or "
            "restore a physical backup taken after it ('respaldo list')"
        )
        if target.lsn is not None and parse_lsn(target.lsn) >= switch:
            raise RestoreError(
                f"{said}, and the recovery target {target.lsn} is after it", hint=hint
            )
        if target.lsn is None and target.time is None and target.name is None:
            raise RestoreError(
                f"{said}: recovery to the end of the archived WAL would stop there with an error",
                hint=hint,
            )
        if target.lsn is None:
            warnings.append(f"{said}; a target after it stops recovery with an error")
    warnings += _archive_warnings(manifest, target, coverage)
    if target.time is not None and isinstance(coverage, WalCoverage) and not coverage.missing:
        warnings += _after_last_commit(repo, manifest, target.time, coverage)
    return warnings


def newest_xact_end(
    repo: Repository, manifest: Manifest, coverage: WalCoverage
) -> datetime | str | None:
    """The time of the newest commit or abort in the archived WAL recovery of ``manifest``
    replays after the backup's end (``coverage``: :func:`archived_after`), on the server's
    clock; None when it holds none; why not, when a segment could not be read.

    The segments are read from the newest back (through ``wal-fetch``'s reading: decrypted,
    authenticated) and the scan stops at the first that holds such a record: where WAL is
    written, that is the newest (one 16 MiB segment, about 30 ms; a segment with no commit,
    inside one long transaction, about as much)."""
    meta = manifest.meta
    system_id = str(meta["system_identifier"])
    size = int(meta["wal_segment_size"])
    stop_lsn = parse_lsn(str(meta.get("stop_lsn") or "0/0"))
    names = list(coverage.replayed)
    # The segment the backup ended in is read from the archive too (restore_command is
    # asked first): commits after the end in it count.
    stop = segment_name(int(meta["timeline"]), max(stop_lsn - 1, 0) // size * size, size)
    if not names or segment_start(names[0], size) > segment_start(stop, size):
        names.insert(0, stop)
    following: bytes | None = None
    # What continues a record of ``following``'s predecessor past ``following`` itself
    # (a commit record longer than a segment): carried back from segment to segment.
    beyond = b""
    for name in reversed(names):
        try:
            data = get_wal(repo, system_id, name[:8], name)
        except ObjectNotFound:
            if name == stop:
                break  # in the backup's tar only: nothing archived after its end there
            return Phrase(
                N_("archived WAL segment {segment} could not be read: it is missing"),
                segment=name,
            )
        except (RespaldoError, OSError) as exc:
            return Phrase(
                N_("archived WAL segment {segment} could not be read ({error})"),
                segment=name,
                error=first_line(exc),
            )
        times = xact_end_times(data, following, after=stop_lsn, beyond=beyond)
        if times:
            return datetime.fromtimestamp(0, UTC) + timedelta(
                microseconds=max(times) + POSTGRES_EPOCH_UNIX_US
            )
        beyond = continuation(following, beyond)
        following = data
    return None


def _after_last_commit(
    repo: Repository, manifest: Manifest, when: datetime, coverage: WalCoverage
) -> list[str]:
    """Refuse a target time at or after the newest commit or abort recovery of
    ``manifest`` replays: PostgreSQL stops at the first such record later than the
    target (never after one at the target itself), so with none it
    replays all the archived WAL and stops with "recovery ended before configured recovery
    target was reached", after the whole backup was written (without ``--start``, when the
    server is started). With no commit archived after the backup's end every target time
    fails so (one while the backup ran, before a commit of that time: "requested recovery
    stop point is before consistent recovery point"): refused too. Where it cannot be
    known (a segment unreadable), a warning says so and PostgreSQL decides, as before."""
    newest = newest_xact_end(repo, manifest, coverage)
    end = format_lsn(coverage.end)
    if newest is None:
        # Not "unknown": recovery has no commit after the backup's end to stop before.
        # It was only warned about, and the whole backup was written before the server
        # failed (a restore right after a backup, its last segment not archived yet).
        # Phrases (also in respaldo.reasons), as the refusals below.
        raise RestoreError(
            Phrase(
                N_(
                    "the recovery target {target} cannot be reached: the archived WAL after backup"
                    " {backup} (up to {lsn}) holds no commit after the backup's end, and recovery "
                    "to a target time stops only before a commit later than the target, so it "
                    "would stop with an error (recovery ended before configured recovery target "
                    "was reached)"
                ),
                target=when.isoformat(),
                backup=manifest.backup_id,
                lsn=end,
            ),
            hint=Phrase(
                N_(
                    "recover to the backup's end ({immediate}) or give no target: with no commit "
                    "archived after the backup both restore the same data; if later commits are "
                    "still in the server's pg_wal, SELECT pg_switch_wal() on the server, wait "
                    "until its segment is archived ('respaldo check' tells) and restore again"
                ),
                immediate=option("immediate"),
            ),
        )
    if isinstance(newest, str):
        # Phrases (also in respaldo.reasons): a restore's warnings are said in the page's
        # and the alerts' language, as its refusals.
        return [
            Phrase(
                N_(
                    "{problem}: whether recovery reaches the recovery target {target} is not "
                    "known before the server replays it"
                ),
                problem=newest,
                target=when.isoformat(),
            )
        ]
    # Recovery stops only *before* a commit or abort later than the target
    # (xlogrecovery.c, recoveryStopsBefore; recovery_target_inclusive = on replays those
    # at the target itself and goes on): a target at the newest one's very time is not
    # reached either (what the hint said to give, "at or before" it, failed after the
    # whole backup was written).
    if when < newest:
        return []
    said = newest.astimezone(when.tzinfo).isoformat()
    # Phrases (also in respaldo.reasons): the failed job's alert and the page say them in
    # their language, as other restore errors.
    message = (
        N_(
            "the recovery target {target} is at the last transaction the archived WAL "
            "holds: its newest commit after backup {backup} is at {commit} (archived up to "
            "{lsn}); recovery stops only at a commit later than the target, so it would "
            "replay all of it and stop with an error (recovery ended before configured "
            "recovery target was reached)"
        )
        if when == newest
        else N_(
            "the recovery target {target} is after the last transaction the archived WAL "
            "holds: its newest commit after backup {backup} is at {commit} (archived up to "
            "{lsn}); recovery stops only at a commit later than the target, so it would "
            "replay all of it and stop with an error (recovery ended before configured "
            "recovery target was reached)"
        )
    )
    raise RestoreError(
        Phrase(message, target=when.isoformat(), backup=manifest.backup_id, commit=said, lsn=end),
        hint=Phrase(
            N_(
                "give a target before {commit}, or no target to recover all the archived WAL "
                "(that commit included); if later commits are still in the server's pg_wal, "
                "SELECT pg_switch_wal() on the server and wait until its segment is archived "
                "('respaldo check' tells)"
            ),
            commit=said,
        ),
    )


def passed_over_warnings(coverage: WalCoverage, backup_id: str) -> list[str]:
    """A warning naming the newer timelines of the archive recovery of ``backup_id``
    does not follow (:attr:`WalCoverage.passed_over`, :attr:`WalCoverage.begun_after`),
    or could not tell it should (:attr:`WalCoverage.unsure`), if any."""
    warnings = []
    if coverage.begun_after is not None:
        tli, began = coverage.begun_after
        warnings.append(
            f"recovery follows timeline {coverage.path[-1][0]} (recovery_target_timeline = "
            f"{coverage.timeline}), not timeline {tli} and those after it: timeline {tli} "
            f"began at {began:%Y-%m-%d %H:%M:%S} UTC (its server's clock), after the "
            "recovery target, so at the target the history was timeline "
            f"{coverage.path[-1][0]}'s"
        )
    if coverage.unsure is not None:
        warnings.append(
            f"could not tell which timeline the recovery target time is on "
            f"({coverage.unsure}): recovery follows timeline {coverage.path[-1][0]}, and a "
            "target before a timeline began stops where it branched off"
        )
    if not coverage.passed_over:
        return warnings
    skipped = "; ".join(f"timeline {tli}: {why}" for tli, why in coverage.passed_over)
    return [
        *warnings,
        f"the archive holds newer timelines that backup {backup_id} cannot be recovered along "
        f"({skipped}): recovery follows timeline {coverage.path[-1][0]} "
        f"(recovery_target_timeline = {coverage.timeline}), not the newest",
    ]


def _target_time_warnings(manifest: Manifest, target: RecoveryTarget, now: datetime) -> list[str]:
    """Refuse a target time before the backup's checkpoint ended, or in the future;
    warn about one while the backup ran.

    Commits before the checkpoint's redo point are in the backup's files and are never
    replayed: recovery cannot stop before them, and PostgreSQL cannot see them to refuse
    such a target. With no commit between the target and the backup's end it replays to
    the consistent point and stops at the first commit after it, so the data would hold
    commits made after the target, with only a warning. The bound is therefore the
    backup_label's ``START TIME`` (the server's clock, just after the checkpoint; to the end
    of its second, :func:`earliest_target_time`): a target between the redo point and it
    loses nothing the backup's end (``immediate``) does not give. After it, PostgreSQL
    decides: it stops with "requested recovery stop point is before consistent recovery
    point" (reported as such by ``restore --start``) if a transaction committed after the
    target and before the consistent point. Where the
    label's time is not known (not recorded, an ambiguous zone name), only respaldo's
    ``started_at`` bounds it, before the checkpoint, and the warning says what may come
    back. The end bound, ``stop_time``, is read after pg_basebackup has exited (older
    backups: respaldo's completion), later than the real end: a target just after it (a
    DROP seconds after the only backup) must not be refused.
    """
    if target.time is None:
        return []
    backup_id = manifest.backup_id
    when = target.time.isoformat()
    began, on_server = earliest_target_time(manifest)
    if target.time < began:
        raise RestoreError(
            Phrase(
                N_(
                    "the recovery target {target} is before backup {backup} started ({began}): "
                    "recovery cannot stop before a backup's end"
                ),
                target=when,
                backup=backup_id,
                began=began.isoformat(),
            ),
            hint=Phrase(
                N_(
                    "choose a backup that ended before the target time ('respaldo list'), or "
                    "recover to this backup's end ({immediate})"
                ),
                immediate=option("immediate"),
            ),
        )
    # Commit times are the server's clock, which may be ahead of this one: a little (the
    # margin), or as far as it was at the backup (its stop_time, the server's clock, after
    # respaldo's completion time). Past that, recovery could only end with "recovery ended
    # before configured recovery target was reached", after the whole backup was written.
    ahead = max(timedelta(0), backup_end_time(manifest) - manifest.completed_at)
    if target.time > now + ahead + CLOCK_SKEW:
        clock = now.astimezone(target.time.tzinfo).isoformat(timespec="seconds")
        # Phrases (also in respaldo.reasons), as the refusal after the newest commit.
        raise RestoreError(
            Phrase(
                N_(
                    "the recovery target {target} is in the future: this machine's clock "
                    "says {clock} (the server's was {ahead} ahead of respaldo's at the "
                    "backup), and no transaction has committed that late; recovery would "
                    "replay all the archived WAL and stop with an error"
                ),
                target=when,
                clock=clock,
                ahead=_duration(ahead),
            )
            if ahead >= timedelta(seconds=1)
            else Phrase(
                N_(
                    "the recovery target {target} is in the future: this machine's clock "
                    "says {clock}, and no transaction has committed that late; recovery "
                    "would replay all the archived WAL and stop with an error"
                ),
                target=when,
                clock=clock,
            ),
            hint=Phrase(
                N_(
                    "check the target's date and UTC offset; to recover all the archived "
                    "WAL, give no target; if this machine's clock is behind the server's, "
                    "set it right"
                )
            ),
        )
    ended = backup_end_time(manifest)
    if target.time >= ended:
        return []
    # Phrases (also in respaldo.reasons), as the refusals above.
    if on_server:
        return [
            Phrase(
                N_(
                    "the recovery target {target} is while backup {backup} ran ({began} to "
                    "{ended} at the latest): if a transaction committed after it and before the "
                    "backup's end, PostgreSQL refuses it (requested recovery stop point is "
                    "before consistent recovery point) and an earlier backup is needed"
                ),
                target=when,
                backup=backup_id,
                began=began.isoformat(),
                ended=ended.isoformat(),
            )
        ]
    return [
        Phrase(
            N_(
                "the recovery target {target} is while backup {backup} ran (respaldo started "
                "it at {began}; the server's start time is not known: {note}): commits "
                "between the target and the backup's checkpoint are in its files and are not "
                "replayed, so the restored data may include commits made after the target "
                "without an error; for a target this early restore an earlier backup, or "
                "recover to the backup's end (immediate)"
            ),
            target=when,
            backup=backup_id,
            began=began.isoformat(),
            note=_label_note(manifest),
        )
    ]


def offset_warnings(target: RecoveryTarget, zone: tzinfo | None) -> list[str]:
    """Warn when a target time's UTC offset is not the installation's zone's at that time
    (:func:`respaldo.operations.zone.offset_warnings`, which ``rewind --to`` shares)."""
    if target.time is None:
        return []
    return zone_offset_warnings(
        target.time,
        zone,
        what=Phrase(N_("the recovery target")),
        effect=Phrase(N_("recovery stops there")),
    )


def _duration(span: timedelta) -> str:
    """``span`` to the minute from an hour on (the backup's stop_time is read a moment
    before respaldo's completion: two hours ahead reads as 1 h 59 min 50 s)."""
    seconds = round(span.total_seconds())
    if seconds < 3600:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min"


def _label_note(manifest: Manifest) -> Phrase:
    label = str(manifest.meta.get("start_time") or "")
    if not label:
        return Phrase(N_("not recorded in its manifest"))
    return Phrase(
        N_("its backup_label's START TIME {label} names no single time zone"), label=repr(label)
    )


def _archive_warnings(
    manifest: Manifest, target: RecoveryTarget, coverage: WalCoverage | str
) -> list[str]:
    """Raise RestoreError if the archived WAL after the backup (``coverage``) cannot
    reach ``target``."""
    backup_id = manifest.backup_id
    if isinstance(coverage, str):
        return [coverage]
    warnings = _timeline_warnings(coverage, backup_id, target)
    end = format_lsn(coverage.end)
    gap = gap_said(coverage)
    gap_hint = (
        f"put the segment back (from a mirror, or 'respaldo wal-push' from the server's "
        f"pg_wal), or recover knowingly to a target before the gap ({option('target_lsn')} "
        f"before {end}, {option('target_time')}, {option('immediate')})"
    )
    if target.lsn is not None and parse_lsn(target.lsn) > coverage.end:
        if coverage.missing is not None:
            raise RestoreError(
                f"{gap}, and the recovery target {target.lsn} is behind it", hint=gap_hint
            )
        raise RestoreError(
            f"the recovery target {target.lsn} is not archived: the archived WAL after "
            f"backup {backup_id} ends at {end}",
            hint="on the server, SELECT pg_switch_wal() and wait until its segment is archived "
            "('respaldo check' tells), or choose an earlier target",
        )
    if coverage.missing is None or target.lsn is not None:
        return warnings
    if target.time is None and target.name is None:
        raise RestoreError(
            f"{gap}: recovery to the end of the archived WAL would stop there and promote "
            "without what came after",
            hint=gap_hint,
        )
    return [*warnings, f"{gap}; a target behind the gap stops recovery with an error"]


def _timeline_warnings(coverage: WalCoverage, backup_id: str, target: RecoveryTarget) -> list[str]:
    """Warn that recovery follows a newer timeline than the backup's (unless the target
    LSN is before the first switch), more strongly when an older timeline of the path was
    archived on after the switch: a server kept writing on it (production on timeline 1
    while a restored copy that kept archiving was promoted to timeline 2), and recovery
    replays the newer timeline's WAL instead, silently."""
    path = coverage.path
    if len(path) < 2 or (target.lsn is not None and parse_lsn(target.lsn) <= path[1][1]):
        return []
    timeline, newest = path[0][0], path[-1][0]
    switches = ", ".join(
        f"timeline {tli} branched off timeline {parent} at {format_lsn(begin)}"
        for (parent, _), (tli, begin) in pairwise(path)
    )
    which = (
        "the newest it can follow"
        if coverage.passed_over or coverage.begun_after
        else "the archive's newest"
    )
    follows = (
        f"recovery follows timeline {newest} ({which}), not backup {backup_id}'s "
        f"timeline {timeline}: {switches}"
    )
    if coverage.left is None:
        return [f"{follows} (a server promoted from it archived here, such as a restored copy)"]
    old, segment = coverage.left
    tlis = [tli for tli, _ in path]
    branch, switch = path[tlis.index(old) + 1]
    return [
        f"{follows}; but timeline {old} was archived on after {format_lsn(switch)} (up to "
        f"{segment}): a server kept writing on it, and that WAL is not replayed, timeline "
        f"{branch}'s is instead. If timeline {old} is the history to recover (a restored copy "
        f"that kept archiving was promoted to timeline {branch}), remove timeline "
        f"{branch}'s files and those of the timelines after it from the archive "
        f"(wal/<system id>/{branch:08X}/ ...) before restoring; to stop on the history both "
        f"share, give a target LSN before {format_lsn(switch)}"
    ]
