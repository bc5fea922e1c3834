"""A bucket whose lifecycle rules delete or archive current objects is no place for a
repository, and ``init`` says so before it writes anything.

A deduplicating repository's newest backup references chunks in packs of every age: a
rule "expire objects after 30 days" (common on buckets that held plain dump files) takes
away, on day 31, packs that the backup of day 25 deduplicated against, and a transition
to GLACIER or DEEP_ARCHIVE makes them unreadable by the ranged reads a restore makes.
Either way the backups were verified good when they were written, and become
unrestorable later without anything respaldo could see while it wrote them. Rules that
touch only old versions (``NoncurrentVersionExpiration``, what Object Lock needs) or
other prefixes are fine. Runs on moto (SeaweedFS keeps no lifecycle rules), each test in
a bucket of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from respaldo.config import load_settings
from respaldo.errors import ConfigError
from respaldo.operations.context import Context
from respaldo.operations.initialize import initialize
from respaldo.operations.prune import prune
from respaldo.repository import KdfParams
from tests.configs import local_config
from tests.integration.cli import secret_file
from tests.servers.notify import Webhook, webhook  # noqa: F401
from tests.servers.s3 import S3Endpoint

pytestmark = pytest.mark.integration

FAST_KDF = KdfParams(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "lifecycle tests passphrase")


def _config(tmp: Path, s3: S3Endpoint, bucket: str, prefix: str, extra: str = "") -> Path:
    secret = secret_file(tmp / "s3.secret", s3.secret_access_key)
    return local_config(
        tmp,
        f"""
[[repositories]]
name = "offsite"
url = "s3://{bucket}/{prefix}"
endpoint_url = "{s3.endpoint_url}"
region = "us-east-1"
access_key_id = "{s3.access_key_id}"
secret_access_key_file = "{secret}"
storage_class = "STANDARD"
[[databases]]
name = "erp"
dsn = "postgresql://nobody@127.0.0.1:1/erp"
{extra}""",
    )


def _bucket(s3: S3Endpoint, rules: list[dict[str, Any]]) -> str:
    bucket = f"lifecycle-{uuid4().hex[:12]}"
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": rules},  # type: ignore[typeddict-item]
    )
    return bucket


def _keys(s3: S3Endpoint, bucket: str) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=bucket)
    return [entry["Key"] for entry in listed.get("Contents", [])]


EXPIRE_ALL = {"ID": "old-dumps", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 30}}
ARCHIVE_OURS = {
    "ID": "to-glacier",
    "Status": "Enabled",
    "Filter": {"Prefix": "respaldo/"},
    "Transitions": [{"Days": 60, "StorageClass": "DEEP_ARCHIVE"}],
}


@pytest.mark.parametrize(
    ("rule", "says"),
    [(EXPIRE_ALL, "deletes them 30 days"), (ARCHIVE_OURS, "moves them to DEEP_ARCHIVE")],
    ids=["expiration", "archive"],
)
def test_init_refuses_a_bucket_whose_lifecycle_takes_current_objects(
    moto_server: S3Endpoint, tmp_path: Path, rule: dict[str, Any], says: str
) -> None:
    bucket = _bucket(moto_server, [rule])
    settings = load_settings(_config(tmp_path, moto_server, bucket, "respaldo/erp"))

    with pytest.raises(ConfigError) as info:
        initialize(settings, kdf=FAST_KDF)

    message = str(info.value)
    assert f"lifecycle rule {rule['ID']!r}" in message and says in message, message
    assert "NoncurrentVersionExpiration" in info.value.hint
    assert _keys(moto_server, bucket) == []
    assert not (tmp_path / "repo").exists()  # nothing created anywhere


def test_rules_for_old_versions_or_other_prefixes_are_fine(
    moto_server: S3Endpoint, tmp_path: Path
) -> None:
    bucket = _bucket(
        moto_server,
        [
            {
                "ID": "old-versions",
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 37},
                "Expiration": {"ExpiredObjectDeleteMarker": True},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            },
            {**EXPIRE_ALL, "ID": "tmp", "Filter": {"Prefix": "tmp/"}},
            {**ARCHIVE_OURS, "ID": "disabled", "Status": "Disabled"},
            {**EXPIRE_ALL, "ID": "tagged", "Filter": {"Tag": {"Key": "k", "Value": "v"}}},
        ],
    )
    settings = load_settings(_config(tmp_path, moto_server, bucket, "respaldo/erp"))

    initialize(settings, kdf=FAST_KDF)

    assert "respaldo/erp/config" in _keys(moto_server, bucket)


def test_prune_fails_and_alerts_when_a_rule_appears_after_init(
    moto_server: S3Endpoint,
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
) -> None:
    """A rule added to the bucket after ``init`` (someone tidying the bucket up): each
    prune asks for the rules (one request) and fails, with an alert, long before the
    rule's days have passed; before, nothing looked again."""
    bucket = _bucket(moto_server, [])
    extra = f"""
[[notifications.targets]]
name = "hook"
url = "{webhook.url}"
"""
    settings = load_settings(_config(tmp_path, moto_server, bucket, "respaldo/erp", extra))
    initialize(settings, kdf=FAST_KDF)
    moto_server.client().put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": [EXPIRE_ALL]},  # type: ignore[list-item]
    )

    with Context.open(settings) as ctx:
        result = prune(ctx)

    local, offsite = result.repositories
    assert local.error is None
    assert offsite.error is not None and "lifecycle rule 'old-dumps'" in offsite.error
    assert not result.ok
    (got,) = webhook.inbox.wait(1)
    assert got["json"]["title"] == "[respaldo] CRITICAL: prune failed"
    assert "old-dumps" in got["json"]["message"]
    assert "prune' again" not in got["json"]["message"], got["json"]["message"]


