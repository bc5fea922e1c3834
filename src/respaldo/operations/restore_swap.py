"""The swap of a ``restore --replace``, recorded before it starts, so that a process killed
half-way through it leaves a trace the status reads.

The swap is two renames: the target to ``<target>_old_<time>``, then the staging database
to the target, with the target refusing new connections meanwhile (ALLOW_CONNECTIONS
false: an application's pool would reconnect before the rename, which refuses a database
with sessions; allowed again afterwards, under its old name). A process killed between
them (kill -9, the machine down) leaves the user's database under its ``_old_`` name,
shut, and no database under its own; nothing else would ever say where it went. So
before the first change the restore notes the swap in the catalog (``alert_states``, key
``restore-swap:<database>:<target>``, the facts as JSON in ``message``), and forgets it
once the swap is whole or undone. If the note cannot be written the swap does not start:
nothing was changed.

:func:`swap_items` (``respaldo status``, the status page and API, the watchdog, the
metrics) reads the notes left: while the restore's job has not ended nothing is said (it is
swapping now); once it has, the swap is undone as the restore undoes one that fails (the
replaced database renamed back when its name is free, what the swap shut opened again), for
an application must not stay locked out of its database until someone reads the status.
What cannot be undone is red: a target that is missing with where its previous contents
are and how to rename them back, a target that is there but still shut with how to open
it. A target that exists again and accepts connections (renamed back, or restored again)
ends the note, as does any later restore that puts a database under that name.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

import psycopg

from respaldo.catalog import AlertStates
from respaldo.catalog.jobs import orphan_reason
from respaldo.config import Settings
from respaldo.errors import ConnectionFailed, RespaldoError, RestoreError, first_line
from respaldo.operations.context import Context
from respaldo.operations.jobs import current_job
from respaldo.operations.status import StatusItem
from respaldo.phrases import N_, Phrase
from respaldo.postgres import ConnInfo, connect
from respaldo.postgres.server import allow_connections, rename_database, writable

log = logging.getLogger(__name__)

PREFIX = "restore-swap:"


@dataclass(frozen=True)
class Swap:
    """A swap noted and not known to have ended."""

    database: str
    """The configured database whose server holds the target."""
    target: str
    old: str
    """The name the target is renamed to first."""
    at: datetime
    job_id: int | None
    blocked: bool = False
    """The target was made to refuse new connections for the swap (ALLOW_CONNECTIONS
    false), to be allowed again once it is over."""


def _key(database: str, target: str) -> str:
    return f"{PREFIX}{database}:{target}"


def note_swap(
    ctx: Context, database: str, target: str, old: str, now: datetime, *, blocked: bool = False
) -> None:
    """Record, durably, that ``target`` (on the server of configured ``database``) is
    about to be renamed to ``old`` and replaced (``blocked``: and made to refuse new
    connections first). Raises RestoreError (nothing was changed) when the catalog
    cannot be written."""
    facts = {
        "database": database,
        "target": target,
        "old": old,
        "job": current_job(),
        "blocked": blocked,
    }
    try:
        with ctx.catalog.begin() as session:
            row = AlertStates(session).get_or_new(_key(database, target), level="critical", now=now)
            row.firing, row.fired_at, row.updated_at = True, now, now
            row.message = json.dumps(facts)
    except Exception as exc:
        raise RestoreError(
            f"cannot record the swap of {target} in the catalog: {first_line(exc)}",
            hint=f"nothing was changed: {target} is as it was; a swap that is not recorded "
            "could not be found again if this process died half-way through it; fix the "
            "catalog and retry",
        ) from exc


def clear_swap(ctx: Context, database: str, target: str) -> None:
    """Forget the swap noted for ``target`` (none: nothing to do). Never raises: a note
    left behind is ended by the status once the target exists."""
    try:
        with ctx.catalog.begin() as session:
            AlertStates(session).delete(_key(database, target))
    except Exception as exc:
        log.warning("cannot clear the record of the swap of %s: %s", target, first_line(exc))


def noted_swaps(ctx: Context) -> list[Swap]:
    """Every swap noted and not cleared, oldest first."""
    with ctx.catalog.read() as session:
        rows = AlertStates(session).firing_under(PREFIX)
        found = []
        for row in rows:
            try:
                facts = json.loads(row.message or "")
                swap = Swap(
                    str(facts["database"]),
                    str(facts["target"]),
                    str(facts["old"]),
                    row.fired_at or row.updated_at,
                    int(facts["job"]) if facts.get("job") is not None else None,
                    bool(facts.get("blocked", False)),
                )
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable record of a restore's swap: %s", row.key)
                continue
            # A job not ended: the restore is swapping now, or its death is not known yet.
            if swap.job_id is not None and orphan_reason(session, swap.job_id) is None:
                continue
            found.append(swap)
    return found


def swap_items(ctx: Context, settings: Settings, *, servers: bool = True) -> list[StatusItem]:
    """One red item per swap left half-done that could not be undone (see the module
    docstring); a swap whose target exists again is forgotten here. ``servers=False``:
    the catalog alone, nothing undone, every note is said. Raises what reading the
    catalog raises."""
    items = []
    for swap in noted_swaps(ctx):
        # Each sentence is a Phrase (respaldo.phrases): the page says it in its language.
        rename = (
            Phrase(
                N_(
                    'rename it back with ALTER DATABASE "{old}" RENAME TO "{target}", then '
                    'let it accept connections again with ALTER DATABASE "{target}" '
                    "ALLOW_CONNECTIONS true (it was shut for the swap)"
                ),
                old=swap.old,
                target=swap.target,
            )
            if swap.blocked
            else Phrase(
                N_(
                    'rename it back with ALTER DATABASE "{old}" RENAME TO "{target}" (after '
                    "ending the sessions connected to {old})"
                ),
                old=swap.old,
                target=swap.target,
            )
        )
        names = {"target": swap.target, "old": swap.old, "at": f"{swap.at:%Y-%m-%d %H:%M}"}
        if not servers:
            reason = Phrase(
                N_(
                    "a restore --replace of database {target} stopped half-way through its "
                    "swap ({at} UTC): if {target} is missing, its previous contents are in "
                    "{old} — {rename}"
                ),
                rename=rename,
                **names,
            )
        else:
            try:
                present = _present(settings, swap)
            except (RespaldoError, psycopg.Error) as exc:
                reason = Phrase(
                    N_(
                        "a restore --replace of database {target} stopped half-way through its "
                        "swap ({at} UTC); its previous contents may be in {old}, but the server "
                        "cannot be asked ({error}) — if {target} is missing, {rename}"
                    ),
                    rename=rename,
                    error=first_line(exc),
                    **names,
                )
            else:
                if swap.job_id is not None:
                    # Its restore is known dead: nothing else will ever put this back.
                    present = _undo(settings, swap, present)
                if swap.target in present and (
                    present[swap.target] or not swap.blocked or swap.old in present
                ):
                    clear_swap(ctx, swap.database, swap.target)
                    continue
                if swap.target in present:
                    # Back under its name (never renamed, or renamed back), still shut.
                    reason = Phrase(
                        N_(
                            "database {target} refuses every connection since a restore "
                            "--replace stopped half-way through its swap ({at} UTC) — allow "
                            'them again with ALTER DATABASE "{target}" ALLOW_CONNECTIONS true'
                        ),
                        **names,
                    )
                elif swap.old in present:
                    reason = Phrase(
                        N_(
                            "database {target} is missing; its previous contents are in {old}, "
                            "where a restore --replace that stopped half-way through its swap "
                            "({at} UTC) left them — {rename}"
                        ),
                        rename=rename,
                        **names,
                    )
                else:
                    reason = Phrase(
                        N_(
                            "database {target} is missing, and so is {old}, where a restore "
                            "--replace that stopped half-way through its swap ({at} UTC) left "
                            "its previous contents — restore it from a backup"
                        ),
                        **names,
                    )
        items.append(
            StatusItem(
                key=f"swap:{swap.database}:{swap.target}",
                check="swap",
                database=swap.database,
                level="red",
                reason=reason,
                at=swap.at,
            )
        )
    return items


def _undo(settings: Settings, swap: Swap, present: dict[str, bool]) -> dict[str, bool]:
    """Undo what a swap whose restore died left, as the restore itself undoes a swap that
    fails: the replaced database renamed back under its name when that name is free, and
    whatever the swap shut open again. A production database that refuses every connection
    (or is missing) after a failed restore is worse than the failed restore, and a status
    that only says how to fix it leaves the application down until someone reads it.
    Returns the names present afterwards; a step that fails is logged, and the status
    then says what is left to do."""
    # Writing whatever default_transaction_read_only says, as the restore's own sessions.
    admin = writable(ConnInfo.from_settings(settings.database(swap.database)))
    if admin.dbname in (None, swap.target, swap.old):
        admin = admin.with_dbname("postgres")
    try:
        if swap.target not in present and swap.old in present:
            rename_database(admin, swap.old, swap.target)
            log.warning(
                "database %s renamed back from %s, where a restore --replace that died "
                "half-way through its swap (%s UTC) left it",
                swap.target,
                swap.old,
                f"{swap.at:%Y-%m-%d %H:%M}",
            )
            present = {swap.target: present[swap.old]}
        if swap.blocked:
            # Both names present: the restored copy is in place (with the backup's own
            # setting), only the kept one was shut by the swap; else the target was.
            shut = swap.old if swap.target in present and swap.old in present else swap.target
            if present.get(shut) is False:
                allow_connections(admin, shut, True)
                log.warning(
                    "database %s accepts connections again: a restore --replace that died "
                    "half-way through its swap (%s UTC) left it refusing them",
                    shut,
                    f"{swap.at:%Y-%m-%d %H:%M}",
                )
    except (RespaldoError, psycopg.Error) as exc:
        log.warning(
            "could not undo the swap of %s a restore --replace left half-done: %s",
            swap.target,
            first_line(exc),
        )
    return _present(settings, swap)


def _present(settings: Settings, swap: Swap) -> dict[str, bool]:
    """Which of the swap's two names the server has, and whether each accepts connections.
    Raises ConfigError for a database no longer configured, ConnectionFailed."""
    admin = ConnInfo.from_settings(settings.database(swap.database))
    # The configured database may be the very one missing: ask from "postgres" then.
    candidates = [admin] if admin.dbname not in (None, swap.target) else []
    candidates.append(admin.with_dbname("postgres"))
    for n, conninfo in enumerate(candidates):
        try:
            with connect(conninfo, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT datname, datallowconn FROM pg_catalog.pg_database"
                    " WHERE datname = ANY(%s)",
                    ([swap.target, swap.old],),
                ).fetchall()
            return {str(row[0]): bool(row[1]) for row in rows}
        except ConnectionFailed:
            if n == len(candidates) - 1:
                raise
    raise AssertionError("unreachable")
