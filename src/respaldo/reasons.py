"""The reasons respaldo stores in English (a job's error, a restore test's checks, a
health check's reason), said in another language: the page's, and the alerts'
(``[notifications] language``). One table of phrases for both.

The catalog keeps what the operations wrote, in English, for the CLI, the API and the
logs. The page and the alerts translate the phrases respaldo forms itself (the frame of a
failure, the names of a restore test's checks, the reasons of a lapsed or cancelled job);
what such a phrase carries (an error of PostgreSQL, of a tool, of the storage; a path, a
name) stays as written. A stored reason that no phrase below matches whole is shown as
stored.

Each phrase is written once, as its message (``{name}`` where a part goes); the pattern
that recognises it is made from the message, so the two cannot drift apart. Each part is
itself translated when it is one of these phrases.

A reason that comes as a :class:`~respaldo.phrases.Phrase` (the health checks' reasons,
computed when asked for) needs no pattern: it carries its message and values. Its message
is translated, each value that is a phrase too is said in turn, and one that is text (what
a job or a check recorded) is recognised as above, or put back as written.

Shared, beside :mod:`respaldo.phrases` and :mod:`respaldo.i18n`: the page
(:mod:`respaldo.web`) and the alerts (:mod:`respaldo.notify`, and the application layer's
:mod:`respaldo.operations.alerts`) sit in layers that may not import each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from respaldo.phrases import N_, Phrase, Quantity

Gettext = Callable[[str], str]
Show = Callable[[Quantity], str]
"""How a language writes a :class:`~respaldo.phrases.Quantity` (a size, a share, a time);
without one, as its English text."""


_CHECKS = {
    "restore": N_("restore"),
    "recovery": N_("recovery"),
    "row counts": N_("row counts"),
    "large objects": N_("large objects"),
    "wal archive": N_("WAL archive"),
    "contents": N_("contents"),
    "copies": N_("copies"),
    "drill": N_("restore test"),
}
"""The checks of a restore test (operations/drill.py); ``validation: NAME`` and
``pg_amcheck`` are in :data:`_PHRASES` and kept as named."""

_PHRASES = (
    # operations/drill.py: DrillResult.found_failure, and its checks.
    N_("the restore test failed: {failure}"),
    N_("validation: {name}"),
    N_("got {value}, expected {expected}"),
    N_("consistent, promoted"),
    N_("no corruption"),
    # operations/drill.py: what a restore test's restore check did.
    N_("{restored} bytes in {seconds} s"),
    N_("{restored} bytes in {seconds} s (until the server accepted connections)"),
    # operations/verify.py, operations/prune_report.py: found_failure.
    N_("verify found {count} problems: {problem}"),
    N_("prune could not finish in {repository}: {error}"),
    # operations/jobs.py, workers.py, queue.py: why a job was cancelled or skipped.
    N_("cancelled"),
    N_("cancelled by request"),
    N_("interrupted"),
    N_("respaldo serve is stopping"),
    N_("the worker was stopped before the job ended"),
    N_("the previous run (job {job}) still runs"),
    # catalog/jobs.py: a job whose process is gone.
    N_("process {pid} died while the job ran (found at start-up)"),
    N_("the lease of process {pid} on {host} lapsed: no sign of life since {since}"),
    N_("the job's lease lapsed"),
    # catalog/jobs.py: _silence, the {since} of a lapsed lease.
    N_("{since} ({silent} s before {now} by the catalog's clock; the lease is {lease} s)"),
    # Errors respaldo words, as a failed job records them (str(error)); raised at the
    # page's action they come as Phrases. postgres/server.py: a connection that failed.
    N_("cannot connect to PostgreSQL ({target}): {error}"),
    N_("check the user and password (password_file) and the server's pg_hba.conf"),
    N_("check the database name in the DSN"),
    N_("check that the server is running and accepts connections on that host and port"),
    # errors.py: PostgresError (what the program wrote follows it), ToolNotFound.
    N_("{program} exited with status {code}"),
    N_("{program} was killed by signal {signal}"),
    N_("{program} not found (looked in {searched})"),
    N_("{program} not found"),
    # operations/jobs.py: check_free.
    N_("job {job} ({kind} of {target}) is running"),
    # operations/verify.py: the alert of a verify that found damage.
    N_("verify of repository {repository} found {count} problems: {problem}"),
    N_(
        "the damaged copies are quarantined: run 'respaldo repair' to take good copies from "
        "a mirror, then 'respaldo verify --all'"
    ),
    # Damage in a repository (errors.py's IntegrityError, repository/verify.py's Problem):
    # where it was read, then what was wrong. repository/reader.py, verify.py.
    N_("chunk {chunk} of stream {stream}"),
    N_("chunk list of stream {stream}"),
    N_("chunk {chunk}"),
    N_("chunk is not in the index"),
    N_("chunk is not in the index ({damage})"),
    N_("chunk is damaged ({problem}; quarantined {when} UTC) and no good copy is indexed"),
    N_("pack is missing"),
    N_("pack listed in the index is missing"),
    N_("stream {stream} does not match its checksum ({read} bytes read, {length} expected)"),
    N_("stream {stream} does not match its SHA-256"),
    N_("index and pack header disagree on chunk {chunk}"),
    N_("index file is damaged (the chunks it describes are not sliced)"),
    N_("index file is damaged"),
    N_("manifest is damaged"),
    N_("pack is too short"),
    N_("pack trailer is damaged"),
    N_("pack header is damaged"),
    N_("cannot read pack"),
    # repository/crypto.py: SealError, why a sealed chunk or file did not open.
    N_("authentication failed (data corrupt or tampered with)"),
    N_("chunk content does not match its id"),
    N_("blob is truncated"),
    N_("decompression failed"),
    # repository/reader.py: _integrity's hint.
    N_(
        "run 'respaldo verify' and 'respaldo repair' (which takes good copies from mirrors), "
        "restore from another repository, or run 'respaldo index rebuild' if the index is at "
        "fault"
    ),
)

_WHERE = (
    (
        N_("{error} [backup {backup}] [object {object}]"),
        r" \[backup (?P<backup>[^\]\s]+)\] \[object (?P<object>[^\]\s]+)\]",
    ),
    (
        N_("{error} [backup {backup} object {object}]"),
        r" \[backup (?P<backup>[^\]\s]+) object (?P<object>[^\]\s]+)\]",
    ),
    (N_("{error} [backup {backup}]"), r" \[backup (?P<backup>[^\]\s]+)\]"),
    (N_("{error} [object {object}]"), r" \[object (?P<object>[^\]\s]+)\]"),
    (
        N_("{error} (and {more} more: 'respaldo verify' lists them)"),
        r" \(and (?P<more>\d+) more: 'respaldo verify' lists them\)",
    ),
)
"""What follows an error, at its end: where the damage is (errors.py's IntegrityError,
repository/verify.py's Problem), how many more a verify found (operations/verify.py).
Looked for in the last :data:`_TAIL` characters only: a pattern that began with the
error would be tried at every ": " of a long one."""

_TAIL = 400

# What a value may be, where it is not any text: a program's name, a number. Without
# it "{program} not found" would claim an engine's 'role "x" not found'.
_VALUES = {
    "program": r"[\w.-]+",
    "code": r"-?\d+",
    "signal": r"\d+",
    "job": r"\d+",
    "pid": r"\d+",
    "count": r"\d+",
    # The lapsed lease's numbers and time (catalog/jobs.py: _silence). Its phrase begins
    # with a value, so it is tried at every ": " of a long recorded error: with three
    # values any text, each try backtracked over the rest once per " (" (a 9 KB error
    # of 200 parts: 2.6 s to render; hours for 20 KB).
    "silent": r"-?\d+",
    "now": r"[0-9TZ:+.-]+",
    "lease": r"[0-9.e+-]+",
    # A repository's damage: a chunk id's first 16 hex digits, a stream's name as repr()
    # quotes it, the quarantine's minute.
    "chunk": r"[0-9a-f]+",
    "stream": r"'[^']*'",
    "restored": r"\d+",
    "seconds": r"[0-9.]+",
    "read": r"\d+",
    "length": r"\d+",
    "when": r"[0-9: -]+",
}

_OPENING = {
    # The lapsed lease's last renewal, where it opens its phrase ("{since} ({silent} s
    # before ..."): an ISO time. As any text it was tried against every text before a
    # ": " of a long error, scanning the whole of it each time: 2.8 s to render a 64 KB
    # error of pg_restore's with a JSON body, 9 s for one of 16,000 short parts. Where
    # it ends a phrase ("... no sign of life since {since}") it is that whole phrase.
    "since": r"[0-9TZ:+.-]+",
}
"""What a value may be where it opens a phrase, if not as in :data:`_VALUES`."""


@cache
def _suffixes() -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(regex + r"\Z"), message) for message, regex in _WHERE]


@cache
def _patterns() -> list[tuple[re.Pattern[str], str]]:
    found = []
    for message in _PHRASES:
        pieces = re.split(r"\{(\w+)\}", message)
        regex = "".join(
            re.escape(piece)
            if i % 2 == 0
            else f"(?P<{piece}>{_value_pattern(piece, opens=i == 1 and not pieces[0])})"
            for i, piece in enumerate(pieces)
        )
        found.append((re.compile(regex, re.S), message))
    return found


def _value_pattern(name: str, *, opens: bool) -> str:
    if opens and name in _OPENING:
        return _OPENING[name]
    return _VALUES.get(name, ".+?")


def reason(text: str | None, gettext: Gettext, show: Show = str) -> str:
    """``text`` (a stored reason) in the language of ``gettext``; the quantities of a
    phrase written by ``show``."""
    if not text:
        return ""
    if isinstance(text, Phrase):
        return _said(text, gettext, show)
    if text in _CHECKS:
        return gettext(_CHECKS[text])
    return _recognised(text, gettext)


def _said(phrase: Phrase, gettext: Gettext, show: Show) -> str:
    values = {name: _value(value, gettext, show) for name, value in phrase.values.items()}
    try:
        return gettext(phrase.message).format(**values)
    except (KeyError, IndexError, ValueError):
        # A translation that names a value its message does not have (the catalog's
        # test refuses one; this keeps the page up): the message as written.
        return phrase.message.format(**values)


def _value(value: str, gettext: Gettext, show: Show) -> str:
    if isinstance(value, Phrase):
        return _said(value, gettext, show)
    if isinstance(value, Quantity):
        return show(value)
    return _recorded(value, gettext)


def _recorded(value: str, gettext: Gettext) -> str:
    # Text put into a phrase: a recorded reason (a failed job's error; a restore test's,
    # which names its failed check) said in the page's language when respaldo worded it,
    # else (a name, an engine's error) as written. Not the bare check names: a database
    # may well be called "restore".
    checked = _failed_check(value, gettext)
    return checked if checked is not None else _recognised(value, gettext)


def _recognised(text: str, gettext: Gettext) -> str:
    """``text`` translated when one phrase matches it whole, or when one matches what
    comes before a ": " (an error's frame: "pg_dump exited with status 1: <its words>",
    the rest then recognised in turn), or when it ends with where a damage is (what
    comes before it recognised in turn); else as written."""
    # The frames are said one after the other in a loop, not by recursion: an error of
    # thousands of frames ("cancelled: cancelled: …") would pass Python's recursion limit
    # and take the whole page down with it.
    frames: list[str] = []
    while True:
        said = _located(text, gettext)
        if said is None:
            said = _whole(text, gettext)
        if said is not None:
            return "".join(frames) + said
        at = text.find(": ")
        while at > 0:
            framed = _whole(text, gettext, at)
            if framed is not None:
                frames.append(f"{framed}: ")
                text = text[at + 2 :]
                break
            at = text.find(": ", at + 2)
        else:
            return "".join(frames) + text


def _located(text: str, gettext: Gettext) -> str | None:
    if not text.endswith(("]", ")")):
        return None
    start = max(0, len(text) - _TAIL)
    for pattern, message in _suffixes():
        matched = pattern.search(text, start)
        if matched is not None and matched.start() > 0:
            error = _recognised(text[: matched.start()], gettext)
            return gettext(message).format(error=error, **matched.groupdict())
    return None


def _whole(text: str, gettext: Gettext, end: int | None = None) -> str | None:
    """``text`` (up to ``end``: no copy of each frame of a long error) said by the phrase
    that matches it whole; None if none does."""
    for pattern, message in _patterns():
        matched = pattern.fullmatch(text, 0, len(text) if end is None else end)
        if matched is not None:
            parts = {name: _part(part, gettext) for name, part in matched.groupdict().items()}
            return gettext(message).format(**parts)
    return None


def failed_check(text: str | None, gettext: Gettext) -> str:
    """A restore test's error as its row records it (its first failed check, "NAME:
    DETAIL": drill.py's _first_failure) in the language of ``gettext``: the check's name,
    then its detail as :func:`reason` says it."""
    if not text:
        return ""
    checked = _failed_check(text, gettext)
    return checked if checked is not None else reason(text, gettext)


def _part(value: str, gettext: Gettext) -> str:
    checked = _failed_check(value, gettext)
    return checked if checked is not None else reason(value, gettext)


def _failed_check(value: str, gettext: Gettext) -> str | None:
    # A failed check reads "NAME: DETAIL" (drill.py's _first_failure): the name of a
    # check is respaldo's, the detail may be anyone's.
    for name in sorted(_CHECKS, key=len, reverse=True):
        if value.startswith(f"{name}: "):
            return f"{gettext(_CHECKS[name])}: {reason(value[len(name) + 2 :], gettext)}"
    if value.startswith("validation: ") and ": " in value[len("validation: ") :]:
        name, detail = value[len("validation: ") :].split(": ", 1)
        check = gettext(N_("validation: {name}")).format(name=name)
        return f"{check}: {reason(detail, gettext)}"
    return None