def test_a_repository_at_the_bucket_root_minds_only_rules_on_its_own_prefixes(
    moto_server: S3Endpoint, tmp_path: Path
) -> None:
    """A repository that is the whole bucket writes below config, keys/, packs/, index/,
    manifests/, locks/, quarantine/, wal/ and clusters/ only: a rule expiring ``logs/``
    takes nothing of it (init and prune accept it), one on ``packs/`` (or on ``pa``, which
    covers it) takes its packs (init refuses it, prune fails on it)."""
    logs = {**EXPIRE_ALL, "ID": "logs", "Filter": {"Prefix": "logs/"}}
    bucket = _bucket(moto_server, [logs])
    settings = load_settings(_config(tmp_path, moto_server, bucket, ""))

    initialize(settings, kdf=FAST_KDF)
    assert "config" in _keys(moto_server, bucket)
    with Context.open(settings) as ctx:
        result = prune(ctx)
    assert result.ok, [r.error for r in result.repositories]

    for prefix in ("packs/", "pa"):
        ours = {**EXPIRE_ALL, "ID": "ours", "Filter": {"Prefix": prefix}}
        moto_server.client().put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={"Rules": [logs, ours]},  # type: ignore[list-item]
        )
        with Context.open(settings) as ctx:
            result = prune(ctx)
        _local, offsite = result.repositories
        assert offsite.error is not None and "lifecycle rule 'ours'" in offsite.error
        assert "'logs'" not in offsite.error

    other = tmp_path / "other"
    other.mkdir()
    refused = _bucket(
        moto_server, [logs, {**EXPIRE_ALL, "ID": "ours", "Filter": {"Prefix": "wal/"}}]
    )
    with pytest.raises(ConfigError) as info:
        initialize(load_settings(_config(other, moto_server, refused, "")), kdf=FAST_KDF)
    assert "lifecycle rule 'ours'" in str(info.value) and "'logs'" not in str(info.value)
    assert "packs/" in info.value.hint  # the prefixes the repository uses, to be left alone
