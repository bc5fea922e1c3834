"""Archived WAL copied to an S3 mirror with Object Lock is written locked, like the
backups copied there: an attacker with the credentials cannot remove it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.operations.context import Context
from respaldo.operations.copy import copy_wal_to
from respaldo.operations.initialize import initialize
from respaldo.operations.repositories import open_repository
from respaldo.repository import KdfParams
from respaldo.repository.wal import ClusterRecord, put_wal, write_cluster
from tests.configs import local_config
from tests.integration.cli import secret_file
from tests.servers.s3 import S3Endpoint, new_prefix

pytestmark = pytest.mark.integration
SYSTEM = "7312345678901234567"
SEGMENT = "000000010000000000000003"


def test_wal_copied_to_a_locked_mirror_is_locked(
    moto_server: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = moto_server
    prefix = new_prefix()
    secret = secret_file(tmp_path / "s3.secret", s3.secret_access_key)
    config = local_config(
        tmp_path,
        f"""
[[repositories]]
name = "offsite"
url = "s3://{s3.locked_bucket}/{prefix}"
endpoint_url = "{s3.endpoint_url}"
region = "us-east-1"
access_key_id = "{s3.access_key_id}"
secret_access_key_file = "{secret}"
storage_class = "STANDARD"
object_lock_mode = "COMPLIANCE"
object_lock_days = 1
""",
    )
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "locked wal passphrase")
    settings = load_settings(config)
    initialize(settings, kdf=KdfParams(time_cost=1, memory_cost=1024, parallelism=1))
    primary = open_repository(settings)
    write_cluster(primary, ClusterRecord("erp", SYSTEM, datetime.now(UTC), "wal-push"))
    put_wal(primary, SYSTEM, "00000001", SEGMENT, b"a segment")
    with Context.open(settings) as ctx:
        outcome = copy_wal_to(ctx, "offsite")
    assert outcome.ok and outcome.stats is not None and outcome.stats.copied == 1
    key = f"{prefix}/wal/{SYSTEM}/00000001/{SEGMENT}"
    head = s3.client().head_object(Bucket=s3.locked_bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC)
