"""Retention: which backups to keep and which to expire, decided by one pure function.

:func:`decide` takes the facts of every backup (:class:`BackupFacts`, built from catalog
records by the caller), a policy per (database, kind) and the current time, and returns a
:class:`Decision` per backup: keep or expire, and the rules that decided it, in words a
person can check ("keep-last 3", "daily 2026-11-27", "newest verified"). It does no I/O,
so ``respaldo prune --dry-run``, the prune itself and (later) the API show the same thing.

Words used here:

- *group*: the backups of one (database, kind); every rule counts within its group.
- *good* backup: completed, not known to have failed verification (``verified_at``
  set with ``is_verified`` false), and not known to be missing from every repository
  (``missing``: prune lists them first). Count-based rules (keep-last, GFS, min_keep)
  count good backups, so that a backup known to be damaged or gone never takes a good
  one's place.
- *time* of a backup: ``completed_at``, else ``created_at``. Periods of the GFS rules are
  hours, days, ISO weeks, months and years in the installation's time zone (``zone``:
  prune passes ``[schedules] time_zone``, the zone the schedules and the page use): in
  UTC, the 18:00 backup of a Mexico City evening counted as the next day's, and the one
  taken after the year's closing on 31 December as the next year's, so ``yearly 2026``
  kept a backup without the year's last hours and the one with them was expired once
  January had a newer one. The hour a fall-back change repeats is two periods, each
  named with its zone's abbreviation (``2026-10-25 02h CEST``, ``02h CET``).

The rules of a :class:`Policy`, each of which *keeps* backups (a backup is expired only if
nothing keeps it):

- ``keep_until_expires``: the specification's model: a completed backup is kept until its
  ``expires_at`` (``completed_at`` + ``retention_days``); one with no expiry date is kept.
- ``keep_last`` N: the N newest good backups.
- ``keep_hourly/daily/weekly/monthly/yearly`` N: the newest good backup of each of the N
  most recent hours/days/... that have one (grandfather-father-son).
- ``min_keep`` N: the N newest completed backups, good ones first, whatever their age.
- ``failed_days``: a failed record stays this many days after it ended, for inspection
  (it holds no data; expiring it only removes the catalog record).
- ``shrink``: the newest good backup that every good backup after it is smaller than this
  fraction of (the ``[rpo]`` size check's ``shrink_percent``): the last one before the
  size fell and stayed down. Tables emptied by mistake (or a share that stayed empty)
  back up "good" every day; the status's size check was red for the first such backup
  only, the next one being compared with it, and the other rules then expired the last
  backup that held the data once it was older than they keep. It is kept until a later
  backup is that large again; deleted by hand (``DELETE /admin/backups/{id}``), the next
  older one that large, if any is left, takes its place (a shrink on purpose is settled
  by a lower ``shrink_percent`` of its own).

And invariants that no policy can switch off, per group: the newest completed backup is
kept (a cleanup after a week of failing backups keeps the last one that worked); the
newest completed backup that passed verification is kept, whatever its age, and the
newest good one (when the newest completed is known to be damaged or gone); the newest
good one each repository holds (``holders``: a mirror that missed the newer copies); pinned
backups are kept; backups still running (pending, in_progress) are kept; backups being
restored or restore-tested (``restoring``: a running or queued restore job or drill reads
them) are kept. Across groups:
a kept backup keeps its ``parent`` (the backup an incremental physical backup restores
on top of), and so its whole chain, whatever the rules say of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from respaldo.domain import BACKUP_STATUS_WORDS, BackupStatus
from respaldo.phrases import N_, Phrase, Quantity, days_said, joined, minute

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (rule name used in messages, attribute of Policy, period key of a UTC time)
# The reasons are Phrases (respaldo.phrases): prune, the API and the logs read them in
# English as always, the retention page in its language.
_GFS_WORDS = {
    "hourly": N_("hourly {period}"),
    "daily": N_("daily {period}"),
    "weekly": N_("weekly {period}"),
    "monthly": N_("monthly {period}"),
    "yearly": N_("yearly {period}"),
}
_MINIMUM = {True: N_("minimum {count} good backup"), False: N_("minimum {count} good backups")}
# min_keep fills up with backups known to be damaged or gone when too few are good: the
# reason must not call them good (a prune's listing is read to decide what to repair).
_MINIMUM_NOT_GOOD = {
    True: N_("minimum {count} backup, though not a good one: no good backup is left"),
    False: N_("minimum {count} backups, though not a good one: too few good backups are left"),
}


def _hour(t: datetime) -> str:
    key = t.strftime("%Y-%m-%d %Hh")
    if t.replace(fold=1 - t.fold).utcoffset() != t.utcoffset():
        # An hour a fall-back change repeats: two real hours, told apart by their zone.
        key += t.strftime(" %Z")
    return key


_GFS: tuple[tuple[str, str, Callable[[datetime], str]], ...] = (
    ("hourly", "keep_hourly", _hour),
    ("daily", "keep_daily", lambda t: t.strftime("%Y-%m-%d")),
    ("weekly", "keep_weekly", lambda t: "{}-W{:02d}".format(*t.isocalendar()[:2])),
    ("monthly", "keep_monthly", lambda t: t.strftime("%Y-%m")),
    ("yearly", "keep_yearly", lambda t: t.strftime("%Y")),
)


@dataclass(frozen=True, slots=True)
class Policy:
    """The retention rules of one (database, kind); see the module docstring."""

    keep_until_expires: bool = True
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    min_keep: int = 2
    failed_days: int = 7
    shrink: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{f.name} must not be negative, got {value}")
        if not 0.0 <= self.shrink < 1.0:
            raise ValueError(f"shrink must be in [0, 1), got {self.shrink}")

    @classmethod
    def from_rules(cls, rules: Mapping[str, Any]) -> Policy:
        """A policy from merged settings (``RetentionSettings.rules_for``); unknown keys
        are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in rules.items() if k in known and v is not None})

    def describe(self) -> str:
        """The rules in a few words, e.g. ``until expiry, keep-last 3, daily 7, min 2``."""
        parts = ["until expiry"] if self.keep_until_expires else []
        if self.keep_last:
            parts.append(f"keep-last {self.keep_last}")
        for name, attr, _ in _GFS:
            if getattr(self, attr):
                parts.append(f"{name} {getattr(self, attr)}")
        parts.append(f"min {self.min_keep}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class BackupFacts:
    """What retention needs to know of one backup (from its catalog record)."""

    id: str
    database: str | None
    kind: str
    status: str
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    is_verified: bool = False
    pinned: bool = False
    created_at: datetime | None = None
    verified_at: datetime | None = None
    parent: str | None = None
    """The backup this one is incremental on (it restores only on top of it), if any."""
    missing: bool = False
    """No repository holds its manifest (prune found out): it cannot be restored."""
    holders: frozenset[str] | None = None
    """The repositories that hold it (by name), when known (None: not known). A mirror
    holds only the backups whose copy to it completed."""
    size: int | None = None
    """Its size in bytes (the catalog's ``size_bytes``), when known (``Policy.shrink``)."""
    restoring: bool = False
    """A running or queued restore or restore test reads it (the catalog's jobs and drill
    runs say so): often the last good backup before a disaster, it must still be there,
    and its chain, when the restore ends (to restore it again, or the next step of a
    point-in-time recovery)."""

    @property
    def time(self) -> datetime:
        """When the backup happened, for ordering and GFS periods (aware UTC)."""
        when = self.completed_at or self.created_at or _EPOCH
        return when.astimezone(UTC)

    @property
    def completed(self) -> bool:
        return str(self.status) == BackupStatus.COMPLETED.value

    @property
    def failed(self) -> bool:
        return str(self.status) == BackupStatus.FAILED.value

    @property
    def failed_verification(self) -> bool:
        return self.verified_at is not None and not self.is_verified

    @property
    def good(self) -> bool:
        return self.completed and not self.failed_verification and not self.missing


class Action(StrEnum):
    KEEP = "keep"
    EXPIRE = "expire"


@dataclass(frozen=True, slots=True)
class Decision:
    """Keep or expire one backup, and why: every rule that keeps it, else why none does."""

    backup: BackupFacts
    action: Action
    reasons: tuple[str, ...]

    @property
    def keep(self) -> bool:
        return self.action is Action.KEEP

    @property
    def rule(self) -> str:
        return "; ".join(self.reasons)

    @property
    def holds_data(self) -> bool:
        """True if expiring it means deleting a backup from the repositories, not only a
        catalog record."""
        return self.backup.completed


PolicyFor = Callable[[str | None, str], Policy]
"""``policy_for(database, kind)``: the policy of one group."""


@dataclass(frozen=True)
class Policies:
    """A default policy and overrides by exact (database, kind): a ready ``PolicyFor``."""

    default: Policy = field(default_factory=Policy)
    overrides: Mapping[tuple[str | None, str], Policy] = field(default_factory=dict)

    def __call__(self, database: str | None, kind: str) -> Policy:
        return self.overrides.get((database, str(kind)), self.default)


def decide(
    backups: Iterable[BackupFacts],
    policy_for: PolicyFor | Policy,
    now: datetime,
    zone: tzinfo = UTC,
) -> list[Decision]:
    """Decide, for every backup, keep or expire; returned in the order given. The GFS
    periods are those of ``zone`` (see the module docstring).

    Deterministic: the same facts in any order, policies, ``now`` and ``zone`` give the
    same decisions (ties in time are broken by id). Raises ValueError for a naive ``now``
    or two facts with one id.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("decide needs a timezone-aware now")
    items = list(backups)
    lookup: PolicyFor = (
        (lambda _db, _kind: policy_for) if isinstance(policy_for, Policy) else policy_for
    )
    reasons: dict[str, list[str]] = {}
    for b in items:
        if b.id in reasons:
            raise ValueError(f"backup {b.id} appears twice")
        reasons[b.id] = []
    groups: dict[tuple[str | None, str], list[BackupFacts]] = defaultdict(list)
    for b in items:
        groups[(b.database, str(b.kind))].append(b)
    expired_why: dict[str, str] = {}
    for (database, kind), members in groups.items():
        policy = lookup(database, kind)
        _decide_group(members, policy, now, zone, reasons, expired_why)
    _keep_parents(items, reasons)
    decisions = []
    for b in items:
        kept = reasons[b.id]
        if kept:
            decisions.append(Decision(b, Action.KEEP, tuple(kept)))
        else:
            decisions.append(
                Decision(b, Action.EXPIRE, (expired_why.get(b.id, Phrase(N_("expired"))),))
            )
    return decisions


def _keep_parents(items: list[BackupFacts], reasons: dict[str, list[str]]) -> None:
    """A kept backup keeps its parent, transitively: an incremental restores only on top
    of its chain. Children are visited newest first, so each parent names its newest
    kept child."""
    by_id = {b.id: b for b in items}
    for b in sorted(items, key=lambda b: (b.time, b.id), reverse=True):
        child = b
        while reasons[child.id] and child.parent is not None and child.parent in by_id:
            parent = by_id[child.parent]
            why = Phrase(N_("parent of kept {backup}"), backup=child.id)
            if any(r.startswith("parent of kept") for r in reasons[parent.id]):
                break  # its chain is kept already
            reasons[parent.id].append(why)
            child = parent


def _decide_group(
    members: list[BackupFacts],
    policy: Policy,
    now: datetime,
    zone: tzinfo,
    reasons: dict[str, list[str]],
    expired_why: dict[str, str],
) -> None:
    def keep(b: BackupFacts, why: str) -> None:
        if why not in reasons[b.id]:
            reasons[b.id].append(why)

    newest_first = sorted(members, key=lambda b: (b.time, b.id), reverse=True)
    completed = [b for b in newest_first if b.completed]
    good = [b for b in completed if b.good]

    # Invariants first, so that they lead the list of reasons.
    for backup_id, why in protected(members).items():
        reasons[backup_id].extend(r for r in why if r not in reasons[backup_id])

    if policy.keep_until_expires:
        for b in completed:
            if b.expires_at is None:
                keep(b, Phrase(N_("no expiry date")))
            elif b.expires_at > now:
                keep(b, Phrase(N_("retention until {time} UTC"), time=_minute(b.expires_at)))
    for b in good[: policy.keep_last]:
        keep(b, Phrase(N_("keep-last {count}"), count=policy.keep_last))
    for name, attr, period in _GFS:
        wanted: int = getattr(policy, attr)
        seen: set[str] = set()
        for b in good:
            if len(seen) >= wanted:
                break
            key = period(b.time.astimezone(zone))
            if key not in seen:
                seen.add(key)
                keep(b, Phrase(_GFS_WORDS[name], period=key))
    ranked = good + [b for b in completed if not b.good]
    for b in ranked[: policy.min_keep]:
        words = _MINIMUM if b.good else _MINIMUM_NOT_GOOD
        keep(b, Phrase(words[policy.min_keep == 1], count=policy.min_keep))

    before = _before_shrink(good, policy.shrink)
    if before is not None:
        backup, share = before
        keep(backup, Phrase(N_("last before the size fell to {share} of it"), share=share))

    for b in newest_first:
        if not b.failed:
            continue
        until = b.time + timedelta(days=policy.failed_days)
        if until > now:
            keep(b, Phrase(N_("failed, kept until {time} UTC for inspection"), time=_minute(until)))
        else:
            expired_why[b.id] = Phrase(
                N_("failed {time} UTC, kept {days}"),
                time=_minute(b.time),
                days=days_said(policy.failed_days),  # "kept 1 days" before
            )
    counted = policy.describe()
    for b in completed:
        if reasons[b.id]:
            continue
        parts: list[str] = []
        if policy.keep_until_expires and b.expires_at is not None:
            parts.append(Phrase(N_("expired {time} UTC"), time=_minute(b.expires_at)))
        if b.failed_verification:
            parts.append(Phrase(N_("failed verification")))
        if b.missing:
            parts.append(Phrase(N_("in no repository")))
        parts.append(Phrase(N_("no rule keeps it ({policy})"), policy=counted))
        expired_why[b.id] = joined(parts)


def _before_shrink(good: list[BackupFacts], shrink: float) -> tuple[BackupFacts, str] | None:
    """The newest of ``good`` (newest first) that every newer one is smaller than
    ``shrink`` of, with the largest newer one's share of it; None if none is (or
    ``shrink`` is 0). Backups of unknown size, and incremental ones (small by nature),
    are not compared."""
    if shrink <= 0:
        return None
    largest_newer: int | None = None
    for b in good:
        if b.size is None or b.parent is not None:
            continue
        if largest_newer is not None and largest_newer < shrink * b.size:
            share = largest_newer / b.size
            return b, Quantity(f"{share:.0%}", "share", share)
        largest_newer = b.size if largest_newer is None else max(largest_newer, b.size)
    return None


NEWEST_IN = N_("newest in {repository}")
"""The reason that keeps the newest good backup a repository holds when newer ones are
only elsewhere (:func:`protected`)."""


def kept_for_mirrors(decision: Decision) -> list[str]:
    """The repositories ``decision`` keeps its backup for, if nothing else keeps it: the
    newest good one they hold, kept until they hold a newer one."""
    found = [name for name in map(newest_in, decision.reasons) if name is not None]
    return found if len(found) == len(decision.reasons) else []


def newest_in(reason: str) -> str | None:
    """The repository ``reason`` keeps a backup for as the newest good one it holds, if it
    is that reason."""
    if isinstance(reason, Phrase) and reason.message == NEWEST_IN:
        return reason.values["repository"]
    return None


def protected(members: Iterable[BackupFacts]) -> dict[str, list[str]]:
    """The backups of one group (one database and kind) that no policy may expire, and
    why: pinned ones, running ones, ones being restored, the newest completed, the
    newest verified and the newest good one, and the newest good one each repository
    holds (when ``holders`` are known).

    The invariants of :func:`decide`, and what a deletion by hand refuses too (see
    :mod:`respaldo.operations.deletion`). Backups of other groups must not be passed:
    "newest" is within the group.
    """
    newest_first = sorted(members, key=lambda b: (b.time, b.id), reverse=True)
    found: dict[str, list[str]] = defaultdict(list)
    for b in newest_first:
        if b.pinned:
            found[b.id].append(Phrase(N_("pinned")))
        if not b.completed and not b.failed:
            status = Phrase(BACKUP_STATUS_WORDS.get(str(b.status), str(b.status)))
            found[b.id].append(Phrase(N_("running ({status})"), status=status))
        if b.restoring:
            found[b.id].append(Phrase(N_("being restored")))
    completed = [b for b in newest_first if b.completed]
    verified = [b for b in completed if b.is_verified]
    good = [b for b in completed if b.good]
    if verified:
        found[verified[0].id].append(Phrase(N_("newest verified")))
    if completed:
        found[completed[0].id].append(Phrase(N_("newest completed")))
    if good and good[0] is not completed[0]:
        # The newest completed one is known to be damaged (or gone): this is the last
        # backup that should restore. min_keep keeps it too; a deletion by hand must not.
        found[good[0].id].append(Phrase(N_("newest good")))
    # Each repository's own newest good backup: a mirror whose copies of the newer ones
    # failed (unreachable for days) holds this one only, and deleting it because newer
    # ones are in the primary would leave nothing to restore from the mirror once the
    # primary is lost, which is what the mirror is for.
    for repository in sorted({name for b in good for name in b.holders or ()}):
        newest_there = next(b for b in good if repository in (b.holders or ()))
        if newest_there is not good[0]:
            found[newest_there.id].append(Phrase(NEWEST_IN, repository=repository))
    return dict(found)


def _minute(when: datetime) -> str:
    # A Quantity: the page writes it for its locale; prune and the API as always.
    return minute(when.astimezone(UTC))
