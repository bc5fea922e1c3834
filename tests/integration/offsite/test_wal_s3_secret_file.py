"""S3 repositories whose secret key is in a file (``secret_access_key_file``, the usual
offsite setup) open for the WAL commands and for the status's WAL checks as they do for
backups: the file is read, never handed to the storage as an option."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.config_core import load_wal_settings
from respaldo.operations import status
from respaldo.operations.context import Context
from respaldo.operations.copy import copy_wal_to
from respaldo.operations.initialize import initialize
from respaldo.operations.repositories import open_repository
from respaldo.operations.status_mirror import mirror_lags
from respaldo.operations.status_wal import read_primary_wal
from respaldo.operations.wal import fetch_wal
from respaldo.repository import KdfParams
from respaldo.repository.wal import ClusterRecord, put_wal, write_cluster
from tests.configs import local_config
from tests.integration.cli import secret_file
from tests.servers.s3 import S3Endpoint, new_prefix

pytestmark = pytest.mark.integration
SYSTEM = "7312345678901234567"
SEGMENT = "000000010000000000000003"
HISTORY = "00000002.history"
HISTORY_TEXT = b"1\t0/3000000\tno recovery target specified\n"


def test_s3_repositories_with_a_secret_file_open_for_wal_and_its_status(
    moto_server: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = moto_server
    secret = secret_file(tmp_path / "s3.secret", s3.secret_access_key)
    s3_keys = f"""endpoint_url = "{s3.endpoint_url}"
region = "us-east-1"
access_key_id = "{s3.access_key_id}"
secret_access_key_file = "{secret}"
"""
    config = local_config(
        tmp_path,
        f"""
[[repositories]]
name = "primary"
url = "s3://{s3.bucket}/{new_prefix()}"
{s3_keys}
[[repositories]]
name = "offsite"
url = "s3://{s3.bucket}/{new_prefix()}"
{s3_keys}
[[databases]]
name = "erp"
dsn = "dbname=erp"
""",
        repository=False,
    )
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "s3 secret file passphrase")
    settings = load_settings(config)
    initialize(settings, kdf=KdfParams(time_cost=1, memory_cost=1024, parallelism=1))
    primary = open_repository(settings)
    try:
        write_cluster(primary, ClusterRecord("erp", SYSTEM, datetime.now(UTC), "wal-push"))
        put_wal(primary, SYSTEM, "00000001", SEGMENT, b"a segment")
        put_wal(primary, SYSTEM, "00000002", HISTORY, HISTORY_TEXT)
    finally:
        primary.close()

    # The status: the primary's clusters, its "archived elsewhere" check, the mirror's lag.
    assert status._clusters_recorded(settings) == ({"erp"}, None)
    assert read_primary_wal(settings, {"erp": SEGMENT}).stored == {"erp": True}
    now = datetime.now(UTC)
    with Context.open(settings) as ctx:
        assert copy_wal_to(ctx, "offsite").ok
        systems = {"erp": SYSTEM}
        lag = mirror_lags(ctx, {"erp": (SEGMENT, now)}, now, systems)[("erp", "offsite")]
    assert (lag.held, lag.error) == (True, None)

    # The WAL commands (their own loader): wal-fetch from the primary and the mirror.
    wal = load_wal_settings(config)
    for repository in (None, "offsite"):
        target = tmp_path / f"fetched-{repository}"
        fetch_wal(wal, HISTORY, target, database="erp", repository=repository)
        assert target.read_bytes() == HISTORY_TEXT
