"""S3Storage against real S3-compatible servers: multipart uploads, encryption, storage
classes, credentials, permissions, a missing bucket and an unreachable endpoint.

The servers are started once per session by ``tests/servers/s3.py``: SeaweedFS (a real
server with real authentication and encryption at rest) and moto (which records headers).
Failures are injected with botocore's event hooks, on the real client, so that everything
around the failure (retries, the abort) runs as it would in production.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ConnectionClosedError
from pydantic import SecretStr

from respaldo.config import RepositorySettings
from respaldo.errors import (
    ObjectNotFound,
    PermanentStorageError,
    TransientStorageError,
    WriteRefused,
)
from respaldo.operations.repositories import open_store
from respaldo.storage.base import ObjectInfo
from respaldo.storage.retry import RetryingStorage
from respaldo.storage.s3 import MIN_PART_SIZE, S3Storage
from tests.ports import closed_port
from tests.servers.faultproxy import FaultProxy, Rule
from tests.servers.s3 import S3Endpoint
from tests.unit.repository.helpers import init_repo, open_repo, read_stream, write_backup

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
# Multipart from 1 MiB up, in parts of S3's 5 MiB minimum: 11 MiB make three parts.
SMALL_MULTIPART: dict[str, Any] = {"multipart_threshold": MIB, "part_size": MIN_PART_SIZE}
BIG = 2 * MIN_PART_SIZE + 123_457


def _data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(params=["s3_server", "moto_server"], ids=["seaweedfs", "moto"])
def server(request: pytest.FixtureRequest) -> S3Endpoint:
    endpoint: S3Endpoint = request.getfixturevalue(request.param)
    return endpoint


def _open_uploads(server: S3Endpoint, store: S3Storage) -> list[str]:
    client = server.client()
    uploads = client.list_multipart_uploads(Bucket=server.bucket, Prefix=store.key("x")[:-1])
    return [upload["Key"] for upload in uploads.get("Uploads", [])]


def _fail_on(
    store: S3Storage, operation: str, when: Callable[[AWSPreparedRequest], bool]
) -> list[str]:
    """Make every attempt of ``operation`` for which ``when`` holds lose its connection."""
    attempts: list[str] = []

    def fail(request: AWSPreparedRequest, **kwargs: Any) -> None:
        if when(request):
            attempts.append(request.url)
            raise ConnectionClosedError(endpoint_url=request.url)

    store.client.meta.events.register(f"before-send.s3.{operation}", fail)
    return attempts


# --- multipart ----------------------------------------------------------------------------


def test_an_object_above_the_threshold_goes_up_in_parts(server: S3Endpoint) -> None:
    store = server.storage(**SMALL_MULTIPART)
    data = _data(BIG)
    store.put("packs/ab/big", data)
    assert store.get("packs/ab/big") == data
    assert store.stat("packs/ab/big") == ObjectInfo("packs/ab/big", BIG)
    # Ranges across the boundaries between parts.
    for offset in (MIN_PART_SIZE - 10, 2 * MIN_PART_SIZE - 1):
        assert store.get("packs/ab/big", offset, 20) == data[offset : offset + 20]
    head = server.client().head_object(Bucket=server.bucket, Key=store.key("packs/ab/big"))
    # A multipart object's ETag ends in "-<number of parts>".
    assert head["ETag"].strip('"').endswith("-3")
    assert _open_uploads(server, store) == []
    store.close()


def test_an_object_at_the_threshold_goes_up_in_one_request(server: S3Endpoint) -> None:
    store = server.storage(multipart_threshold=MIB, part_size=MIN_PART_SIZE)
    starts = _fail_on(store, "CreateMultipartUpload", lambda request: True)
    data = _data(MIB, seed=1)
    store.put("pack", data)
    assert starts == []
    assert store.get("pack") == data
    head = server.client().head_object(Bucket=server.bucket, Key=store.key("pack"))
    assert "-" not in head["ETag"]


@pytest.mark.parametrize(
    ("operation", "when"),
    [
        ("UploadPart", lambda request: "partNumber=2" in request.url),
        ("CompleteMultipartUpload", lambda request: True),
    ],
    ids=["second-part", "complete"],
)
def test_a_failed_multipart_upload_is_aborted(
    server: S3Endpoint, operation: str, when: Callable[[AWSPreparedRequest], bool]
) -> None:
    store = server.storage(**SMALL_MULTIPART)
    attempts = _fail_on(store, operation, when)
    aborted: list[str] = []
    store.client.meta.events.register(
        "after-call.s3.AbortMultipartUpload",
        lambda **kwargs: aborted.append(kwargs["model"].name),
    )
    with pytest.raises(TransientStorageError) as info:
        store.put("packs/ab/big", _data(BIG))
    assert len(attempts) == 3  # botocore's own retries, then the failure
    assert "packs/ab/big" in str(info.value)
    assert aborted == ["AbortMultipartUpload"]
    assert _open_uploads(server, store) == []
    with pytest.raises(ObjectNotFound):
        store.stat("packs/ab/big")
    # The store still works afterwards.
    store.client.meta.events.unregister(f"before-send.s3.{operation}")
    store.put("after", b"ok")
    assert store.get("after") == b"ok"


def test_a_failed_abort_does_not_hide_the_failure(
    moto_server: S3Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    store = moto_server.storage(**SMALL_MULTIPART, max_attempts=1)
    _fail_on(store, "UploadPart", lambda request: "partNumber=2" in request.url)
    _fail_on(store, "AbortMultipartUpload", lambda request: True)
    with (
        caplog.at_level(logging.WARNING, logger="respaldo.storage.s3"),
        pytest.raises(TransientStorageError, match="packs/ab/big"),
    ):
        store.put("packs/ab/big", _data(BIG))
    assert "could not abort multipart upload" in caplog.text
    assert moto_server.secret_access_key not in caplog.text


# --- encryption and storage classes ---------------------------------------------------------


def test_sse_aes256_round_trips_and_is_reported(server: S3Endpoint) -> None:
    store = server.storage(server_side_encryption="AES256", **SMALL_MULTIPART)
    small, big = _data(70_000, seed=2), _data(BIG, seed=3)
    store.put("small", small)
    store.put("big", big)
    assert store.get("small") == small
    assert store.get("big") == big
    assert store.get("small", 100, 50) == small[100:150]
    assert store.get("big", MIN_PART_SIZE - 5, 10) == big[MIN_PART_SIZE - 5 : MIN_PART_SIZE + 5]
    client = server.client()
    for name in ("small", "big"):
        head = client.head_object(Bucket=server.bucket, Key=store.key(name))
        assert head.get("ServerSideEncryption") == "AES256", name


def _on_disk(directory: Path, needle: bytes) -> bool:
    return any(
        needle in path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file() and path.stat().st_size < 256 * MIB
    )


def test_sse_aes256_really_encrypts_at_rest_on_seaweedfs(s3_server: S3Endpoint) -> None:
    assert s3_server.data_dir is not None
    # Incompressible around the marker: SeaweedFS compresses what it can, which would hide
    # plaintext from this check just as well as encryption does.
    secret_marker = b"ENCRYPTED-" + secrets.token_hex(8).encode()
    plain_marker = b"PLAINTEXT-" + secrets.token_hex(8).encode()
    encrypted = s3_server.storage(server_side_encryption="AES256")
    encrypted.put("sealed", _data(3000) + secret_marker + _data(3000, seed=1))
    plain = s3_server.storage(storage_class="STANDARD")
    plain.put("open", _data(3000, seed=2) + plain_marker + _data(3000, seed=3))
    # The check can see plaintext when there is some ...
    assert _on_disk(s3_server.data_dir, plain_marker)
    # ... and there is none of the encrypted object.
    assert not _on_disk(s3_server.data_dir, secret_marker)


def test_sse_kms_sends_the_key_id(moto_server: S3Endpoint) -> None:
    # SeaweedFS needs a KMS provider configured for this (without one it answers 500).
    store = moto_server.storage(server_side_encryption="aws:kms", sse_kms_key_id="alias/respaldo")
    store.put("config", b"c")
    head = moto_server.client().head_object(Bucket=moto_server.bucket, Key=store.key("config"))
    assert head.get("ServerSideEncryption") == "aws:kms"
    assert head.get("SSEKMSKeyId") == "alias/respaldo"
    assert store.get("config") == b"c"


@pytest.mark.parametrize("size", [10, BIG], ids=["single", "multipart"])
def test_storage_class_standard_ia_is_the_default(server: S3Endpoint, size: int) -> None:
    store = server.storage(**SMALL_MULTIPART)
    store.put("pack", _data(size))
    head = server.client().head_object(Bucket=server.bucket, Key=store.key("pack"))
    assert head.get("StorageClass") == "STANDARD_IA"


def test_storage_class_standard_sends_no_header(server: S3Endpoint) -> None:
    store = server.storage(storage_class="STANDARD")
    store.put("pack", b"p")
    head = server.client().head_object(Bucket=server.bucket, Key=store.key("pack"))
    assert head.get("StorageClass", "STANDARD") == "STANDARD"


def test_a_storage_class_the_server_rejects_is_permanent_with_a_hint(server: S3Endpoint) -> None:
    store = server.storage(storage_class="NOT_A_CLASS")
    with pytest.raises(PermanentStorageError, match="InvalidStorageClass") as info:
        store.put("pack", b"p")
    assert 'storage_class = "STANDARD"' in info.value.hint


# --- credentials and permissions (SeaweedFS checks signatures; moto does not) ---------------

OPERATIONS: dict[str, Callable[[S3Storage], object]] = {
    "put": lambda store: store.put("config", b"c"),
    "get": lambda store: store.get("config"),
    "get-range": lambda store: store.get("config", 1, 2),
    "stat": lambda store: store.stat("config"),
    "list": lambda store: store.list(""),
    "delete": lambda store: store.delete("config"),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("wrong", ["secret", "key-id"])
def test_wrong_credentials_are_permanent_and_never_shown(
    s3_server: S3Endpoint, operation: str, wrong: str
) -> None:
    secret = "wrong-" + secrets.token_urlsafe(24)
    key_id = s3_server.access_key_id if wrong == "secret" else "NOSUCHKEY" + secrets.token_hex(4)
    store = s3_server.storage(access_key_id=key_id, secret_access_key=SecretStr(secret))
    with pytest.raises(PermanentStorageError) as info:
        OPERATIONS[operation](store)
    text = f"{info.value} {info.value.hint}"
    assert secret not in text
    assert s3_server.secret_access_key not in text
    assert s3_server.bucket in str(info.value)
    assert "access_key_id" in info.value.hint or "credentials" in info.value.hint


def test_a_reader_may_read_but_not_write(s3_server: S3Endpoint) -> None:
    admin = s3_server.storage()
    admin.put("config", b"c")
    reader = s3_server.storage(
        admin.prefix,
        access_key_id=s3_server.reader_key_id,
        secret_access_key=SecretStr(s3_server.reader_secret),
    )
    assert reader.get("config") == b"c"
    assert list(reader.list()) == [ObjectInfo("config", 1)]
    writes: list[Callable[[], object]] = [
        lambda: reader.put("other", b"o"),
        lambda: reader.delete("config"),
    ]
    for write in writes:
        with pytest.raises(PermanentStorageError, match="AccessDenied") as info:
            write()
        assert "permission" in info.value.hint
        assert s3_server.reader_secret not in str(info.value)
    # A refused put is told apart: readers may then go on without writing their lease.
    with pytest.raises(WriteRefused):
        reader.put("other", b"o")
    assert admin.get("config") == b"c"


# --- a missing bucket, an unreachable endpoint ----------------------------------------------


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_a_missing_bucket_is_permanent_with_a_hint(server: S3Endpoint, operation: str) -> None:
    bucket = f"missing-{secrets.token_hex(6)}"
    store = server.storage(bucket=bucket)
    with pytest.raises(PermanentStorageError) as info:
        OPERATIONS[operation](store)
    assert f"bucket {bucket!r} does not exist" in str(info.value)
    assert "create the bucket" in info.value.hint


def test_an_unreachable_endpoint_is_transient_after_retries(s3_server: S3Endpoint) -> None:
    port = closed_port()  # nothing listens there
    store = s3_server.storage(endpoint_url=f"http://127.0.0.1:{port}", connect_timeout=2)
    attempts: list[str] = []
    store.client.meta.events.register(
        "before-send.s3.HeadObject", lambda request, **kwargs: attempts.append(request.url)
    )
    with pytest.raises(TransientStorageError) as info:
        store.stat("config")
    assert len(attempts) == 3
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "config" in str(info.value)
    assert "reachable" in info.value.hint
    assert s3_server.secret_access_key not in str(info.value)


def test_a_range_answered_short_is_transient_and_read_again(s3_server: S3Endpoint) -> None:
    # A gateway that cuts a ranged answer short and says so in its Content-Length: the
    # wire is consistent, only the Content-Range (and the range asked for) tell.
    proxy = FaultProxy(s3_server.endpoint_url).start()
    try:
        store = s3_server.storage(endpoint_url=proxy.url)
        data = _data(100_000, seed=9)
        store.put("packs/ab/short", data)
        proxy.add(Rule("short", path="/packs/", method="GET", times=1))
        with pytest.raises(TransientStorageError, match="returned 2500 of the 5000 bytes"):
            store.get("packs/ab/short", 100, 5000)
        proxy.add(Rule("short", path="/packs/", method="GET", times=1))
        retrying = RetryingStorage(store, sleep=lambda _: None)
        assert retrying.get("packs/ab/short", 100, 5000) == data[100:5100]
        assert [entry.action for entry in proxy.injected()] == ["short", "short"]
    finally:
        proxy.stop()


# --- through the settings, and under a repository ------------------------------------------


def test_a_configured_repository_opens_on_seaweedfs(s3_server: S3Endpoint) -> None:
    settings = RepositorySettings(
        name="offsite",
        url=f"s3://{s3_server.bucket}/offsite/{secrets.token_hex(4)}",
        endpoint_url=s3_server.endpoint_url,
        access_key_id=s3_server.access_key_id,
        secret_access_key=SecretStr(s3_server.secret_access_key),
        server_side_encryption="AES256",
    )
    store = open_store(settings)
    assert isinstance(store, RetryingStorage)
    assert s3_server.secret_access_key not in store.location
    store.put("keys/k1", b"key")
    assert store.get("keys/k1") == b"key"
    assert list(store.list("keys/")) == [ObjectInfo("keys/k1", 3)]
    store.delete("keys/k1")
    assert list(store.list()) == []
    store.close()


def test_a_repository_round_trips_through_seaweedfs(s3_server: S3Endpoint) -> None:
    store = s3_server.storage(server_side_encryption="AES256")
    data = _data(300_000, seed=4)
    repo = init_repo(store)
    manifest, _ = write_backup(repo, "b1", {"dump": data})
    reopened = open_repo(s3_server.storage(store.prefix))
    assert read_stream(reopened, reopened.load_manifest(manifest.backup_id)) == data
    assert any(info.name.startswith("packs/") for info in store.list("packs/"))
