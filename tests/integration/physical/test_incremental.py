"""Incremental physical backups (PostgreSQL 17+, ``summarize_wal = on``): the server sends
only the changed blocks, the restore combines the chain with pg_combinebackup, and the
restored cluster holds the same data; retention keeps a kept backup's chain.

The PostgreSQL 18 archiving cluster of this suite summarizes WAL
(tests/integration/majors.py); the system's (15) cannot, and takes full backups.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sample.cluster import TempCluster
from sample.day_of_work import day_of_work

from respaldo.catalog.backups import BackupRecords
from respaldo.operations.context import Context
from respaldo.operations.prune import facts_of
from respaldo.operations.repositories import open_repository
from respaldo.operations.status import compute_status
from respaldo.postgres.checks import Status, check_server
from respaldo.postgres.toolsets import BUNDLED_MAJOR
from respaldo.repository import Repository
from respaldo.repository.packs import pack_name
from respaldo.repository.reader import read_list
from respaldo.retention import Policy, decide
from tests.integration.logical.support import flip_byte, table_checksums
from tests.integration.majors import ARCHIVING_INITDB_OPTIONS, ARCHIVING_SETTINGS, ON_PG18
from tests.integration.physical.conftest import SEED, SHOP, Archiving, archiving_cluster

pytestmark = pytest.mark.integration


@ON_PG18
def test_an_incremental_backup_restores_through_its_chain(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    pg = archiving.pg
    first = archiving.backup()
    day_of_work(pg.conninfo_kwargs(SHOP), SEED, 1)
    expected = table_checksums(pg, SHOP)
    second = archiving.backup()
    repo = open_repository(archiving.settings())
    meta = repo.load_manifest(second["id"]).meta
    assert meta["backup_method"] == "incremental", meta.get("full_reason")
    assert meta["incremental_of"] == first["id"]
    assert meta["chain"][-1] == first["id"]
    # Only the changed blocks came from the server: far less than the first backup's
    # files (the WAL segments, 64 MiB each on this cluster, come whole either way).
    root = repo.load_manifest(meta["chain"][0]).meta
    assert root["backup_method"] == "full"
    full_files = root["file_bytes"]
    assert meta["file_bytes"] < full_files / 2, (meta["file_bytes"], full_files)

    restored, datadir, _ = archiving.restore_started(second["id"], restored_servers)
    assert table_checksums(restored, SHOP) == expected
    assert not (datadir / ".respaldo-combine").exists()

    # Retention keeps the chain of the backup it keeps: with a policy that keeps only the
    # newest backup, the catalog's parent links keep every backup it restores on top of.
    ctx = Context.open(archiving.settings())
    try:
        with ctx.catalog.begin() as session:
            facts = [facts_of(r) for r in BackupRecords(session).list(database="erp")]
    finally:
        ctx.close()
    newest_only = Policy(keep_until_expires=False, keep_last=1, min_keep=1)
    decisions = {d.backup.id: d for d in decide(facts, newest_only, datetime.now(UTC))}
    assert decisions[second["id"]].keep
    for parent in meta["chain"]:
        assert "parent of kept" in decisions[parent].rule, decisions[parent].rule
    others = set(decisions) - {second["id"], *meta["chain"]}
    assert not any(decisions[o].keep for o in others if decisions[o].backup.completed)


@ON_PG18
def test_an_incremental_whose_parent_is_gone_is_refused_before_anything_is_written(
    archiving: Archiving, tmp_path: Path
) -> None:
    check = archiving.run("check", "erp", "--json")
    assert check.code == 0, str(check)
    found = {f["check"]: f for f in json.loads(check.out)}
    assert found["incremental backups"]["status"] == "ok", found["incremental backups"]
    first = archiving.backup()
    archiving.pg.execute("CREATE TABLE IF NOT EXISTS gone_parent (id int)", dbname=SHOP)
    second = archiving.backup()
    meta = open_repository(archiving.settings()).load_manifest(second["id"]).meta
    assert meta["incremental_of"] == first["id"]
    # The same repository (hard links: nothing copied), with a cache of its own (what its
    # verify quarantines is not the session's repository's).
    repo = tmp_path / "repo"
    subprocess.run(["cp", "-al", str(archiving.repo_dir), str(repo)], check=True)
    config = tmp_path / "respaldo.toml"
    text = archiving.config.read_text()
    cache = f'cache_dir = "{archiving.base / "cache"}"'
    assert cache in text
    config.write_text(
        text.replace(f"file://{archiving.repo_dir}", f"file://{repo}").replace(
            cache, f'cache_dir = "{tmp_path / "cache"}"'
        )
    )
    copy = replace(archiving, config=config)
    # verify of the incremental reads its chain too: a chunk only the parent holds,
    # damaged, is a problem of it (its own chunks whole said "ok", exit 0).
    opened = open_repository(copy.settings())
    own = _chunks(opened, second["id"])
    location = next(
        where
        for chunk in _chunks(opened, first["id"]) - own
        if (where := opened.index.get(chunk)) is not None
    )
    pack = repo / pack_name(location.pack_id)
    shutil.copyfile(pack, pack.with_suffix(".copy"))  # not the session's pack, linked
    pack.with_suffix(".copy").replace(pack)
    flip_byte(pack, location.offset + location.length // 2)
    run = copy.run("verify", second["id"])
    assert run.code == 3, str(run)
    assert f"[backup {first['id']} object {pack_name(location.pack_id)}]" in run.err, str(run)
    # Every backup of its chain read (earlier tests of the session may have made it longer).
    assert f"{len(meta['chain']) + 1} backups" in run.err, str(run)
    # Without the parent's manifest: verify names it gone, and the restore is refused.
    (repo / "manifests" / first["id"]).unlink()
    run = copy.run("verify", second["id"])
    assert run.code == 3, str(run)
    assert f"backup {first['id']}, which this incremental backup restores on top of, is gone" in (
        run.err
    ), str(run)
    datadir = archiving.new_datadir()
    run = copy.run("restore", second["id"], "--target-datadir", str(datadir))
    assert run.code == 1, str(run)
    assert f"is incremental on backup {first['id']}, which is gone" in run.err
    assert not datadir.exists()


def _chunks(repo: Repository, backup_id: str) -> set[bytes]:
    """Every chunk id the streams of ``backup_id`` name."""
    return {
        chunk
        for stream in repo.load_manifest(backup_id).streams
        for list_id in stream.lists
        for chunk, *_ in read_list(repo, list_id)
    }


def test_no_backup_builds_on_a_chain_that_failed_verification(
    capsys: pytest.CaptureFixture[str], restored_servers: list[TempCluster]
) -> None:
    # A cluster and repository of its own: the test destroys a pack.
    with archiving_cluster(
        BUNDLED_MAJOR,
        initdb_options=ARCHIVING_INITDB_OPTIONS[BUNDLED_MAJOR],
        settings=ARCHIVING_SETTINGS[BUNDLED_MAJOR],
    ) as archiving:
        archiving.capsys = capsys
        first = archiving.backup()
        day_of_work(archiving.pg.conninfo_kwargs(SHOP), SEED, 1)
        second = archiving.backup()
        repo = open_repository(archiving.settings())
        assert repo.load_manifest(second["id"]).meta["incremental_of"] == first["id"]
        # The first backup's pack lost (a disk's damage): verify finds it, repair marks the
        # backups that reference its chunks.
        packs = [p for p in (archiving.repo_dir / "packs").rglob("*") if p.is_file()]
        max(packs, key=lambda p: p.stat().st_size).unlink()
        assert archiving.run("verify", "--all").code == 3
        repaired = archiving.run("repair")
        assert repaired.code == 3, str(repaired)
        assert first["id"] in repaired.err, str(repaired)

        # The next physical backup starts a new chain: built on the damaged one, it could
        # not restore either, and the status called it the good recovery point (green).
        third = archiving.backup()
        meta = open_repository(archiving.settings()).load_manifest(third["id"]).meta
        assert meta["backup_method"] == "full", meta.get("incremental_of")
        assert "failed verification" in meta["full_reason"], meta["full_reason"]
        ctx = Context.open(archiving.settings())
        try:
            with ctx.catalog.read() as session:
                records = {r.id: r for r in BackupRecords(session).list(database="erp")}
            for damaged in (first["id"], second["id"]):
                assert records[damaged].verified_at is not None
                assert not records[damaged].is_verified
            assert records[third["id"]].verified_at is None
            report = compute_status(ctx, datetime.now(UTC), servers=False)
        finally:
            ctx.close()
        (item,) = [i for i in report.items if i.key == "rpo:erp:incremental"]
        assert item.backup_id == third["id"]
        assert item.level == "green", item.reason
        restored, _, _ = archiving.restore_started(third["id"], restored_servers)
        assert restored.scalar("SELECT count(*) > 0 FROM obras.proyectos", dbname=SHOP)


def test_before_postgresql_17_every_physical_backup_is_full(archiving: Archiving) -> None:
    record = archiving.backup()
    meta = open_repository(archiving.settings()).load_manifest(record["id"]).meta
    assert meta["backup_method"] == "full"
    assert "has no incremental backups (17+)" in meta["full_reason"]
    assert "chain" not in meta


@ON_PG18
def test_check_says_how_to_switch_wal_summaries_on(pg: TempCluster) -> None:
    assert pg.scalar("SHOW summarize_wal") == "off"
    found = {f.name: f for f in check_server(pg.conninfo(), archive_command="x").findings}
    incremental = found["incremental backups"]
    assert incremental.status is Status.WARNING
    assert "every physical backup is full" in incremental.value
    assert "ALTER SYSTEM SET summarize_wal = on" in incremental.fix
