"""The application functions the interfaces call: typed inputs, result models whose JSON
is the contract, and errors that name an argument rather than a command-line option."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.catalog import API_FIELDS, BackupRecords, DrillRuns, record_to_api
from respaldo.errors import ConfigError, InvalidInput, RepositoryError, WeakPassphrase
from respaldo.operations.copy import copy_backups
from respaldo.operations.keys import (
    add_key,
    change_passphrase,
    list_keys,
    rebuild_repository_index,
    remove_key,
)
from respaldo.operations.listing import list_backups, list_drills, show_backup
from respaldo.operations.prune_report import prune_backups
from respaldo.operations.restore_request import RestoreRequest
from respaldo.operations.rewind import parse_time
from respaldo.operations.snapshot import set_pinned
from respaldo.operations.verify import verify
from tests.unit.operations.support import FAST_KDF, PASSPHRASE, Installation

pytestmark = pytest.mark.unit


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Installation]:
    installation = Installation.create(tmp_path)
    yield installation
    installation.close()


def test_list_and_show_print_exactly_the_api_fields_of_the_records(inst: Installation) -> None:
    first = inst.backup(timedelta(days=2))
    second = inst.backup(timedelta(days=1), verified=True)
    with inst.context() as ctx:
        listing = list_backups(ctx)
        shown = show_backup(ctx, first).to_json()
    with inst.ctx.catalog.begin() as session:
        records = BackupRecords(session).list()
        expected = [record_to_api(r) for r in records]
    got = [view.to_json() for view in listing.backups]
    assert got == expected  # values and the camelCase names: the ERP page's contract
    assert [list(view) for view in got] == [list(API_FIELDS)] * 2  # and their order
    assert [v["id"] for v in got] == [second, first]
    assert shown == next(e for e in expected if e["id"] == first)
    assert got[0]["timestamp"].endswith("Z") and listing.unrecorded_in is None


def test_an_empty_catalog_beside_a_repository_with_backups_is_named(
    inst: Installation, tmp_path: Path
) -> None:
    inst.backup(timedelta(days=1))
    with inst.ctx.catalog.begin() as session:
        for record in BackupRecords(session).list():
            session.delete(record)
    with inst.context() as ctx:
        listing = list_backups(ctx)
    assert listing.backups == [] and listing.unrecorded_in == "local"


def test_drill_history_is_shown_with_camel_case_fields(inst: Installation) -> None:
    backup_id = inst.backup(timedelta(days=1))
    with inst.ctx.catalog.begin() as session:
        runs = DrillRuns(session)
        run = runs.start(backup_id, database="erp", scratch_name="s")
        runs.finish(
            run.id,
            passed=True,
            restore_seconds=1.5,
            checks=[{"name": "rows", "ok": True, "detail": "2 tables"}],
        )
    with inst.context() as ctx:
        (shown,) = [v.to_json() for v in list_drills(ctx, backup_id=backup_id)]
    assert list(shown) == [
        "runId", "backupId", "database", "status", "startedAt", "finishedAt",
        "restoreSeconds", "checks", "errorMessage",
    ]  # fmt: skip
    assert shown["status"] == "passed" and shown["checks"][0]["detail"] == "2 tables"


def test_copy_of_all_copies_what_the_secondary_lacks(inst: Installation) -> None:
    old = inst.backup(timedelta(days=2))
    inst.replicate()
    new = inst.backup(timedelta(days=1))
    with inst.context() as ctx:
        outcomes = copy_backups(ctx, None, "second")
        assert [o.backup_id for o in outcomes] == [new]
        assert copy_backups(ctx, None, "second") == []
    assert inst.manifests("second") == {old, new}


def test_verify_takes_exactly_one_scope_and_names_a_bad_subset(inst: Installation) -> None:
    backup_id = inst.backup(timedelta(days=1))
    with inst.context() as ctx:
        with pytest.raises(ConfigError):
            verify(ctx)
        with pytest.raises(ConfigError):
            verify(ctx, backup_ids=[backup_id], everything=True)
        with pytest.raises(InvalidInput) as bad:
            verify(ctx, subset="3/2")
        assert bad.value.field == "subset" and "--" not in str(bad.value)
        result = verify(ctx, everything=True)
        assert result.ok and result.backups == 1 and result.packs_checked
        assert result.to_json()["unreferencedPacks"] == 0
        sliced = [verify(ctx, subset=f"{n}/2") for n in (1, 2)]
        assert all(r.ok for r in sliced) and sum(r.chunks for r in sliced) > 0
        assert verify(ctx, backup_ids=[backup_id]).backups == 1


def test_keys_are_listed_added_changed_and_removed(inst: Installation) -> None:
    with inst.context() as ctx:
        (original,) = list_keys(ctx)
        assert original.current
        with pytest.raises(WeakPassphrase):
            add_key(ctx, "short", kdf=FAST_KDF)
        assert len(list_keys(ctx)) == 1  # nothing was written
        added = add_key(ctx, "another long passphrase", kdf=FAST_KDF)
        assert [a.repository for a in added] == [r.name for r in ctx.settings.repositories]
        key = added[0].key
        assert {k.id: k.current for k in list_keys(ctx)} == {original.id: True, key: False}
        change = change_passphrase(ctx, PASSPHRASE + " anew", kdf=FAST_KDF)[0]
        assert change.old_keys == [original.id]
        remove_key(ctx, key)
        with pytest.raises(RepositoryError):  # the last key never goes
            remove_key(ctx, change.new_key)


def test_index_rebuild_reloads_the_index_the_context_holds(inst: Installation) -> None:
    backup_id = inst.backup(timedelta(days=1))
    with inst.context() as ctx:
        held = ctx.repository()
        held.index = type(held.index)()  # as if the index had been lost
        result = rebuild_repository_index(ctx)
        assert result.ok and result.packs >= 1 and result.chunks >= 1
        assert ctx.repository() is held and len(held.index) == result.chunks
        assert verify(ctx, backup_ids=[backup_id]).ok


@pytest.mark.parametrize(
    ("text", "problem"),
    [("yesterday", "is not a date and time"), ("2026-11-28T09:00:00", "has no time zone")],
)
def test_times_are_iso_with_a_zone(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_time(text, "to")
    assert raised.value.field == "to" and problem in str(raised.value)
    assert parse_time("2026-11-28T09:00:00Z") == datetime(2026, 11, 28, 9, tzinfo=UTC)


def test_prune_report_has_the_fields_prune_json_always_had(inst: Installation) -> None:
    for days in (40, 30, 1):
        inst.backup(timedelta(days=days))
    with inst.context() as ctx:
        report = prune_backups(ctx, dry_run=True).to_json()
    assert list(report) == [
        "dryRun", "now", "decisions", "deleted", "repositories", "bytesReclaimed", "warnings",
    ]  # fmt: skip
    assert list(report["decisions"][0]) == [
        "id", "databaseName", "backupType", "status", "completedAt", "decision", "rules",
    ]  # fmt: skip
    repo = report["repositories"][0]
    assert list(repo) == [
        "name", "location", "manifestsDeleted", "error", "deferred", "gc", "wal", "objectLock",
    ]  # fmt: skip
    assert list(repo["gc"]) == [
        "backups", "packs", "packsDeleted", "packsRepacked", "packsWritten", "chunksDropped",
        "temporariesRemoved", "bytesBefore", "bytesAfter", "bytesReclaimed", "problems",
    ]  # fmt: skip
    assert report["dryRun"] is True and "+00:00" in report["now"]
    assert {d["decision"] for d in report["decisions"]} <= {"keep", "expire"}


def test_a_restore_request_that_cannot_run_cannot_be_made(tmp_path: Path) -> None:
    target = tmp_path / "restored"
    with pytest.raises(ConfigError):
        RestoreRequest("20261127T120000Z-48b241c1")  # no target
    with pytest.raises(ConfigError):
        RestoreRequest("20261127T120000Z-48b241c1", target_database="x", target_dir=target)
    with pytest.raises(InvalidInput) as raised:
        RestoreRequest("20261127T120000Z-48b241c1", target_dir=target, start=True)
    assert raised.value.field == "start"
    with pytest.raises(InvalidInput) as raised:
        RestoreRequest("20261127T120000Z-48b241c1", target_database="x", target_time="noon")
    assert raised.value.field == "target_time"
    with pytest.raises(InvalidInput) as raised:
        RestoreRequest("20261127T120000Z-48b241c1", target_datadir=target, target_time="noon")
    assert raised.value.field == "target_time"
    # A time without its UTC offset: the zone it is in is not guessed (nor is 'CET').
    for bare in ("2026-03-29 02:30", "2026-11-28T08:30:00"):
        with pytest.raises(InvalidInput) as raised:
            RestoreRequest("20261127T120000Z-48b241c1", target_datadir=target, target_time=bare)
        assert raised.value.field == "target_time"
        assert f"{bare!r} has no UTC offset" in raised.value.args[0]
        assert raised.value.hint is not None and "Madrid in winter" in raised.value.hint
    with pytest.raises(InvalidInput, match="is not an ISO 8601 time"):
        RestoreRequest(
            "20261127T120000Z-48b241c1", target_datadir=target, target_time="2026-11-28 08:30 CET"
        )
    with pytest.raises(InvalidInput) as raised:
        RestoreRequest("20261127T120000Z-48b241c1", target_dir=target, tables=("a.b",))
    assert raised.value.field == "tables"
    with pytest.raises(InvalidInput) as raised:
        RestoreRequest(
            "20261127T120000Z-48b241c1", target_database="x", replace=True, schemas=("a",)
        )
    assert raised.value.field == "schemas" and "<<replace>>" in raised.value.args[0]
    request = RestoreRequest(
        "20261127T120000Z-48b241c1", target_datadir=target, target_time="2026-11-28 07:30:00Z"
    )
    assert request.target == str(target) and request.recovery_target().time is not None


def test_pinning_returns_the_backup_as_a_result_model(inst: Installation) -> None:
    backup_id = inst.backup(timedelta(days=1))
    with inst.context() as ctx:
        pinned = set_pinned(ctx, backup_id, True)
        assert pinned.id == backup_id and pinned.to_json()["pinned"] is True
        assert set_pinned(ctx, backup_id, False).pinned is False
        assert show_backup(ctx, backup_id).pinned is False
