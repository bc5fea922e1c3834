"""Which standbys a backup refuses (respaldo.postgres.standby.stale_reason), and what the
status's server item says of them (for a database backed up logically only too): the
cases the integration test (tests/integration/physical/test_standby_dsn.py) does not
build, above all those that must not be refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from respaldo import reasons
from respaldo.i18n import translations
from respaldo.operations import status
from respaldo.operations.status_server import ServerReading
from respaldo.postgres.standby import StandbyReading, stale_reason

LAG = timedelta(minutes=5)
WHEN = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)


def _standby(**changes: object) -> StandbyReading:
    said: dict[str, object] = {
        "in_recovery": True,
        "replayed_at": WHEN,
        "age": timedelta(hours=2),
        "connected": True,
        "replayed": "0/3000060",
        "upstream": "0/3000060",
    }
    return StandbyReading(**{**said, **changes})  # type: ignore[arg-type]


def test_a_standby_of_a_quiet_primary_is_not_refused() -> None:
    """Streaming, replayed all its primary sent: its last transaction two hours old is a
    primary that wrote nothing since, not a standby behind."""
    assert stale_reason(_standby(), LAG) is None
    assert stale_reason(StandbyReading(in_recovery=False), LAG) is None


def test_a_standby_cut_off_a_moment_ago_is_not_refused() -> None:
    """Without a receiver but with a transaction replayed within the limit (a primary
    restarting): its data is that recent."""
    assert stale_reason(_standby(connected=False, age=timedelta(minutes=4)), LAG) is None


def test_a_standby_cut_off_with_old_or_no_data_is_refused() -> None:
    stale = stale_reason(_standby(connected=False), LAG)
    assert stale is not None and not stale.waits
    assert stale.message.startswith("the server is a standby that is not connected to its")
    assert "committed at 2026-12-07 22:00:00+00:00, 2 h 0 min ago" in stale.message
    assert "(more than [rpo] standby_lag_minutes = 5)" in stale.message
    never = stale_reason(_standby(connected=False, replayed_at=None, age=None), LAG)
    assert never is not None and "has replayed no transaction since it started" in never.message


def test_replay_behind_what_was_received_waits_then_is_refused() -> None:
    behind = _standby(upstream="0/5000000", behind=True)
    stale = stale_reason(behind, LAG)
    assert stale is not None and stale.waits
    assert "replayed up to 0/3000060, the primary's WAL at 0/5000000" in stale.message
    assert stale_reason(_standby(upstream="0/5000000", behind=True, age=LAG), LAG) is None


def test_the_server_item_notes_a_standby() -> None:
    """The archive item, there only where WAL is archived, said "standby" alone: a
    database backed up logically only had no word of it."""
    healthy = ServerReading(version="18.1", standby=_standby())
    item = status._server_item("erp", healthy, LAG)
    assert item.level == "green"
    assert item.reason == "PostgreSQL 18.1 answers (a standby that replays what it receives)"
    spanish = reasons.reason(item.reason, translations("es").gettext)
    assert spanish == "PostgreSQL 18.1 responde (un standby que reproduce lo que recibe)"
    cut_off = status._server_item(
        "erp", ServerReading(version="18.1", standby=_standby(connected=False)), LAG
    )
    assert cut_off.level == "red"
    assert "not connected to its primary" in cut_off.reason
    behind = ServerReading(version="18.1", standby=_standby(upstream="0/5000000", behind=True))
    assert status._server_item("erp", behind, LAG).level == "amber"
    primary = ServerReading(version="18.1", standby=StandbyReading(in_recovery=False))
    assert status._server_item("erp", primary, LAG).reason == "PostgreSQL 18.1 answers"
