"""``repair`` as an operation: mirrors from the configuration, the catalog marked, restore
refusing what is lost; and a backup that is not known-good marked as such."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from respaldo import reasons
from respaldo.catalog import open_catalog
from respaldo.cli.main import invoke
from respaldo.domain import BackupKind, TriggeredBy
from respaldo.errors import IntegrityError, StorageError
from respaldo.i18n import translations
from respaldo.operations import audit
from respaldo.operations import repair as repair_module
from respaldo.operations.catalog_rebuild import rebuild_catalog
from respaldo.operations.recorded import recorded_backup
from respaldo.operations.repair import repair
from respaldo.operations.restore import load_manifest_any
from respaldo.repository import BackupWriter, Manifest, Repository, WriteStats, verify_backups
from respaldo.repository.verify import quarantine_damaged
from respaldo.repository.wal import copy_wal, put_wal, read_wal_object, wal_object
from tests.unit.operations.support import Installation, data_for
from tests.unit.repository.helpers import flip_byte, random_bytes
from tests.unit.repository.test_quarantine import _damage_middle_chunk

pytestmark = pytest.mark.unit


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Installation]:
    installation = Installation.create(tmp_path)
    yield installation
    installation.close()


def _damage_and_verify(inst: Installation, backup_id: str) -> None:
    repo = inst.repository()
    _damage_middle_chunk(repo.storage, repo, backup_id)
    report = verify_backups(inst.repository(), [backup_id])
    assert quarantine_damaged(inst.repository(), report) == 1


def test_repair_from_the_configured_mirror(inst: Installation) -> None:
    backup_id = inst.backup(timedelta(days=1))
    inst.replicate()
    _damage_and_verify(inst, backup_id)

    result = repair(inst.ctx)
    assert (result.repository, result.quarantined_chunks, result.repaired) == ("local", 1, 1)
    assert result.clean and result.lost_backups == []
    assert list(result.repaired_from) == [inst.repository("second").storage.location]
    assert inst.read(backup_id) == data_for(backup_id)
    assert inst.ctx.record(backup_id).verified_at is None  # nothing to mark


def test_lost_chunks_mark_the_backups_and_restore_refuses_them(inst: Installation) -> None:
    damaged = inst.backup(timedelta(days=2))
    other = inst.backup(timedelta(days=1), database="crm")
    _damage_and_verify(inst, damaged)  # never replicated: no good copy anywhere

    dry = repair(inst.ctx, dry_run=True)
    assert [b.backup_id for b in dry.lost_backups] == [damaged]
    assert not dry.lost_backups[0].marked_in_catalog
    assert inst.ctx.record(damaged).verified_at is None

    result = repair(inst.ctx)
    assert not result.clean
    [lost] = result.lost_backups
    assert (lost.backup_id, lost.database, lost.kind, lost.chunks_lost) == (
        damaged,
        "erp",
        "full",
        1,
    )
    assert lost.marked_in_catalog
    record = inst.ctx.record(damaged)
    assert record.verified_at is not None and not record.is_verified
    assert (record.error_message or "").startswith("damaged: 1 chunk has no good copy")
    assert inst.ctx.record(other).verified_at is None
    as_json = result.model_dump(mode="json", by_alias=True)
    assert as_json["lostBackups"][0]["backupId"] == damaged

    repo: Repository = inst.repository()
    with pytest.raises(IntegrityError, match="the backup is damaged") as info:
        load_manifest_any(repo, [inst.repository("second")], damaged)
    assert "respaldo repair" in info.value.hint
    assert load_manifest_any(repo, [], other).backup_id == other

    # A copy turns up in the mirror (an old offsite disk holding the backup): repair takes
    # it. The mark stayed "it cannot be restored", and nothing said what clears it.
    with BackupWriter(inst.repository("second"), damaged) as writer:
        writer.write_stream("dump", io.BytesIO(data_for(damaged)))
        writer.commit(kind="full", source="erp", started_at=record.created_at)
    again = repair(inst.ctx)
    assert (again.repaired, again.lost_backups, again.whole_again) == (1, [], [damaged])
    assert any(
        f"backup {damaged} is whole again" in w and "respaldo drill" in w for w in again.warnings
    ), again.warnings
    record = inst.ctx.record(damaged)
    assert record.verified_at is not None and not record.is_verified  # until a restore test
    said = record.error_message or ""
    assert said.startswith("repaired: every chunk it had lost is in repository local again")
    assert said.endswith("it counts as failed verification until a restore test of it passes")
    assert reasons.reason(said, translations("es").gettext).startswith("reparado: ")
    assert inst.read(damaged) == data_for(damaged)
    assert repair(inst.ctx).whole_again == []  # marked once


def test_a_backup_that_is_not_known_good_is_marked(inst: Installation) -> None:
    """The race itself is tested in the repository tests; here, what the catalog does
    with a writer's count of references to copies quarantined while it ran."""

    def body(
        repo: Repository, backup_id: str, started_at: datetime, heartbeat: object
    ) -> tuple[Manifest, WriteStats]:
        with BackupWriter(repo, backup_id) as writer:
            writer.write_stream("dump", io.BytesIO(data_for(backup_id)))
            manifest = writer.commit(kind="full", source="erp", started_at=started_at)
        writer.stats.unconfirmed_chunks = 2
        return manifest, writer.stats

    result = recorded_backup(
        inst.ctx,
        kind=BackupKind.FULL,
        source="erp",
        retention_days=7,
        triggered_by=TriggeredBy.CLI,
        pinned=False,
        body=body,
    )
    record = inst.ctx.record(result.record.id)
    assert record.status.value == "completed"
    assert record.verified_at is not None and not record.is_verified
    assert "not known-good: references 2 chunks" in (record.error_message or "")


