"""The RPO watchdog: the status (:mod:`respaldo.operations.status`) turned into alerts.

``respaldo serve`` calls :func:`check` every ``[rpo] watchdog_minutes`` and once at its
start-up, so a service that was down for two days says so at once. Each item of the
status is one watched condition (:func:`respaldo.operations.alerts.set_condition`), keyed
as the item (``rpo:erp:full``, ``size:erp:full``, ``server:erp``, ``archive:erp``,
``restore_test:erp``, ``copy:erp:offsite``, ``verify:offsite``, ``notify:ops-mail``, ``catalog``,
``queue:default``; and
``watchdog`` while the status cannot be computed at all): it fires while the item is red,
so an alert goes out when a threshold is crossed, repeats are throttled per key, and one
"resolved" message follows when it is met again (amber is not firing: the threshold is met).
A ``swap`` or ``queue`` item leaves the report when its condition is met: its absence
resolves it too, unless the status could not read those items this time. The alerts of a
database, file set or secondary repository taken out of the configuration are closed
without a message (nothing was mended, and they can never be met).

The alert's text is short (it is also the SMS) and translated: one message per kind of
item, with the database, the age and the limit as arguments; ``respaldo status`` has the
whole reason.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from respaldo.errors import first_line
from respaldo.operations import alerts, stall
from respaldo.operations.alerts import ConditionResult
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel
from respaldo.operations.scrub import Scrubber
from respaldo.operations.status import StatusItem, StatusReport, compute_status
from respaldo.operations.status_server import ARCHIVED_ELSEWHERE, ARCHIVING_FAILS, human_age
from respaldo.phrases import N_, Phrase, recorded

log = logging.getLogger(__name__)


def _(message: str) -> str:
    """Marks a message for extraction; :func:`alerts.set_condition` translates it."""
    return message


_MESSAGES: dict[str, tuple[str, str]] = {
    # check (and kind): (message when it was never done, message with its age)
    # The kinds as the status says them (logical, physical), not --type's full.
    "rpo:full": (
        _("no logical backup of {database} was ever completed"),
        _("no logical backup of {database} for {age} (RPO {limit})"),
    ),
    "rpo:incremental": (
        _("no physical backup of {database} was ever completed"),
        _("no physical backup of {database} for {age} (RPO {limit})"),
    ),
    "rpo:files": (
        _("no files backup of {database} was ever completed"),
        _("no files backup of {database} for {age} (RPO {limit})"),
    ),
    "archive": (
        _("archive_mode is off on the server of {database}"),
        _("WAL of {database} waits to be archived for {age} (limit {limit})"),
    ),
    "restore_test": (
        _("no restore test of {database} ever passed"),
        _("no passed restore test of {database} for {age} (limit {limit})"),
    ),
    "copy": (
        _("backups of {database} are not copied to {repository}"),
        _(
            "backups of {database} not copied to {repository} for {age} "
            "({count} waiting, limit {limit})"
        ),
    ),
    "verify": (
        _("repository {repository} was never verified in {age} (limit {limit})"),
        _("repository {repository} was not verified for {age} (limit {limit})"),
    ),
    "walcopy": (
        _("archived WAL of {database} cannot be checked in {repository}: {error}"),
        _("archived WAL of {database} has not reached {repository} for {age} (limit {limit})"),
    ),
}
_RESTORE_TEST_OF = {
    # A database that relies on more than one kind of backup: its item names the kind
    # whose restore tests went missing (operations/tested_kinds.py).
    "full": (
        _("no restore test of a logical backup of {database} ever passed"),
        _("no passed restore test of a logical backup of {database} for {age} (limit {limit})"),
    ),
    "incremental": (
        _("no restore test of a physical backup of {database} ever passed"),
        _("no passed restore test of a physical backup of {database} for {age} (limit {limit})"),
    ),
}
_ARCHIVING_FAILS = (
    _("WAL archiving of {database} fails: nothing archived yet"),
    _("WAL archiving of {database} fails: nothing archived for {age} (limit {limit})"),
)
_SIZE = {
    "full": _(
        "the newest logical backup of {database} is much smaller than the one before: {error}"
    ),
    "incremental": _(
        "the newest physical backup of {database} is much smaller than the one before: {error}"
    ),
    "files": _(
        "the newest files backup of {database} is much smaller than the one before: {error}"
    ),
}
_ARCHIVED_ELSEWHERE = _(
    "WAL of {database} does not reach the repository: its server archives it elsewhere"
)
_SERVER = _("the server of {database} cannot be reached: {error}")
_WATCHDOG = _("the watchdog cannot check the status: {error}")
WATCHDOG = "watchdog"
"""The condition that fires while the status cannot be computed at all."""
_CATALOG = _("the catalog cannot be read: {error}")
_QUEUE = _("{count} jobs wait in queue {queue} for {age} and no worker takes that queue")
_QUEUE_ONE = _("{count} job waits in queue {queue} for {age} and no worker takes that queue")
_SWAP = _("a restore of {target} stopped half-way through its swap: {error}")
_NOTIFY = _("messages to notification target {target} fail: {error}")
# Amber, so never sent (see the module docstring); here for 'describe' all the same.
_SLOT = _("replication slot {slot} of {database} is not in use and holds WAL")
_PRUNE = _("no prune has reached repository {repository} for {age}")
_KINDS = {
    "rpo": "backup",
    "size": "backup",
    "restore_test": "drill",
    "copy": "copy",
    "walcopy": "copy",
    "archive": "wal-push",
    "verify": "verify",
}


class WatchdogResult(ResultModel):
    """The status checked, and what became of each alert."""

    report: StatusReport
    conditions: list[ConditionResult]


def check(
    ctx: Context,
    now: datetime,
    *,
    wal_archived: Collection[str] | None = None,
    servers: bool = True,
) -> WatchdogResult:
    """Compute the status at ``now`` and set one alert condition per item (red: firing).

    ``wal_archived`` and ``servers`` as :func:`~respaldo.operations.status.compute_status`.
    Never raises for what it finds, nor for an alert that cannot be sent or recorded.
    """
    try:
        report = compute_status(ctx, now, wal_archived=wal_archived, servers=servers)
    except Exception as exc:
        # Every condition goes quiet with it: that is itself an alert (then re-raised,
        # for the caller's log with its traceback).
        error = Scrubber(ctx.settings)(f"{type(exc).__name__}: {exc}".splitlines()[0])
        alerts.set_condition(
            ctx,
            WATCHDOG,
            True,
            message=_WATCHDOG,
            args={"error": error},
            hint="the log of respaldo serve has the traceback; 'respaldo status' shows "
            "whether the status can be computed",
            now=now,
        )
        raise
    checked = alerts.set_condition(ctx, WATCHDOG, False, message=_WATCHDOG, now=now)
    conditions = [
        _set(ctx, item, now)
        for item in report.items
        # Which databases archive WAL, when the repository cannot tell: never red, and
        # what it changes shows in the items it changes. A stuck check: the service's
        # stall monitor tells it (this check is the one that would be stuck).
        if item.check not in ("repository", "stuck")
    ]
    if not any(item.check == "catalog" for item in report.items):
        # The catalog answers, so its item is not in the report: the condition is met
        # (one "resolved" if it had fired; its state may have been kept in memory).
        read = alerts.set_condition(ctx, "catalog", False, message=_CATALOG, kind="check", now=now)
        if read.action != "quiet":
            conditions.append(read)
    conditions += _gone(ctx, report, now)
    _close_unwatched(ctx, now)
    if checked.action != "quiet":
        conditions.append(checked)
    fired = [c.key for c in conditions if c.action in ("raised", "repeated")]
    if fired:
        log.warning("watchdog: alerting on %s", ", ".join(fired))
    return WatchdogResult(report=report, conditions=conditions)


# The items that leave the report when their condition is met, rather than turning
# green: a swap's once its database exists again (its note is then cleared), a queue's
# that is not configured once no job waits in it.
_LEAVING = {"swap": _SWAP, "queue": _QUEUE}


def _gone(ctx: Context, report: StatusReport, now: datetime) -> list[ConditionResult]:
    """One "resolved" for each firing condition of a leaving item no longer in the report
    (without it, its alert stayed open for ever); none for a check the status could not
    read this time (absent, but not met)."""
    present = {item.key for item in report.items}
    resolved = []
    for check, message in _LEAVING.items():
        if not report.was_read(check):
            continue
        try:
            keys = alerts.firing_keys(ctx, f"{check}:")
        except Exception as exc:
            log.warning("could not read the open %s alerts: %s", check, first_line(exc))
            continue
        for key in keys:
            if key in present:
                continue
            database = key.split(":")[1] if check == "swap" else None
            resolved.append(
                alerts.set_condition(
                    ctx, key, False, message=message, kind="check", database=database, now=now
                )
            )
    return resolved


# The items of one source: check, source, then a kind or a repository (``rpo:erp:full``,
# ``copy:erp:offsite``), or a repository alone (``verify:offsite``). ``repository:``
# items never fire (see check).
_OF_A_SOURCE = (
    "rpo",
    "size",
    "server",
    "archive",
    "restore_test",
    "copy",
    "walcopy",
    "verify",
    "notify",
    "slot",
    # Not an item: verify's condition of a hole in a repository's archived WAL
    # (``walgap:<repository>``, operations/verify.py), closed as ``verify:`` is.
    "walgap",
)


def _close_unwatched(ctx: Context, now: datetime) -> None:
    """Close, without a message, the alerts of databases, file sets and repositories no
    longer configured. Their items left the report for good: without this, such an alert
    stayed open for ever (on the page's alerts, in the status), and a "resolved" would
    say a problem nobody mended was mended."""
    settings = ctx.settings
    sources = {db.name for db in settings.databases} | {f.name for f in settings.file_sets}
    repositories = {repo.name for repo in settings.repositories}
    targets = {t.name for t in settings.notifications.targets}

    def watched(key: str) -> bool:
        check, _, rest = key.partition(":")
        if check == "notify":
            return rest in targets  # notify:<target>
        source, _, repository = rest.partition(":")
        if check in ("copy", "walcopy") and repository not in repositories:
            return False
        if check in ("verify", "walgap"):
            return source in repositories  # verify:<repository>, walgap:<repository>
        return source in sources

    try:
        keys = [
            key
            for check in _OF_A_SOURCE
            for key in alerts.firing_keys(ctx, f"{check}:")
            if not watched(key)
        ]
        closed = alerts.close_unwatched(ctx, keys, now) if keys else []
    except Exception as exc:
        log.warning(
            "could not close the alerts of what is no longer configured: %s", first_line(exc)
        )
        return
    if closed:
        log.warning(
            "watchdog: closed the alerts of what is no longer configured: %s", ", ".join(closed)
        )


def _set(ctx: Context, item: StatusItem, now: datetime) -> ConditionResult:
    stall.at(stall.SENDING, key=item.key)
    message, args = describe(item)
    return alerts.set_condition(
        ctx,
        item.key,
        item.level == "red",
        message=message,
        args=args,
        kind=_KINDS.get(item.check, "check"),
        database=item.database,
        repository=item.repository,
        hint=_hint(item),
        now=now,
        # "Messages to X fail" goes to the other targets: through X it would be told
        # (late, once X answers) to whoever reads X, then resolved at once.
        not_to=item.key.partition(":")[2] if item.check == "notify" else None,
    )


def describe(item: StatusItem) -> tuple[str, dict[str, Any]]:
    """The alert text of ``item`` (an untranslated message and its arguments)."""
    args: dict[str, Any] = {
        "database": item.database or "",
        "repository": item.repository or "",
        "count": item.count if item.count is not None else "",
        "age": _span(item.age_seconds),
        "limit": _span(item.limit_seconds),
        "error": recorded(_after_colon(item.reason)),
    }
    if item.check == "server":
        return _SERVER, args
    if item.check == "catalog":
        return _CATALOG, args
    if item.check == "queue":
        said = _QUEUE_ONE if item.count == 1 else _QUEUE
        return said, {**args, "queue": item.key.partition(":")[2]}
    if item.check == "notify":
        return _NOTIFY, {**args, "target": item.key.partition(":")[2]}
    if item.check == "slot":
        return _SLOT, {**args, "slot": item.key.split(":", 2)[-1]}
    if item.check == "prune":  # amber too; the prune's own warning alert tells it
        return _PRUNE, args
    if item.check == "swap":
        # The reason says it all: where the database is, and how to rename it back.
        target = item.key.split(":", 2)[-1]
        return _SWAP, {**args, "target": target, "error": recorded(item.reason)}
    if item.check == "size":
        return _SIZE[item.kind.value if item.kind is not None else "full"], {
            **args,
            "error": _shrunk(item.reason),
        }
    name = f"rpo:{item.kind.value}" if item.check == "rpo" and item.kind else item.check
    never, aged = _MESSAGES[name]
    if item.check == "restore_test" and item.kind is not None:
        never, aged = _RESTORE_TEST_OF.get(item.kind.value, (never, aged))
    if item.check == "archive" and item.reason.startswith(ARCHIVING_FAILS):
        never, aged = _ARCHIVING_FAILS
    if item.check == "archive" and item.reason.startswith(ARCHIVED_ELSEWHERE):
        return _ARCHIVED_ELSEWHERE, args
    if item.check == "verify":
        # Its age is always known: since the last check, or since first watched.
        return (never if item.at is None else aged), args
    return (never if item.age_seconds is None else aged), args


def _hint(item: StatusItem) -> str:
    # Phrases: an alert in Spanish says them in Spanish (respaldo.reasons); the commands
    # they name stay as typed.
    db = item.database or ""
    if item.check == "rpo":
        kind = item.kind.value if item.kind is not None else "full"
        return Phrase(
            N_(
                "'respaldo jobs' shows why the last backups did not run or failed; "
                "'respaldo backup {database} --type {kind}' takes one now"
            ),
            database=db,
            kind=kind,
        )
    if item.check == "size":
        return Phrase(
            N_(
                "check that {database} still holds its data ('respaldo list -d {database}' "
                "shows the sizes); if it shrank on purpose, its next backup settles this"
            ),
            database=db,
        )
    if item.check == "archive":
        return Phrase(
            N_("'respaldo check {database}' says what the server's archiving lacks"), database=db
        )
    if item.check == "restore_test" and item.kind is not None and item.backup_id:
        # A database that relies on more than one kind: 'respaldo drill <db>' tests its
        # newest logical backup and would leave an untested physical one red.
        return Phrase(
            N_(
                "'respaldo drills' shows the last restore tests; "
                "'respaldo drill {backup}' tests the backup the alert is about"
            ),
            backup=item.backup_id,
        )
    if item.check == "restore_test":
        return Phrase(
            N_(
                "'respaldo drills' shows the last restore tests; "
                "'respaldo drill {database}' runs one"
            ),
            database=db,
        )
    repository = item.repository or ""
    if item.check == "copy":
        return Phrase(
            N_("'respaldo copy --all --to {repository}' copies what is missing"),
            repository=repository,
        )
    if item.check == "walcopy":
        return Phrase(
            N_(
                "'respaldo jobs' shows why the wal_copy runs fail; "
                "'respaldo copy --all --to {repository}' copies the WAL it lacks now"
            ),
            repository=repository,
        )
    if item.check == "verify":
        return Phrase(
            N_(
                "'respaldo jobs' shows the daily verify's runs and their warnings (a garbage "
                "collection holding the lock longer than [locks] wait_seconds skips the "
                "repository); 'respaldo verify --all --repository {repository}' checks it now"
            ),
            repository=repository,
        )
    if item.check == "swap":
        return Phrase(N_("rename the database back as the message says, or restore it again"))
    if item.check == "notify":
        return Phrase(
            N_(
                "the page's list of messages sent shows what it refused, and why; "
                "'respaldo notify test' tries every target"
            )
        )
    if item.check == "queue":
        return Phrase(
            N_(
                "start 'respaldo worker --queue {queue}' (or 'respaldo serve' with [server] "
                "run_jobs); 'respaldo workers' lists the live ones"
            ),
            queue=item.key.partition(":")[2],
        )
    return Phrase(N_("'respaldo status' shows the whole picture"))


def _span(seconds: float | None) -> str:
    return human_age(timedelta(seconds=seconds)) if seconds is not None else ""


_SHRUNK = N_("{facts} (limit {limit})")
"""The size check's facts after its ': ' (status.py's red size reason)."""


def _shrunk(reason: str) -> str:
    """The facts of a red size reason ("1.1 MB, 10% of 11.0 MB (limit 50%)") as a phrase
    whose sizes and share stay quantities: a Spanish alert writes them as Spanish does
    ("1,1 MB, el 10 % de 11 MB (límite 50 %)"). Taken as text, they read as the CLI
    writes them in every language. Its English is the text's, as before."""
    text = _after_colon(reason)
    if isinstance(reason, Phrase) and {"facts", "limit"} <= reason.values.keys():
        facts = Phrase(_SHRUNK, facts=reason.values["facts"], limit=reason.values["limit"])
        if facts == text:
            return facts
    return recorded(text)


def _after_colon(reason: str) -> str:
    """``the server cannot be reached: <why>`` -> ``<why>``."""
    return reason.partition(": ")[2] or reason
