"""Domain types: the backup state machine and backup ids."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from respaldo.domain import (
    BACKUP_TRANSITIONS,
    BackupKind,
    BackupStatus,
    TriggeredBy,
    backup_id_time,
    new_backup_id,
    validate_backup_id,
)
from respaldo.errors import CatalogError, InvalidBackupId, InvalidTransition, RespaldoError

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 28, 8, 30, tzinfo=UTC)

ALLOWED = {
    (BackupStatus.PENDING, BackupStatus.IN_PROGRESS),
    (BackupStatus.PENDING, BackupStatus.FAILED),
    (BackupStatus.IN_PROGRESS, BackupStatus.COMPLETED),
    (BackupStatus.IN_PROGRESS, BackupStatus.FAILED),
}


def test_enum_values_are_the_catalog_and_api_strings() -> None:
    assert [k.value for k in BackupKind] == ["full", "incremental", "files", "snapshot"]
    assert [s.value for s in BackupStatus] == ["pending", "in_progress", "completed", "failed"]
    assert [t.value for t in TriggeredBy] == ["cli", "schedule", "api"]


@pytest.mark.parametrize("current", list(BackupStatus))
@pytest.mark.parametrize("target", list(BackupStatus))
def test_transitions_are_exactly_the_specified_ones(
    current: BackupStatus, target: BackupStatus
) -> None:
    expected = (current, target) in ALLOWED
    assert current.can_become(target) is expected
    if expected:
        current.check_transition(target)
    else:
        with pytest.raises(InvalidTransition) as caught:
            current.check_transition(target, backup_id="20261128T083000Z-3f9a1c2e")
        assert (caught.value.current, caught.value.requested) == (current.value, target.value)
        assert f"from {current.value} to {target.value}" in str(caught.value)


def test_final_statuses() -> None:
    assert {s for s in BackupStatus if s.is_final} == {BackupStatus.COMPLETED, BackupStatus.FAILED}


def test_refusal_messages_say_what_is_allowed() -> None:
    with pytest.raises(InvalidTransition) as caught:
        BackupStatus.COMPLETED.check_transition(BackupStatus.IN_PROGRESS, backup_id="B")
    assert (
        str(caught.value) == "backup B cannot go from completed to in_progress: completed is final"
    )
    with pytest.raises(InvalidTransition) as caught:
        BackupStatus.PENDING.check_transition(BackupStatus.COMPLETED)
    assert str(caught.value) == (
        "a backup cannot go from pending to completed: "
        "from pending it can only become failed or in_progress"
    )
    assert isinstance(caught.value, CatalogError)
    assert isinstance(caught.value, RespaldoError)


def test_the_transition_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        BACKUP_TRANSITIONS[BackupStatus.COMPLETED] = frozenset({BackupStatus.PENDING})  # type: ignore[index]


def test_new_ids_have_the_documented_shape_and_validate() -> None:
    backup_id = new_backup_id(NOW)
    assert re.fullmatch(r"20261128T083000Z-[0-9a-f]{8}", backup_id)
    assert validate_backup_id(backup_id) == backup_id
    assert backup_id_time(backup_id) == NOW


def test_new_ids_are_in_utc_whatever_the_zone_given() -> None:
    tokyo = NOW.astimezone(timezone(timedelta(hours=9)))
    assert new_backup_id(tokyo).startswith("20261128T083000Z-")


def test_new_ids_are_unique_and_sort_by_time() -> None:
    same_second = {new_backup_id(NOW) for _ in range(1000)}
    assert len(same_second) == 1000
    times = [NOW + timedelta(seconds=s) for s in (0, 1, 59, 3600, 86400 * 400)]
    ids = [new_backup_id(t) for t in times]
    assert ids == sorted(ids)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        new_backup_id(datetime(2026, 11, 28, 8, 30))  # naive on purpose


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../x",
        "..",
        "/etc/passwd",
        "20261128T083000Z",
        "20261128T083000Z-3f9a1c2",
        "20261128T083000Z-3f9a1c2e0",
        "20261128T083000Z-3F9A1C2E",
        "20261128T083000Z-3f9a1c2g",
        "20261128T083000Z_3f9a1c2e",
        "20261128t083000z-3f9a1c2e",
        " 20261128T083000Z-3f9a1c2e",
        "20261128T083000Z-3f9a1c2e\n",
        "20261128T083000Z-3f9a1c2e/../x",
        "2026112\uff18T083000Z-3f9a1c2e",  # a full-width digit eight
        "20261332T083000Z-3f9a1c2e",  # no 13th month
        "20261128T246000Z-3f9a1c2e",  # no 24:60
        "20260229T083000Z-3f9a1c2e",  # 2026 is no leap year
    ],
)
def test_bad_ids_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidBackupId) as caught:
        validate_backup_id(bad)
    assert "20261128T083000Z-3f9a1c2e" in caught.value.hint


@pytest.mark.parametrize("not_a_string", [None, 20261128, b"20261128T083000Z-3f9a1c2e"])
def test_non_strings_are_rejected(not_a_string: object) -> None:
    with pytest.raises(InvalidBackupId):
        validate_backup_id(not_a_string)


def test_good_ids_pass_unchanged() -> None:
    for good in ("20261128T083000Z-3f9a1c2e", "20240229T235959Z-00000000"):
        assert validate_backup_id(good) == good