def test_catalog_rebuild_marks_again_what_repair_found_lost(inst: Installation) -> None:
    damaged = inst.backup(timedelta(days=2))
    good = inst.backup(timedelta(days=1), database="crm")
    _damage_and_verify(inst, damaged)
    assert repair(inst.ctx).lost_backups
    inst.close()
    (inst.root / "catalog.db").unlink()  # the catalog is lost too
    # A new, empty one, as 'respaldo catalog rebuild' creates it (Context.open(create=True)).
    open_catalog(inst.settings().catalog.url, create=True).close()

    result = rebuild_catalog(inst.ctx)
    assert (result.created, result.lost_data) == (2, [damaged])
    record = inst.ctx.record(damaged)
    assert record.verified_at is not None and not record.is_verified
    assert (record.error_message or "").startswith("damaged: 1 chunk has no good copy")
    assert inst.ctx.record(good).verified_at is None


def test_catalog_rebuild_marks_a_backup_whose_packs_are_gone(inst: Installation) -> None:
    """A manifest proves its backup was written whole, not that its packs are still
    there whole (deleted by hand, a partial copy of the repository put back): rebuilt as
    completed and unverified, retention counted it as the newest good backup. Packs
    missing here but held by a mirror (restore reads from it) damage nothing."""
    mirrored = inst.backup(timedelta(days=3))
    inst.replicate()
    primary = inst.repository().storage
    packs_of_mirrored = {i.name for i in primary.list("packs/")}
    gone = inst.backup(timedelta(days=2))
    packs_of_gone = {i.name for i in primary.list("packs/")} - packs_of_mirrored
    good = inst.backup(timedelta(days=1), database="crm")
    packs_of_good = {i.name for i in primary.list("packs/")} - packs_of_mirrored - packs_of_gone
    for name in packs_of_mirrored:
        primary.delete(name)
    for name in packs_of_gone:  # cut short: its first chunks are still there
        path = inst.root / "repo" / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert packs_of_good  # the crm backup's own packs stay
    inst.close()
    (inst.root / "catalog.db").unlink()
    open_catalog(inst.settings().catalog.url, create=True).close()

    result = rebuild_catalog(inst.ctx)
    assert (result.created, result.missing_data, result.lost_data) == (3, [gone], [])
    record = inst.ctx.record(gone)
    assert record.verified_at is not None and not record.is_verified
    assert "lost with a pack found missing or truncated" in (record.error_message or "")
    assert inst.ctx.record(mirrored).verified_at is None
    assert inst.ctx.record(good).verified_at is None
    assert rebuild_catalog(inst.ctx).missing_data == []  # marked once, kept as it was


def test_catalog_rebuild_says_a_chunk_verify_quarantined_was_found_corrupt(
    inst: Installation,
) -> None:
    """A chunk whose only copy verify quarantined (its pack is still there) was said
    "lost with a pack found missing or truncated": its reader went looking for a pack
    nobody deleted."""
    damaged = inst.backup(timedelta(days=1))
    _damage_and_verify(inst, damaged)
    inst.close()
    (inst.root / "catalog.db").unlink()
    open_catalog(inst.settings().catalog.url, create=True).close()

    assert rebuild_catalog(inst.ctx).missing_data == [damaged]
    said = inst.ctx.record(damaged).error_message or ""
    assert said.startswith(
        "damaged: 1 chunk it uses was found corrupt and quarantined by 'respaldo verify' ("
    ), said
    assert "pack" not in said
    assert reasons.reason(said, translations("es").gettext).startswith(
        "dañado: 1 fragmento que usa se encontró corrupto y 'respaldo verify' lo puso en "
        "cuarentena ("
    )


