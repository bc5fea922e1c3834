"""A backup that finds a pack it references lost fails (tests/unit/repository/
test_pack_check.py); the earlier backups that use the chunks the pack lost cannot restore
either, and are marked damaged in the catalog at once, as ``repair`` marks them, unless
another repository holds the chunks: retention stops counting them as good, the status
stops taking them for the recovery point, and the alert names them."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.catalog import BackupCopies
from respaldo.domain import BackupKind, CopyStatus, JobKind, TriggeredBy
from respaldo.errors import IntegrityError
from respaldo.i18n import translations
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.copy import replicate
from respaldo.operations.jobs import JobRequest
from respaldo.operations.prune import plan, prune
from respaldo.operations.recorded import recorded_backup
from respaldo.operations.repair import repair
from respaldo.operations.restore import load_manifest_any, load_manifest_told
from respaldo.operations.status import StatusItem, compute_status
from respaldo.operations.verify import verify
from respaldo.reasons import reason
from respaldo.repository import BackupWriter, Manifest, Repository, WriteStats
from respaldo.repository.pack_check import LostPacks
from respaldo.repository.packs import pack_name
from respaldo.repository.reader import read_list
from respaldo.retention import Action
from tests.servers.notify import Webhook, webhook  # noqa: F401
from tests.unit.operations.support import Installation
from tests.unit.repository.helpers import random_bytes

pytestmark = pytest.mark.unit

ES = translations("es").gettext

REQUEST = JobRequest(JobKind.BACKUP, "erp", TriggeredBy.CLI, "ana", {"type": "full"})
Body = Callable[[Repository, str, datetime, object], tuple[Manifest, WriteStats]]


def body_of(data: bytes) -> Body:
    def body(
        repo: Repository, backup_id: str, started_at: datetime, heartbeat: object
    ) -> tuple[Manifest, WriteStats]:
        with BackupWriter(repo, backup_id) as writer:
            writer.write_stream("dump", io.BytesIO(data))
            manifest = writer.commit(kind="full", source="erp", started_at=started_at)
        return manifest, writer.stats

    return body


def backup(ctx: Context, data: bytes) -> str:
    """A backup of ``data`` as every kind of backup runs (recorded, then copied to the
    secondaries); its id."""
    result = recorded_backup(
        ctx,
        kind=BackupKind.FULL,
        source="erp",
        retention_days=7,
        triggered_by=TriggeredBy.CLI,
        pinned=False,
        body=body_of(data),
    )
    return result.record.id


def backup_job(ctx: Context, data: bytes) -> None:
    """:func:`backup` as a job (the CLI's, the service's): its failure alerts."""
    job = jobs.submit(ctx, REQUEST)
    jobs.run(ctx, job.id, lambda job_ctx: backup(job_ctx, data))


def lose_pack_of(repo: Repository, backup_id: str) -> str:
    """Delete the pack holding the chunk in the middle of ``backup_id``'s dump; its name."""
    stream = repo.load_manifest(backup_id).stream("dump")
    entries = read_list(repo, stream.lists[0])
    location = repo.index.get(entries[len(entries) // 2][0])
    assert location is not None
    name = pack_name(location.pack_id)
    repo.storage.delete(name)
    return name


def test_the_earlier_backups_that_use_a_lost_pack_are_marked_damaged_and_alerted(
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
) -> None:
    hook = f"""
[[notifications.targets]]
name = "hook"
url = "{webhook.url}"
levels = ["critical"]
"""
    inst = Installation.create(tmp_path, secondary=False, extra=hook)
    ctx = inst.ctx
    data = random_bytes(60_000, seed=11)
    # An older backup of other data (other packs): whole, and the one to keep.
    older = backup(ctx, random_bytes(60_000, seed=12))
    first, second = backup(ctx, data), backup(ctx, data)
    lose_pack_of(inst.repository(), first)

    with pytest.raises(LostPacks) as failed:
        backup_job(ctx, data)
    hint = failed.value.hint
    assert f"earlier backups {second}, {first}, which use them" in hint, hint
    assert "marked damaged in the catalog" in hint and "respaldo repair" in hint, hint
    # The job's error and the alert's hint on a Spanish page and in a Spanish alert.
    assert reason(str(failed.value), ES).startswith(
        "backup no registrado: 1 paquete al que hace referencia falta o está truncado en file:"
    )
    assert reason(hint, ES).startswith("sus ") and reason(hint, ES).endswith(
        f"de nuevo: ejecútelo otra vez; los backups anteriores {second}, {first}, que los usan "
        "y de los que ningún repositorio leído tiene una copia buena, quedan marcados como "
        "dañados en el catálogo (la retención ya no los cuenta como válidos): 'respaldo "
        "repair' puede recuperar los fragmentos de un espejo"
    )
    (alert,) = webhook.inbox.wait(1)
    assert first in alert["json"]["message"] and second in alert["json"]["message"], alert

    for backup_id in (first, second):
        record = ctx.record(backup_id)
        assert record.verified_at is not None and not record.is_verified, backup_id
        assert (record.error_message or "").startswith("damaged: "), record.error_message
        assert "found missing or truncated" in (record.error_message or "")
    assert ctx.record(older).verified_at is None

    # Retention: the damaged two no longer meet min_keep; the older whole one is kept.
    later = datetime.now(UTC) + timedelta(days=30)
    actions = {d.backup.id: d.action for d in plan(ctx, now=later).decisions}
    assert actions[older] is Action.KEEP
    assert actions[first] is Action.EXPIRE
    # The status's recovery point is the older backup, not the newest damaged one.
    report = compute_status(ctx, datetime.now(UTC), servers=False)
    (rpo,) = [i for d in report.databases for i in d.items if i.key == "rpo:erp:full"]
    assert rpo.backup_id == older, rpo
    # As repair records it in the repository: restore refuses them up front.
    with pytest.raises(IntegrityError, match="the backup is damaged"):
        load_manifest_any(inst.repository(), [], first)
    inst.close()


def test_chunks_a_mirror_holds_mark_nothing(tmp_path: Path) -> None:
    """Restore reads a chunk the primary lost from a mirror that holds it (every backup
    is copied to the secondary): those backups still restore, and stay good."""
    inst = Installation.create(tmp_path)
    data = random_bytes(60_000, seed=13)
    first = backup(inst.ctx, data)
    lose_pack_of(inst.repository(), first)

    with pytest.raises(LostPacks) as failed:
        backup(inst.ctx, data)
    assert "no earlier backup in the catalog uses them without a good copy" in (
        failed.value.hint
    ), failed.value.hint
    assert reason(failed.value.hint, ES).endswith(
        "; ningún backup anterior del catálogo los usa sin una copia buena en otro lugar"
    )
    assert inst.ctx.record(first).verified_at is None
    inst.close()


def copy_rows(ctx: Context, *backup_ids: str) -> dict[str, tuple[CopyStatus, str]]:
    """Each backup's copy in the secondary: (status, error message)."""
    with ctx.catalog.read() as session:
        rows = {b: BackupCopies(session).for_backup(b) for b in backup_ids}
    return {b: (c.status, c.error_message or "") for b, (c,) in rows.items()}


def test_packs_lost_in_a_mirror_fail_its_copies_until_a_copy_sends_them_again(
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
) -> None:
    """A copy that finds packs lost in the mirror: the mirror's copies of the earlier
    backups that use them cannot restore from it (the primary's copy does not count),
    so they stop counting as held there (status, retention, restore --repository) and
    the failed copy's alert names them; the next copy sends the chunks again."""
    hook = f"""
[[notifications.targets]]
name = "hook"
url = "{webhook.url}"
levels = ["critical"]
"""
    inst = Installation.create(tmp_path, extra=hook)
    ctx = inst.ctx
    data = random_bytes(60_000, seed=14)
    first, second = backup(ctx, data), backup(ctx, data)  # each copied to "second"
    lose_pack_of(inst.repository("second"), first)

    third = backup(ctx, data)  # completes; its copy fails on the lost pack
    rows = copy_rows(ctx, first, second, third)
    assert rows[third][0] is CopyStatus.FAILED
    assert f"earlier backups {second}, {first}" in rows[third][1], rows[third]
    # The failed copy's row (its error, then its hint), as the backup's page shows it.
    said = reason(rows[third][1], ES)
    assert said.startswith("copia no escrita: 1 paquete al que hace referencia falta"), said
    assert f"(missing) [backup {third}]; sus " in said, said
    assert said.endswith(
        f"la copia envía esos datos de nuevo: ejecútela otra vez; las copias en second de los "
        f"backups anteriores {second}, {first}, que los usan y de los que ningún otro paquete "
        "de second tiene una copia buena, quedan marcadas como fallidas en el catálogo (la "
        "retención y el estado ya no las cuentan como guardadas allí): la próxima copia envía "
        "de nuevo los fragmentos perdidos"
    ), said
    for backup_id in (first, second):
        status, error = rows[backup_id]
        assert status is CopyStatus.FAILED, (backup_id, rows)
        assert error.startswith("lost data: ") and f"the copy of {backup_id} " in error, error
        assert "missing or truncated in second" in error, error
        assert reason(error, ES).startswith(
            f"datos perdidos: se perdió 1 fragmento que usa la copia de {backup_id}, por "
            "paquetes que faltaban o estaban truncados en second ("
        ), error
        # The primary holds them whole: its records stay good.
        assert ctx.record(backup_id).verified_at is None
    (alert,) = webhook.inbox.wait(1)
    assert first in alert["json"]["message"] and second in alert["json"]["message"], alert
    # The status's copy item counts them, and names them (the failed copy's error).
    (item,) = copy_items(ctx)
    assert item.count == 3 and item.backup_id == first, item
    assert first in str(item.reason) and second in str(item.reason), item.reason
    # Retention no longer takes "second" to hold any of them: neither by the catalog
    # (plan, and prune while the mirror is down) nor by its listing (prune).
    for decided in (plan(ctx), prune(ctx, dry_run=True)):
        reasons = [r for d in decided.decisions for r in d.reasons]
        assert not any("newest in second" in r for r in reasons), reasons
    # Restore from the mirror alone (restore --repository second) refuses them up front.
    with pytest.raises(IntegrityError, match=f"the copy of backup {first} in repository second"):
        load_manifest_told(ctx, ctx.repository("second"), [], first)

    # The next copy (this same process: the mirror's cached index forgot the lost
    # copies) sends the chunks again, and the copies are good again.
    outcomes = replicate(ctx)
    assert [o.backup_id for o in outcomes if o.ok] == [first, second, third], outcomes
    assert outcomes[0].stats is not None and outcomes[0].stats.new_chunks > 0, outcomes
    rows = copy_rows(ctx, first, second, third)
    assert all(status is CopyStatus.COMPLETED for status, _ in rows.values()), rows
    assert inst.read(first, "second") == data
    load_manifest_told(ctx, ctx.repository("second"), [], first)
    inst.close()


def test_verify_of_a_mirror_that_finds_chunks_lost_fails_its_copies(tmp_path: Path) -> None:
    """``verify --repository MIRROR`` that finds a pack gone marks the mirror's copies
    that use it failed, as a copy that finds it so does; 'repair MIRROR' (as the next
    copy would) makes them whole and completed again."""
    inst = Installation.create(tmp_path)
    ctx = inst.ctx
    data = random_bytes(60_000, seed=15)
    first, second = backup(ctx, data), backup(ctx, random_bytes(60_000, seed=16))
    lose_pack_of(inst.repository("second"), first)

    result = verify(ctx, everything=True, repository="second")
    assert result.problems, result
    assert any(f"the copies in second of {first} use chunks" in w for w in result.warnings), (
        result.warnings
    )
    rows = copy_rows(ctx, first, second)
    assert rows[first][0] is CopyStatus.FAILED, rows
    assert "found damaged by verify in second" in rows[first][1], rows
    assert ", por daños que encontró verify en second (" in reason(rows[first][1], ES), rows
    assert rows[second][0] is CopyStatus.COMPLETED, rows  # other data, other packs
    assert ctx.record(first).verified_at is None
    # Older than the newest backup copied, its copy still counts as missing, named.
    (item,) = copy_items(ctx)
    assert item.level != "green" and item.count == 1 and item.backup_id == first, item
    assert first in str(item.reason), item.reason

    # 'repair second' takes the chunks from the primary: the copy is whole again.
    repaired = repair(ctx, "second")
    assert repaired.copies_completed == [first], repaired
    assert copy_rows(ctx, first)[first][0] is CopyStatus.COMPLETED
    assert inst.read(first, "second") == data
    assert replicate(ctx) == []  # nothing left to copy
    (item,) = copy_items(ctx)
    assert item.level == "green", item
    inst.close()


def copy_items(ctx: Context) -> list[StatusItem]:
    """The status's items of erp's copies to the secondary."""
    report = compute_status(ctx, datetime.now(UTC), servers=False)
    return [i for d in report.databases for i in d.items if i.key == "copy:erp:second"]
