"""Retention as a pure function over dates: the rules, the invariants no policy can switch
off, and property-based tests over arbitrary histories and policies."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respaldo import reasons
from respaldo.config import Settings
from respaldo.i18n import translations
from respaldo.retention import (
    BackupFacts,
    Decision,
    Policies,
    Policy,
    decide,
    kept_for_mirrors,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SPEC = Policy()  # the specification's model: kept until expires_at, plus min_keep 2


def backup(
    n: int,
    age: timedelta,
    *,
    database: str | None = "erp",
    kind: str = "full",
    status: str = "completed",
    retention_days: int | None = 7,
    verified: bool | None = None,
    pinned: bool = False,
) -> BackupFacts:
    when = NOW - age
    completed = status in ("completed", "failed")
    return BackupFacts(
        id=f"b{n:03d}",
        database=database,
        kind=kind,
        status=status,
        created_at=when - timedelta(minutes=5),
        completed_at=when if completed else None,
        expires_at=when + timedelta(days=retention_days)
        if status == "completed" and retention_days is not None
        else None,
        is_verified=bool(verified),
        verified_at=when + timedelta(hours=1) if verified is not None else None,
        pinned=pinned,
    )


def daily(days: int) -> list[BackupFacts]:
    """One backup a day at 03:00 for ``days`` days, newest first (b000 is today's)."""
    today = NOW.replace(hour=3)
    return [backup(i, NOW - today + timedelta(days=i)) for i in range(days)]


def by_id(decisions: list[Decision]) -> dict[str, Decision]:
    return {d.backup.id: d for d in decisions}


def kept(decisions: Iterable[Decision]) -> set[str]:
    return {d.backup.id for d in decisions if d.keep}


# --- the specification's default -----------------------------------------------------------


def test_default_keeps_seven_days_of_daily_backups() -> None:
    decisions = by_id(decide(daily(12), SPEC, NOW))
    assert {i for i, d in decisions.items() if d.keep} == {f"b{i:03d}" for i in range(7)}
    assert decisions["b000"].reasons[0] == "newest completed"
    assert decisions["b003"].reasons == ("retention until 2026-12-02 03:00 UTC",)
    assert decisions["b009"].rule.startswith("expired 2026-11-26 03:00 UTC")
    assert "no rule keeps it (until expiry, min 2)" in decisions["b009"].rule


def test_a_week_of_failures_keeps_the_last_good_backups() -> None:
    """All completed backups are past their expiry; the newest ones stay anyway."""
    good = [backup(10 + i, timedelta(days=9 + i)) for i in range(5)]
    failed = [backup(i, timedelta(days=i), status="failed") for i in range(8)]
    decisions = by_id(decide(good + failed, SPEC, NOW))
    assert decisions["b010"].keep and "newest completed" in decisions["b010"].reasons
    assert decisions["b011"].keep and decisions["b011"].rule == "minimum 2 good backups"
    assert not any(decisions[f"b{10 + i:03d}"].keep for i in range(2, 5))
    # Failed records stay failed_days (7) for inspection, then go; they hold no data.
    assert decisions["b006"].keep and decisions["b006"].rule.startswith("failed, kept until")
    assert not decisions["b007"].keep
    assert decisions["b007"].rule == "failed 2026-11-21 12:00 UTC, kept 7 days"
    assert not decisions["b007"].holds_data and decisions["b012"].holds_data is True


def test_a_failed_record_kept_one_day_says_one_day() -> None:
    """With failed_days = 1 its expiry read "kept 1 days" (prune --dry-run, the page)."""
    good = [backup(10 + i, timedelta(days=i)) for i in range(2)]
    failed = [backup(1, timedelta(days=2), status="failed")]
    decisions = by_id(decide(good + failed, replace(SPEC, failed_days=1), NOW))
    assert decisions["b001"].rule == "failed 2026-11-26 12:00 UTC, kept 1 day"
    (said,) = decisions["b001"].reasons  # a phrase: the page says it in Spanish
    spanish = reasons.reason(said, translations("es").gettext)
    assert spanish == "falló el 2026-11-26 12:00 UTC, se conserva 1 día"


def test_no_expiry_date_is_kept() -> None:
    old = backup(1, timedelta(days=400), retention_days=None)
    newer = [backup(2, timedelta(days=1)), backup(3, timedelta(days=2))]
    assert by_id(decide([old, *newer], SPEC, NOW))["b001"].rule == "no expiry date"


# --- the other policies --------------------------------------------------------------------


def test_keep_last() -> None:
    policy = Policy(keep_until_expires=False, keep_last=3, min_keep=1)
    decisions = decide(daily(10), policy, NOW)
    assert kept(decisions) == {"b000", "b001", "b002"}
    assert by_id(decisions)["b002"].rule == "keep-last 3"


def test_gfs_buckets_are_named_by_period() -> None:
    # Six backups a day (every 4 hours) for 400 days.
    history = [backup(i, timedelta(hours=4 * i)) for i in range(6 * 400)]
    policy = Policy(
        keep_until_expires=False,
        keep_hourly=3,
        keep_daily=7,
        keep_weekly=4,
        keep_monthly=6,
        keep_yearly=2,
        min_keep=1,
    )
    decisions = decide(history, policy, NOW)
    rules = [r for d in decisions for r in d.reasons]
    assert sum(r.startswith("hourly ") for r in rules) == 3
    assert sum(r.startswith("daily ") for r in rules) == 7
    assert sum(r.startswith("weekly ") for r in rules) == 4
    assert sum(r.startswith("monthly ") for r in rules) == 6
    assert sum(r.startswith("yearly ") for r in rules) == 2
    assert "daily 2026-11-27" in rules
    assert "weekly 2026-W48" in rules
    assert "monthly 2026-10" in rules
    assert "yearly 2025" in rules
    # The newest backup of a day is the one kept for that day.
    yesterday = [d for d in decisions if "daily 2026-11-27" in d.reasons]
    assert yesterday[0].backup.time == max(
        d.backup.time for d in decisions if d.backup.time.date().isoformat() == "2026-11-27"
    )
    assert len(kept(decisions)) < 25


def at(n: int, when: datetime) -> BackupFacts:
    """Backup ``n`` completed at ``when`` (no expiry: only the GFS rules count)."""
    return replace(backup(n, NOW - when, retention_days=None), expires_at=None)


GFS_ONLY = Policy(keep_until_expires=False, min_keep=1)


def test_gfs_periods_are_the_installations_days_months_and_years() -> None:
    # Mexico City (UTC-6): physical backups at 00, 06, 12 and 18 local time, the last of
    # 2026 at 18:00 on 31 December, after the year's closing: 00:00 UTC on 1 January.
    mexico = ZoneInfo("America/Mexico_City")
    local = [datetime(2026, 12, 31, h, tzinfo=mexico) for h in (0, 6, 12, 18)]
    local += [datetime(2027, 1, 1, h, tzinfo=mexico) for h in (0, 6)]
    history = [at(i, when) for i, when in enumerate(reversed(local))]
    now = datetime(2027, 1, 1, 12, tzinfo=UTC)
    policy = replace(GFS_ONLY, keep_daily=2, keep_monthly=2, keep_yearly=2)
    decisions = by_id(decide(history, policy, now, mexico))
    closing = decisions["b002"]  # 31 December, 18:00 local
    assert closing.backup.time == datetime(2027, 1, 1, 0, tzinfo=UTC)
    assert closing.reasons == ("daily 2026-12-31", "monthly 2026-12", "yearly 2026")
    assert decisions["b000"].reasons == (
        "newest completed",
        "daily 2027-01-01",
        "monthly 2027-01",
        "yearly 2027",
        "minimum 1 good backup",
    )
    assert kept(decisions.values()) == {"b000", "b002"}
    # Counted in UTC (the default), the closing backup was January's and 2027's, and the
    # year 2026 was kept as it stood at noon on 31 December.
    in_utc = by_id(decide(history, policy, now))
    assert "yearly 2026" in in_utc["b003"].reasons
    assert not in_utc["b002"].keep


def test_a_backup_after_midnight_in_madrid_counts_for_that_day() -> None:
    madrid = ZoneInfo("Europe/Madrid")
    history = [
        at(0, datetime(2026, 12, 7, 0, 30, tzinfo=madrid)),  # 23:30 UTC on the 6th
        at(1, datetime(2026, 12, 6, 3, 0, tzinfo=madrid)),
    ]
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    decisions = by_id(decide(history, replace(GFS_ONLY, keep_daily=2), now, madrid))
    assert "daily 2026-12-07" in decisions["b000"].reasons
    assert decisions["b001"].reasons == ("daily 2026-12-06",)


def test_the_hour_a_fall_back_change_repeats_is_two_hours() -> None:
    madrid = ZoneInfo("Europe/Madrid")
    summer = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    history = [at(0, summer + timedelta(hours=1)), at(1, summer)]  # 02:30 CET, 02:30 CEST
    now = datetime(2026, 10, 25, 3, tzinfo=UTC)
    decisions = by_id(decide(history, replace(GFS_ONLY, keep_hourly=2), now, madrid))
    assert "hourly 2026-10-25 02h CET" in decisions["b000"].reasons
    assert decisions["b001"].reasons == ("hourly 2026-10-25 02h CEST",)
    # Every other hour is named as before, without a zone.
    decisions = by_id(
        decide([at(2, summer - timedelta(hours=2))], Policy(keep_hourly=1), now, madrid)
    )
    assert "hourly 2026-10-25 00h" in decisions["b002"].reasons


def test_min_keep_counts_good_backups_first() -> None:
    history = [
        backup(0, timedelta(days=20), verified=False),  # newest, but failed verification
        backup(1, timedelta(days=21)),
        backup(2, timedelta(days=22)),
        backup(3, timedelta(days=23)),
    ]
    decisions = by_id(decide(history, Policy(min_keep=2), NOW))
    assert decisions["b000"].reasons == ("newest completed",)
    assert decisions["b001"].reasons == ("newest good", "minimum 2 good backups")
    assert decisions["b002"].reasons == ("minimum 2 good backups",)
    assert not decisions["b003"].keep


def test_min_keep_filled_with_damaged_backups_does_not_call_them_good() -> None:
    # Two of three backups failed verification (a lost pack marked them): min_keep 2
    # keeps one of them, and the reason must say it is not a good one.
    history = [
        backup(0, timedelta(days=20), verified=False),
        backup(1, timedelta(days=21), verified=False),
        backup(2, timedelta(days=22)),
    ]
    decisions = by_id(decide(history, Policy(min_keep=2), NOW))
    assert decisions["b002"].reasons == ("newest good", "minimum 2 good backups")
    assert decisions["b000"].reasons == (
        "newest completed",
        "minimum 2 backups, though not a good one: too few good backups are left",
    )
    assert not decisions["b001"].keep
    alone = by_id(decide(history[:1], Policy(min_keep=1), NOW))
    assert alone["b000"].reasons == (
        "newest completed",
        "minimum 1 backup, though not a good one: no good backup is left",
    )
    spanish = reasons.reason(alone["b000"].reasons[1], translations("es").gettext)
    assert spanish.startswith("mínimo 1 backup, aunque no válido")


def test_newest_verified_is_kept_whatever_its_age() -> None:
    history = [
        backup(0, timedelta(days=1)),
        backup(1, timedelta(days=2)),
        backup(2, timedelta(days=300), verified=True),
        backup(3, timedelta(days=301), verified=True),
    ]
    decisions = by_id(decide(history, Policy(keep_last=1, min_keep=1), NOW))
    assert decisions["b002"].reasons == ("newest verified",)
    assert not decisions["b003"].keep


def test_each_repository_keeps_the_newest_good_backup_it_holds() -> None:
    """A mirror whose copies of the newer backups failed holds an old one only: that one
    stays, with a reason naming the mirror, until the mirror holds a newer good one."""
    both, primary = frozenset({"local", "offsite"}), frozenset({"local"})
    history = [
        replace(backup(0, timedelta(days=1)), holders=primary),
        replace(backup(1, timedelta(days=2)), holders=primary),
        replace(backup(2, timedelta(days=30)), holders=both),
        replace(backup(3, timedelta(days=31)), holders=both),
    ]
    decisions = by_id(decide(history, Policy(keep_until_expires=False, min_keep=1), NOW))
    assert decisions["b002"].reasons == ("newest in offsite",)
    assert kept_for_mirrors(decisions["b002"]) == ["offsite"]
    assert kept(decisions.values()) == {"b000", "b002"}
    assert kept_for_mirrors(decisions["b000"]) == []
    # The mirror caught up: nothing is kept for it any more.
    caught_up = [replace(b, holders=both) for b in history]
    assert kept(decide(caught_up, Policy(keep_until_expires=False, min_keep=1), NOW)) == {"b000"}
    # Not known (the API's preview of a catalog without copies): as before.
    unknown = [replace(b, holders=None) for b in history]
    assert kept(decide(unknown, Policy(keep_until_expires=False, min_keep=1), NOW)) == {"b000"}


def test_a_mirror_keeps_its_newest_good_backup_not_a_damaged_one() -> None:
    both, primary = frozenset({"local", "offsite"}), frozenset({"local"})
    history = [
        replace(backup(0, timedelta(days=1)), holders=primary),
        replace(backup(1, timedelta(days=30), verified=False), holders=both),
        replace(backup(2, timedelta(days=31)), holders=both),
    ]
    decisions = by_id(decide(history, Policy(keep_until_expires=False, min_keep=1), NOW))
    assert decisions["b002"].reasons == ("newest in offsite",)
    assert not decisions["b001"].keep


def test_pinned_and_running_are_kept() -> None:
    history = [
        backup(0, timedelta(days=1)),
        backup(1, timedelta(days=900), pinned=True),
        backup(2, timedelta(minutes=3), status="in_progress"),
        backup(3, timedelta(minutes=1), status="pending"),
    ]
    decisions = by_id(decide(history, Policy(keep_until_expires=False, min_keep=1), NOW))
    assert decisions["b001"].reasons == ("pinned",)
    assert decisions["b002"].reasons == ("running (in_progress)",)
    assert decisions["b003"].keep


def test_groups_are_per_database_and_kind() -> None:
    history = [
        backup(0, timedelta(days=30), database="erp"),
        backup(1, timedelta(days=30), database="crm"),
        backup(2, timedelta(days=30), database="erp", kind="files"),
        backup(3, timedelta(days=31), database="erp"),
    ]
    policy = Policy(keep_until_expires=False, min_keep=1)
    assert kept(decide(history, policy, NOW)) == {"b000", "b001", "b002"}


def test_policies_per_group() -> None:
    history = [backup(i, timedelta(days=i + 30)) for i in range(5)]
    history += [backup(10 + i, timedelta(days=i + 30), database="crm") for i in range(5)]
    policies = Policies(
        default=Policy(keep_until_expires=False, min_keep=1),
        overrides={("erp", "full"): Policy(keep_until_expires=False, keep_last=4, min_keep=1)},
    )
    decisions = decide(history, policies, NOW)
    assert kept(decisions) == {"b000", "b001", "b002", "b003", "b010"}


def test_settings_overrides_become_policies() -> None:
    settings = Settings(
        retention={
            "min_keep": 3,
            "overrides": [
                {"database": "erp", "keep_daily": 7, "keep_until_expires": False},
                {"kind": "full", "keep_weekly": 4},
                {"database": "erp", "kind": "full", "keep_last": 2},
            ],
        }
    )
    erp_full = Policy.from_rules(settings.retention.rules_for("erp", "full"))
    assert erp_full == Policy(
        keep_until_expires=False, keep_daily=7, keep_weekly=4, keep_last=2, min_keep=3
    )
    assert Policy.from_rules(settings.retention.rules_for("crm", "files")) == Policy(min_keep=3)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="timezone"):
        decide([], SPEC, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="twice"):
        decide([backup(1, timedelta(0)), backup(1, timedelta(1))], SPEC, NOW)
    with pytest.raises(ValueError, match="negative"):
        Policy(keep_last=-1)


