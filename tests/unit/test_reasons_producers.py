"""Each phrase of :mod:`respaldo.reasons` is still a sentence some module of respaldo
writes. The table copies each English sentence an operation stores in the catalog, so
that the page and the alerts recognise and translate it; when a producer's wording
changed and the copy did not, nothing failed: the Spanish page silently showed the
stored English."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

import respaldo
from respaldo import reasons

pytestmark = pytest.mark.unit

SRC = Path(respaldo.__file__).parent

# Phrases no module writes as one literal, and why each is still right to keep: kept
# for rows stored by earlier versions, or put together from parts the clause check
# below cannot see (a word chosen at run time). Each entry must still be needed.
NOT_WRITTEN_WHOLE = {
    # cli/main.py: f"terminated by {signal.Signals(signum).name}".
    "terminated by SIGTERM": "cli/main.py",
    "terminated by SIGHUP": "cli/main.py",
    # Kept for the rows of restore tests from before recovery followed the newest
    # timeline that descends from the backup (4e1bbda).
    "recovery follows timeline {newest}, which does not descend from the backup's "
    "timeline {timeline}: the archived WAL was not checked for gaps": "",
    "timeline {timeline} branched off before the backup's end: recovery from it cannot "
    "follow the newest timeline, and the archived WAL was not checked for gaps": "",
    # Audit rows stored before backups were named logical and physical (_SAID_NOW).
    "incremental backup of {database}, job {job}": "",
    # operations/background.py: "the newest backup(s) of ..." chosen by their number.
    "restore test of the newest backup of {database} ({backup}) started": (
        "operations/background.py"
    ),
    "restore test of the newest backups of {database}, one of each kind ({backups}) "
    "started": "operations/background.py",
    # operations/admin.py: ", ".join(...) or 'none'.
    "manifests deleted from none": "operations/admin.py",
    # operations/files_backup.py: f"{p}: respaldo's own {what}, left out".
    "{path}: respaldo's own repository {repository}, left out": "operations/files_backup.py",
    "{path}: respaldo's own cache, left out": "operations/files_backup.py",
    # repository/locks.py: f"{self.kind.value} lock for ...", f"{purpose} waits ...".
    "shared lock for {purpose} (pid {pid} on {host}, refreshed {seconds} s ago)": (
        "repository/locks.py"
    ),
    "exclusive lock for {purpose} (pid {pid} on {host}, refreshed {seconds} s ago)": (
        "repository/locks.py"
    ),
    "garbage collection waits for running backups; run prune again when they end; a "
    "lock whose holder died is ignored after {stale} (at once on the same host)": (
        "repository/locks.py"
    ),
    # storage/lifecycle.py: the repository's names joined from REPOSITORY_NAMES.
    "respaldo deletes expired backups itself (prune): remove the rule, or limit it to "
    "prefixes the repository does not write (below its own prefix it writes only config, "
    "keys/, packs/, index/, manifests/, locks/, quarantine/, wal/, clusters/) or to old "
    "versions (NoncurrentVersionExpiration, see docs/configuration.md), or use another "
    "bucket or prefix": "storage/lifecycle.py",
    # operations/restore_parallel.py: f"{table}: {_UNCOUNTED}"; "; and {n} more" after
    # the first few.
    "{table}: the backup recorded no row count for it": "operations/restore.py",
    "and {count} more": "operations/restore_parallel.py",
    # operations/restore.py: READ_ELSEWHERE, and a chunk read from a mirror.
    "read from {repository}": "operations/restore.py",
    "chunk {chunk}: {problem} in {location} ({object})": "operations/restore.py",
    # notify/send.py: the target's name, then apprise's refusal in parts.
    "apprise cannot use its URL ({said})": "notify/send.py",
    # Audit rows stored before backups were named logical and physical (_SAID_NOW).
    "full backup of {database}, job {job}": "",
    # operations/background.py: f"restore test of {what} started".
    "restore test of backup {backup} started": "operations/background.py",
    "{path}: respaldo's own catalog, left out": "operations/files_backup.py",
    # repository/locks.py: "the repository is in use: " + "; ".join(holders), its hint.
    "the repository is in use: {holders}": "repository/locks.py",
    "the repository is in use: {holders} ({hint})": "repository/locks.py",
    # operations/files_backup.py: the first few paths, then " (and N more)".
    "{error} (and {more} more)": "operations/files_backup.py",
    # postgres/standby.py: stale_reason's "old", its limit an f-string of its own.
    "its last transaction replayed committed at {committed}, {age} ago (more than [rpo] "
    "standby_lag_minutes = {minutes})": "postgres/standby.py",
    # postgres/standby_blocked.py: replay_blocked, the head, its limit and the sessions
    # each a string of their own; its hint's "end ..." chosen by the sessions' number.
    "the server is a standby whose WAL replay blocks a table's lock the backup needs, and "
    "the backup waited for it longer than [rpo] standby_lock_wait_minutes = {minutes}: "
    "replay is stuck, waiting for a lock on table {relation}, held by the standby's "
    "{sessions}, which it does not cancel (max_standby_streaming_delay = {delay}); the "
    "standby's data stays as of then": "postgres/standby_blocked.py",
    "the server is a standby whose WAL replay blocks a table's lock the backup needs, and "
    "the backup waited for it longer than [rpo] standby_lock_wait_minutes = {minutes}: "
    "replay is stuck, waiting for a lock on table {relation}, which it does not cancel "
    "(max_standby_streaming_delay = {delay}); the standby's data stays as of then": (
        "postgres/standby_blocked.py"
    ),
    "the server is a standby whose WAL replay blocks a table's lock the backup needs, and "
    "the backup waited for it longer than [rpo] standby_lock_wait_minutes = {minutes}: "
    "replay holds an ACCESS EXCLUSIVE lock on table {tables} for a transaction of the "
    "primary that has not ended (DDL, TRUNCATE or LOCK TABLE there)": (
        "postgres/standby_blocked.py"
    ),
    "the server is a standby whose WAL replay blocks a table's lock the backup needs, and "
    "the backup waited for it longer than [rpo] standby_lock_wait_minutes = {minutes} "
    "(what replay waited for could not be told: it may have moved on since)": (
        "postgres/standby_blocked.py"
    ),
    "end that session on the standby (SELECT {calls}) or let replay cancel such queries "
    "(max_standby_streaming_delay not -1), then back up again; or back up through a dsn "
    "that leads to the primary": "postgres/standby_blocked.py",
    "end those sessions on the standby (SELECT {calls}) or let replay cancel such queries "
    "(max_standby_streaming_delay not -1), then back up again; or back up through a dsn "
    "that leads to the primary": "postgres/standby_blocked.py",
    "end the session or let replay cancel such queries (max_standby_streaming_delay not "
    "-1), then back up again; or back up through a dsn that leads to the primary": (
        "postgres/standby_blocked.py"
    ),
    # operations/lost_packs.py: _copy_problem, "chunk(s)" and "was/were" chosen by number,
    # COPY_LOST_DATA (catalog/copies.py) put first.
    "lost data: {count} chunk the copy of {backup} uses was {how} in {repository} ({when} "
    "UTC) and no other pack there holds a good copy; it cannot be restored from "
    "{repository} until the next copy sends them again": "operations/lost_packs.py",
    "lost data: {count} chunks the copy of {backup} uses were {how} in {repository} "
    "({when} UTC) and no other pack there holds a good copy; it cannot be restored from "
    "{repository} until the next copy sends them again": "operations/lost_packs.py",
    # repository/pack_check.py: _lost, its words chosen by the packs' number and by whether
    # a copy or a backup failed; operations/lost_packs.py: the hint's parts, chosen by
    # the backups' number and by whether the repository is a mirror.
    "backup not recorded: 1 pack it references is missing or truncated in {location}: "
    "{packs}": "repository/pack_check.py",
    "backup not recorded: {count} packs it references are missing or truncated in "
    "{location}: {packs}": "repository/pack_check.py",
    "copy not written: 1 pack it references is missing or truncated in {location}: "
    "{packs}": "repository/pack_check.py",
    "copy not written: {count} packs it references are missing or truncated in "
    "{location}: {packs}": "repository/pack_check.py",
    "copy not written: 1 pack it references is missing or truncated in {location}: "
    "{packs} [backup {backup}]": "repository/pack_check.py",
    "copy not written: {count} packs it references are missing or truncated in "
    "{location}: {packs} [backup {backup}]": "repository/pack_check.py",
    "their {count} chunk copies are quarantined now, so the backup stores that data anew:"
    " run it again": "repository/pack_check.py",
    "their {count} chunk copies are quarantined now, so the copy sends that data anew: "
    "run it again": "repository/pack_check.py",
    "earlier backup {backups}, which uses them and no repository read holds a good copy "
    "of, is marked damaged in the catalog (retention no longer counts it as good): "
    "'respaldo repair' may recover the chunks from a mirror": "operations/lost_packs.py",
    "earlier backups {backups}, which use them and no repository read holds a good copy "
    "of, are marked damaged in the catalog (retention no longer counts them as good): "
    "'respaldo repair' may recover the chunks from a mirror": "operations/lost_packs.py",
    "the copy in {repository} of earlier backup {backups}, which uses them and no other "
    "pack of {repository} holds a good copy of, is marked failed in the catalog "
    "(retention and the status no longer count it as held there): the next copy sends the"
    " lost chunks again": "operations/lost_packs.py",
    "the copies in {repository} of earlier backups {backups}, which use them and no other"
    " pack of {repository} holds a good copy of, are marked failed in the catalog "
    "(retention and the status no longer count them as held there): the next copy sends "
    "the lost chunks again": "operations/lost_packs.py",
    "no earlier backup in the catalog uses them without a good copy elsewhere": (
        "operations/lost_packs.py"
    ),
    "no earlier backup in the catalog uses them without a good copy in {repository}": (
        "operations/lost_packs.py"
    ),
    # errors.py: str() of an error appends " [backup …]" and " [object …]" one by one.
    "{error} [backup {backup}] [object {object}]": "errors.py",
    "{error} [backup {backup} object {object}]": "errors.py",
    "{error} [backup {backup}]": "errors.py",
}

_PLACEHOLDER = re.compile(r"\{\w+\}")
# A phrase's clauses, each of which a producer may write as its own literal or f-string
# part: what lies between its values and its ", " "; " ": " "(" ")".
_CLAUSES = re.compile(r"\{\w+\}|, |; |: | \(|\)")


def _shape(parts: list[str | None]) -> tuple[str, ...]:
    """The literal text between the values (None: a value)."""
    shape = [""]
    for part in parts:
        if part is None:
            shape.append("")
        else:
            shape[-1] += part
    return tuple(shape)


def _message_shape(message: str) -> tuple[str, ...]:
    return tuple(_PLACEHOLDER.split(message))


@cache
def _modules() -> dict[str, tuple[set[str], set[tuple[str, ...]], list[str]]]:
    """Each module's string literals (implicit concatenations are one), the shapes of
    its literals and f-strings, and every piece of literal text in it."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "reasons.py":
            continue
        literals: set[str] = set()
        shapes: set[tuple[str, ...]] = set()
        pieces: list[str] = []
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # Docstrings tell of a sentence in other words; they write none.
        told = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        for node in ast.walk(tree):
            if id(node) in told:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
                shapes.add(_message_shape(node.value))
                pieces.append(node.value)
            elif isinstance(node, ast.JoinedStr):
                parts: list[str | None] = [
                    v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else None
                    for v in node.values
                ]
                shapes.add(_shape(parts))
                pieces.extend(p for p in parts if isinstance(p, str))
        found[path.relative_to(SRC).as_posix()] = (literals, shapes, pieces)
    return found


