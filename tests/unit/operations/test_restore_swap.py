"""The swap of ``restore --replace`` when its second rename fails: the replaced database
is renamed back, and when even that fails, the error says where it is now.

Unit tests: a rename that fails between the two renames of a real swap cannot be
provoked deterministically on a server (the window is two statements wide)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from respaldo.config import DatabaseSettings
from respaldo.errors import QueryFailed, RestoreError
from respaldo.operations import restore
from respaldo.postgres import ConnInfo

STARTED = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
OLD = "erp_old_20261205120000"


def _swap_failing(monkeypatch: pytest.MonkeyPatch, failing: set[tuple[str, str]]) -> list[str]:
    renames: list[str] = []

    def rename(admin: ConnInfo, old: str, new: str, **_: Any) -> None:
        renames.append(f"{old}->{new}")
        if (old, new) in failing:
            raise QueryFailed(f'database "{old}" is being accessed by other users')

    monkeypatch.setattr(restore, "rename_database", rename)
    monkeypatch.setattr(restore, "terminate_connections", lambda *a, **k: 0)
    monkeypatch.setattr(restore, "database_exists", lambda admin, name: False)
    monkeypatch.setattr(restore, "allows_connections", lambda admin, name: True)
    monkeypatch.setattr(
        restore,
        "allow_connections",
        lambda admin, name, allow: renames.append(f"{'open' if allow else 'shut'} {name}"),
    )
    # The catalog's note of the swap, in the same list: it must come before any change.
    monkeypatch.setattr(
        restore,
        "note_swap",
        lambda ctx, db, target, old, now, blocked: renames.append(f"note {old} {blocked}"),
    )
    monkeypatch.setattr(restore, "clear_swap", lambda ctx, db, target: renames.append("clear"))
    return renames


CTX: Any = object()  # the catalog is reached only through note_swap and clear_swap


def _db() -> DatabaseSettings:
    return DatabaseSettings(name="erp", dsn="postgresql://u@127.0.0.1:5432/erp")


def _admin() -> ConnInfo:
    return ConnInfo.parse("postgresql://u@127.0.0.1:5432/postgres")


def test_a_failed_second_rename_puts_the_replaced_database_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renames = _swap_failing(monkeypatch, {("respaldo_staging_0a1b2c3d", "erp")})
    with pytest.raises(QueryFailed):
        restore._swap(CTX, _db(), _admin(), "respaldo_staging_0a1b2c3d", "erp", STARTED, [])
    assert renames == [
        f"note {OLD} True",
        "shut erp",
        f"erp->{OLD}",
        "respaldo_staging_0a1b2c3d->erp",
        f"{OLD}->erp",
        "open erp",
        "clear",
    ]


def test_a_whole_swap_is_noted_before_its_first_rename_and_cleared_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renames = _swap_failing(monkeypatch, set())
    swapped = restore._swap(CTX, _db(), _admin(), "respaldo_staging_0a1b2c3d", "erp", STARTED, [])
    assert swapped == OLD
    assert renames == [
        f"note {OLD} True",
        "shut erp",
        f"erp->{OLD}",
        "respaldo_staging_0a1b2c3d->erp",
        f"open {OLD}",
        "clear",
    ]


def test_a_failed_first_rename_opens_the_database_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renames = _swap_failing(monkeypatch, {("erp", OLD)})
    with pytest.raises(QueryFailed):
        restore._swap(CTX, _db(), _admin(), "respaldo_staging_0a1b2c3d", "erp", STARTED, [])
    assert renames == [f"note {OLD} True", "shut erp", f"erp->{OLD}", "open erp"]


def test_when_the_replaced_database_cannot_be_put_back_the_error_says_where_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renames = _swap_failing(monkeypatch, {("respaldo_staging_0a1b2c3d", "erp"), (OLD, "erp")})
    with pytest.raises(RestoreError) as caught:
        restore._swap(CTX, _db(), _admin(), "respaldo_staging_0a1b2c3d", "erp", STARTED, [])
    assert "clear" not in renames  # the status goes on saying where it is
    message = str(caught.value)
    # Both failures, and the name the live data has now, with the way back.
    assert f"database erp is now named {OLD}" in message
    assert "is being accessed by other users" in message
    assert f'ALTER DATABASE "{OLD}" RENAME TO "erp"' in caught.value.hint
    assert 'ALTER DATABASE "erp" ALLOW_CONNECTIONS true' in caught.value.hint


def test_a_kept_copy_that_cannot_be_opened_again_is_a_warning_of_a_restore_that_happened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renames = _swap_failing(monkeypatch, set())

    def allow(admin: ConnInfo, name: str, allow: bool) -> None:
        renames.append(f"{'open' if allow else 'shut'} {name}")
        if allow:
            raise QueryFailed("server closed the connection unexpectedly")

    monkeypatch.setattr(restore, "allow_connections", allow)
    notes: list[str] = []
    # The restored copy is in place: the restore must not say it failed (it raised).
    swapped = restore._swap(
        CTX, _db(), _admin(), "respaldo_staging_0a1b2c3d", "erp", STARTED, notes
    )
    assert swapped == OLD
    assert renames[-2:] == [f"open {OLD}", "clear"]
    (note,) = notes
    assert f"database {OLD} refuses every connection" in note
    assert f'ALTER DATABASE "{OLD}" ALLOW_CONNECTIONS true' in note


def test_a_failed_first_rename_whose_database_cannot_be_opened_again_says_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renames = _swap_failing(monkeypatch, {("erp", OLD)})

    def allow(admin: ConnInfo, name: str, allow: bool) -> None:
        renames.append(f"{'open' if allow else 'shut'} {name}")
        if allow:
            raise QueryFailed("server closed the connection unexpectedly")

    monkeypatch.setattr(restore, "allow_connections", allow)
    with pytest.raises(RestoreError) as caught:
        restore._swap(CTX, _db(), _admin(), "respaldo_staging_0a1b2c3d", "erp", STARTED, [])
    message = str(caught.value)
    assert "database erp refuses every connection" in message
    # Why the swap stopped is not lost behind it (sessions that keep coming back, say).
    assert "is being accessed by other users" in message
    assert 'ALTER DATABASE "erp" ALLOW_CONNECTIONS true' in caught.value.hint