# --- properties over arbitrary histories and policies -----------------------------------------

STATUSES = ["completed", "completed", "completed", "failed", "in_progress", "pending"]


@st.composite
def histories(draw: st.DrawFn) -> list[BackupFacts]:
    count = draw(st.integers(min_value=0, max_value=30))
    out = []
    for i in range(count):
        age = timedelta(minutes=draw(st.integers(min_value=-60, max_value=3 * 365 * 24 * 60)))
        status = draw(st.sampled_from(STATUSES))
        verified = draw(st.sampled_from([None, None, True, False]))
        out.append(
            backup(
                i,
                age,
                database=draw(st.sampled_from(["erp", "crm", None])),
                kind=draw(st.sampled_from(["full", "incremental", "files"])),
                status=status,
                retention_days=draw(st.sampled_from([None, 1, 7, 30])),
                verified=verified if status == "completed" else None,
                pinned=draw(st.booleans()) and draw(st.booleans()),
            )
        )
    return out


policies_st = st.builds(
    Policy,
    keep_until_expires=st.booleans(),
    keep_last=st.integers(0, 5),
    keep_hourly=st.integers(0, 4),
    keep_daily=st.integers(0, 8),
    keep_weekly=st.integers(0, 5),
    keep_monthly=st.integers(0, 12),
    keep_yearly=st.integers(0, 3),
    min_keep=st.integers(0, 4),  # 0: the invariants alone (the settings ask for 1 or more)
    failed_days=st.integers(0, 30),
)