def test_damaged_archived_wal_is_replaced_from_a_mirror_or_named_lost(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mirror's archived WAL file damaged: the WAL copy never replaces a file the
    mirror holds (it lists names, it does not read them), and the server archives each
    file once, so it stayed damaged for ever and a recovery from the mirror stopped at
    it. 'verify' named it and said 'run respaldo repair', which repaired only chunks."""
    primary, mirror = inst.repository(), inst.repository("second")
    system, timeline = "7000000000000000001", "00000001"
    segments = {f"00000001000000000000000{n}": random_bytes(20_000, seed=n) for n in (1, 2, 3)}
    for segment, data in segments.items():
        put_wal(primary, system, timeline, segment, data)
    copy_wal(primary, mirror)
    one, two, three = (wal_object(system, timeline, s) for s in segments)
    flip_byte(mirror.storage, one, 100)
    flip_byte(mirror.storage, three, 100)
    flip_byte(primary.storage, three, 200)  # no good copy anywhere
    copy_wal(primary, mirror)
    with pytest.raises(IntegrityError):
        read_wal_object(mirror, one)  # the copy did not mend it

    plain = repair(inst.ctx, "second")  # chunks only: the WAL archive is not read
    assert (plain.wal_damaged, plain.wal_lost, plain.clean) == ([], [], True)
    dry = repair(inst.ctx, "second", dry_run=True, wal=True)
    assert (dry.wal_damaged, dry.wal_lost) == ([one, three], [three])
    with pytest.raises(IntegrityError):
        read_wal_object(mirror, one)  # a dry run writes nothing

    result = repair(inst.ctx, "second", wal=True)
    assert result.wal_damaged == [one, three]
    assert result.wal_repaired_from == {primary.storage.location: 1}
    assert result.wal_lost == [three]
    assert not result.clean  # recovery cannot replay past the lost one
    assert read_wal_object(mirror, one) == segments["000000010000000000000001"]
    assert read_wal_object(mirror, two) == segments["000000010000000000000002"]
    with pytest.raises(IntegrityError):
        read_wal_object(mirror, three)
    as_json = result.model_dump(mode="json", by_alias=True)
    assert as_json["walLost"] == [three]

    again = repair(inst.ctx, "second", wal=True)
    assert (again.wal_damaged, again.wal_repaired_from) == ([three], {})
    # What the command says: the lost file, and exit status 3.
    assert invoke(["--config", str(inst.config), "repair", "second", "--wal", "-n"]) == 3
    assert invoke(["--config", str(inst.config), "repair", "second", "--wal"]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "second: 1 archived WAL files damaged; replaced 0" in err
    assert f"lost: archived WAL {three} has no good copy in any repository" in err
    # Repairs are audited (they rewrite data, mark backups damaged), the three above and
    # the command's, newest first; dry runs not.
    said = [(e.action, e.target, e.outcome, e.detail, e.method) for e in audit.entries(inst.ctx)]
    assert len(said) == 4
    action, target, outcome, detail, method = said[0]
    assert (action, target, outcome, method) == ("repair", "second", "failure", "local")
    assert detail == (
        "rewrote 0 of 0 quarantined chunks, replaced 0 WAL files; "
        "lost: 0 chunks (0 backups marked damaged), 1 WAL files"
    )


def test_a_wal_archive_that_cannot_be_read_to_its_end_leaves_the_chunk_repair_done(
    inst: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The WAL part runs after the backups that lost chunks are marked: a storage error
    there (a mirror gone meanwhile) is a problem of the result, not a repair that
    stopped before marking them."""
    damaged = inst.backup(timedelta(days=2))
    _damage_and_verify(inst, damaged)  # never replicated: lost

    def unreachable(*_args: object, **_kwargs: object) -> None:
        raise StorageError("cannot reach the mirror: connection refused")

    monkeypatch.setattr(repair_module, "repair_wal", unreachable)
    result = repair(inst.ctx, wal=True)
    assert [b.backup_id for b in result.lost_backups] == [damaged]
    assert result.lost_backups[0].marked_in_catalog
    assert not result.clean
    assert result.problems == [
        "the archived WAL was not repaired to its end: cannot reach the mirror: connection refused"
    ]