def _written(message: str) -> bool:
    """Whether some module writes ``message``: as a literal (an ``N_()``, ``counted()``
    or ``Phrase()`` argument, a constant), as an f-string with the same words between
    its values, or clause by clause in one module (a detail put together from parts)."""
    shape = _message_shape(message)
    clauses = [c for c in _CLAUSES.split(message) if len(c.strip()) >= 4]
    for literals, shapes, pieces in _modules().values():
        if message in literals or shape in shapes:
            return True
        # A frame: the phrase, then ": " and what went wrong (reasons says the rest in
        # turn).
        framed = (*shape[:-1], shape[-1] + ": ")
        if any(
            s[: len(framed) - 1] == framed[:-1]
            and s[len(framed) - 1 :]
            and s[len(framed) - 1].startswith(framed[-1])
            for s in shapes
            if len(s) >= len(framed)
        ):
            return True
        # Two clauses at least: one alone ("restored into ") is any text's.
        if len(clauses) > 1 and all(any(c in piece for piece in pieces) for c in clauses):
            return True
    return False


def _messages() -> list[str]:
    return [
        *reasons._PHRASES,
        # A check is stored by its name (the key); the value is what it is said by.
        *reasons._CHECKS,
        *(message for message, _ in reasons._WHERE),
    ]


def test_every_phrase_is_a_sentence_some_module_writes() -> None:
    orphaned = [m for m in _messages() if m not in NOT_WRITTEN_WHOLE and not _written(m)]
    assert not orphaned, "phrases of respaldo.reasons no module writes:\n" + "\n".join(orphaned)


def test_each_exception_is_still_a_phrase_and_still_needed() -> None:
    messages = set(_messages())
    assert set(NOT_WRITTEN_WHOLE) <= messages
    assert [m for m in NOT_WRITTEN_WHOLE if _written(m)] == []
    assert all(module in _modules() for module in NOT_WRITTEN_WHOLE.values() if module)


def test_a_producer_that_changed_its_wording_is_found() -> None:
    """The check itself: a phrase whose words no module has any more is reported."""
    assert _written("restored into {datadir}")
    assert not _written("restored in to {datadir}")
    assert not _written("{count} tables match the snapshots")