nows = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


def _newest(d: Decision) -> tuple[datetime, str]:
    # Ties in time are broken by id, as decide() does.
    return (d.backup.time, d.backup.id)


@settings(max_examples=150, deadline=None)
@given(history=histories(), policy=policies_st, now=nows)
def test_no_policy_leaves_a_group_without_a_restorable_backup(
    history: list[BackupFacts], policy: Policy, now: datetime
) -> None:
    decisions = decide(history, policy, now)
    for key in {(b.database, b.kind) for b in history}:
        group = [d for d in decisions if (d.backup.database, d.backup.kind) == key]
        if any(d.backup.completed for d in group):
            assert any(d.keep and d.backup.completed for d in group)
            newest = max((d for d in group if d.backup.completed), key=_newest)
            assert newest.keep
        verified = [d for d in group if d.backup.completed and d.backup.is_verified]
        if verified:
            assert max(verified, key=_newest).keep
        good_ones = [d for d in group if d.backup.good]
        if good_ones:
            assert max(good_ones, key=_newest).keep
        good = [d for d in group if d.backup.completed]
        kept_good = [d for d in good if d.keep]
        assert len(kept_good) >= min(policy.min_keep, len(good))


@settings(max_examples=80, deadline=None)
@given(history=histories(), policy=policies_st, now=nows)
def test_pinned_and_running_never_expire(
    history: list[BackupFacts], policy: Policy, now: datetime
) -> None:
    for d in decide(history, policy, now):
        if d.backup.pinned or d.backup.status in ("pending", "in_progress"):
            assert d.keep, d
        assert d.reasons, "every decision names its rule"


