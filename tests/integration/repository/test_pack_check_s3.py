"""The check of a backup's packs before its manifest, on real S3-compatible servers: the
sizes a LIST gives (the one request for a backup of many packs) and those a HEAD gives
tell a pack lost or cut short after a backup deduplicated against it; the earlier
backups that use it are marked damaged in the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.operations.context import Context
from respaldo.operations.initialize import initialize
from respaldo.operations.repositories import open_repository
from respaldo.repository import KdfParams, pack_check
from respaldo.repository.pack_check import LostPacks
from tests.configs import local_config
from tests.integration.cli import secret_file
from tests.servers.s3 import S3Endpoint, new_prefix
from tests.unit.operations.test_lost_packs import backup, lose_pack_of
from tests.unit.repository.helpers import init_repo, random_bytes, read_stream, write_backup
from tests.unit.repository.test_pack_check import fails_then_heals, lose_a_pack

pytestmark = pytest.mark.integration


def test_a_backup_over_a_pack_cut_short_on_s3_fails_and_the_next_one_heals(
    s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The size a LIST gives (a HEAD's 404: the test below, on moto).
    monkeypatch.setattr(pack_check, "STAT_AT_MOST", 0)
    repo = init_repo(s3_server.storage())
    data = random_bytes(150_000, seed=7)
    write_backup(repo, "b1", {"dump": data})
    victim = lose_a_pack(repo.storage, "truncated")
    fails_then_heals(repo, data, victim, "truncated")


def test_on_s3_the_earlier_backups_that_use_a_lost_pack_are_marked_damaged(
    moto_server: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack gone (a HEAD's 404), as the backup operation meets it with its primary
    repository on S3: the backup fails naming it, the earlier backups that use it are
    marked damaged at once (retention no longer counts them as good), not left good
    until a 'verify --all', and the next backup stores the data anew and restores."""
    s3 = moto_server
    secret = secret_file(tmp_path / "s3.secret", s3.secret_access_key)
    config = local_config(
        tmp_path,
        f"""
[chunker]
min_size = 256
avg_size = 1024
max_size = 4096

[[repositories]]
name = "s3"
url = "s3://{s3.bucket}/{new_prefix()}"
endpoint_url = "{s3.endpoint_url}"
region = "us-east-1"
access_key_id = "{s3.access_key_id}"
secret_access_key_file = "{secret}"
""",
        settings="pack_size = 65536",
        repository=False,
    )
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "pack check on s3")
    settings = load_settings(config)
    initialize(settings, kdf=KdfParams(time_cost=1, memory_cost=1024, parallelism=1))
    data = random_bytes(150_000, seed=9)
    with Context.open(settings) as ctx:
        first, second = backup(ctx, data), backup(ctx, data)
        victim = lose_pack_of(ctx.repository(), first)
        with pytest.raises(LostPacks) as failed:
            backup(ctx, data)
        assert f"{victim} (missing)" in str(failed.value), failed.value
        hint = failed.value.hint
        assert "quarantined" in hint and f"earlier backups {second}, {first}" in hint, hint
        for backup_id in (first, second):
            record = ctx.record(backup_id)
            assert record.verified_at is not None and not record.is_verified, backup_id
            assert "lost with packs found missing" in (record.error_message or "")

        healed = backup(ctx, data)
    repo = open_repository(settings)
    assert read_stream(repo, repo.load_manifest(healed)) == data