@settings(max_examples=80, deadline=None)
@given(history=histories(), policy=policies_st, now=nows, seed=st.integers(0, 2**32))
def test_decisions_are_deterministic(
    history: list[BackupFacts], policy: Policy, now: datetime, seed: int
) -> None:
    first = {d.backup.id: (d.action, d.reasons) for d in decide(history, policy, now)}
    shuffled = list(history)
    random.Random(seed).shuffle(shuffled)
    again = {d.backup.id: (d.action, d.reasons) for d in decide(shuffled, policy, now)}
    assert first == again
    assert [d.backup.id for d in decide(shuffled, policy, now)] == [b.id for b in shuffled]


@settings(max_examples=80, deadline=None)
@given(history=histories(), policy=policies_st, now=nows)
def test_expiry_is_monotonic_in_time(
    history: list[BackupFacts], policy: Policy, now: datetime
) -> None:
    """What expires now stays expired later, so an interrupted prune can finish its work:
    a backup whose manifests went but whose record stayed is expired again next time."""
    later = now + timedelta(days=3)
    before = kept(decide(history, policy, now))
    after = kept(decide(history, policy, later))
    # Time only ever moves backups from keep to expire (with the same backups present).
    assert after <= before


# --- incremental physical backups: a kept backup keeps the chain it restores from ---------


def test_a_kept_incremental_keeps_every_backup_of_its_chain() -> None:
    from dataclasses import replace

    policy = Policy(keep_until_expires=False, keep_last=1, min_keep=1)
    full = backup(1, timedelta(days=3), kind="incremental")
    first = replace(backup(2, timedelta(days=2), kind="incremental"), parent=full.id)
    second = replace(backup(3, timedelta(days=1), kind="incremental"), parent=first.id)
    other = backup(4, timedelta(days=4), kind="incremental")
    decisions = {d.backup.id: d for d in decide([full, first, second, other], policy, NOW)}
    assert decisions[second.id].keep
    assert decisions[first.id].keep and "parent of kept b003" in decisions[first.id].rule
    assert decisions[full.id].keep and "parent of kept b002" in decisions[full.id].rule
    assert not decisions[other.id].keep  # no kept backup depends on it


def test_an_incremental_being_restored_keeps_itself_and_its_chain() -> None:
    from dataclasses import replace

    # A physical restore (or drill) of an older incremental: the rules keep only the
    # newest, but the restore, and so the chain it restores on top of, must stay.
    policy = Policy(keep_until_expires=False, keep_last=1, min_keep=1)
    full = backup(1, timedelta(days=3), kind="incremental")
    first = replace(
        backup(2, timedelta(days=2), kind="incremental"), parent=full.id, restoring=True
    )
    newest = backup(3, timedelta(days=1), kind="incremental")
    decisions = {d.backup.id: d for d in decide([full, first, newest], policy, NOW)}
    assert decisions[first.id].reasons == ("being restored",)
    assert decisions[full.id].keep and "parent of kept b002" in decisions[full.id].rule


def test_an_expired_incremental_does_not_keep_its_parent() -> None:
    from dataclasses import replace

    policy = Policy(keep_until_expires=False, keep_last=1, min_keep=1)
    full = backup(1, timedelta(days=3), kind="incremental")
    child = replace(backup(2, timedelta(days=2), kind="incremental"), parent=full.id)
    newer_full = backup(3, timedelta(days=1), kind="incremental")
    decisions = {d.backup.id: d for d in decide([full, child, newer_full], policy, NOW)}
    assert [i for i, d in decisions.items() if d.keep] == [newer_full.id]


def _sized(n: int, size: int, parent: str | None = None) -> BackupFacts:
    when = datetime(2026, 11, 1, 3, tzinfo=UTC) + timedelta(days=n)
    return BackupFacts(
        id=f"b{n:02d}", database="erp", kind="full", status="completed",
        completed_at=when, expires_at=when + timedelta(days=1), size=size, parent=parent,
    )  # fmt: skip


def test_the_last_backup_before_the_size_fell_and_stayed_down_is_kept() -> None:
    policy = Policy(keep_until_expires=False, keep_last=2, min_keep=1, shrink=0.5)
    now = datetime(2026, 12, 6, tzinfo=UTC)
    fell = [_sized(1, 900), _sized(2, 1000), _sized(3, 10), _sized(4, 12), _sized(5, 11)]
    kept = {d.backup.id: d.reasons for d in decide(fell, policy, now) if d.keep}
    assert set(kept) == {"b02", "b04", "b05"}
    assert any("last before the size fell to 1% of it" in r for r in kept["b02"])
    # Back up to size: nothing is kept for it any more.
    back = [*fell, _sized(6, 800)]
    assert {d.backup.id for d in decide(back, policy, now) if d.keep} == {"b05", "b06"}
    # Off (shrink 0), and incremental backups (small by nature) not compared.
    assert {d.backup.id for d in decide(fell, replace(policy, shrink=0.0), now) if d.keep} == {
        "b04",
        "b05",
    }
    chain = [_sized(1, 1000), *(_sized(n, 10, parent=f"b{n - 1:02d}") for n in range(2, 5))]
    reasons = [r for d in decide(chain, policy, now) for r in d.reasons]
    assert not any("size fell" in r for r in reasons)
    with pytest.raises(ValueError, match="shrink"):
        Policy(shrink=1.0)


def test_a_shrink_on_purpose_is_settled_by_a_lower_shrink_not_a_deletion() -> None:
    # docs/configuration.md: deleting the last backup before the fall by hand makes the
    # next older one that large the last before it; a share below the fall settles it.
    policy = Policy(keep_until_expires=False, keep_last=1, keep_daily=3, min_keep=1, shrink=0.5)
    now = datetime(2026, 12, 6, tzinfo=UTC)
    older = [_sized(n, 1000) for n in range(1, 4)] + [_sized(n, 300) for n in range(4, 9)]
    kept = {d.backup.id: d.reasons for d in decide(older, policy, now) if d.keep}
    assert any("size fell to 30%" in r for r in kept["b03"])
    deleted = [b for b in older if b.id != "b03"]
    kept = {d.backup.id: d.reasons for d in decide(deleted, policy, now) if d.keep}
    assert any("size fell to 30%" in r for r in kept["b02"])
    settled = {d.backup.id for d in decide(deleted, replace(policy, shrink=0.25), now) if d.keep}
    assert settled == {"b06", "b07", "b08"}
