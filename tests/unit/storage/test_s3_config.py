"""S3Storage without a server: URLs, options, the headers it sends and how errors are sorted.

The requests are answered by botocore's Stubber, which also checks the parameters each
request would have carried. What a real server does is tested in ``test_s3_server.py``.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
from botocore.loaders import create_loader
from botocore.stub import Stubber
from pydantic import SecretStr

from respaldo.config import RepositorySettings
from respaldo.errors import (
    ConfigError,
    ObjectNotFound,
    PermanentStorageError,
    StorageError,
    TransientStorageError,
)
from respaldo.operations.repositories import open_store, storage_options
from respaldo.storage import open_storage
from respaldo.storage import s3 as s3_module
from respaldo.storage.retry import RetryingStorage
from respaldo.storage.s3 import MIN_PART_SIZE, S3Storage

pytestmark = pytest.mark.unit

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# Never contacted: the Stubber answers every request.
ENDPOINT = "http://127.0.0.1:9"


def _store(**options: Any) -> S3Storage:
    settings: dict[str, Any] = {
        "endpoint_url": ENDPOINT,
        "region": "eu-west-1",
        "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": SecretStr(SECRET),
    } | options
    return S3Storage("bucket", "repo", **settings)


@pytest.fixture
def store() -> Iterator[S3Storage]:
    instance = _store()
    yield instance
    instance.close()


@pytest.fixture
def stub(store: S3Storage) -> Iterator[Stubber]:
    with Stubber(store.client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


# --- URLs, options, location --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://bucket", "bucket", ""),
        ("s3://bucket/", "bucket", ""),
        ("s3://bucket/respaldo", "bucket", "respaldo"),
        ("s3://bucket/a/b/", "bucket", "a/b"),
        ("s3://my.bucket-1/x_y", "my.bucket-1", "x_y"),
    ],
)
def test_url_names_bucket_and_prefix(url: str, bucket: str, prefix: str) -> None:
    store = S3Storage.from_url(url, {"endpoint_url": ENDPOINT})
    assert (store.bucket, store.prefix) == (bucket, prefix)
    assert store.location == f"s3://{bucket}/{prefix} at {ENDPOINT}"
    assert store.key("packs/ab/x") == (f"{prefix}/packs/ab/x" if prefix else "packs/ab/x")


def test_location_without_endpoint_is_the_url() -> None:
    assert S3Storage("bucket", "a/b", region="eu-west-1").location == "s3://bucket/a/b"


def test_location_never_shows_credentials() -> None:
    store = S3Storage.from_url(
        "s3://bucket/repo",
        {
            "endpoint_url": "https://user:endpoint-password@s3.example.net:9000/",
            "access_key_id": "AKIDEXAMPLE",
            "secret_access_key": SECRET,
        },
    )
    assert store.location == "s3://bucket/repo at https://s3.example.net:9000"
    assert "endpoint-password" not in store.location
    assert SECRET not in store.location
    assert SECRET not in repr(vars(store))


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("s3://", "not an S3 URL"),
        ("s3:///prefix", "not an S3 URL"),
        ("s3://AKID:secret@bucket/prefix", "names only the bucket"),
        ("s3://host:9000/prefix", "names only the bucket"),
        ("s3://bucket/prefix?region=eu", "no query"),
        ("s3://bucket/../escape", "invalid S3 key prefix"),
        ("s3://bucket/a//b", "invalid S3 key prefix"),
        ("s3://bucket/.hidden", "invalid S3 key prefix"),
        ("s3://b/prefix", "invalid S3 bucket name"),
    ],
)
def test_bad_urls_are_config_errors(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        S3Storage.from_url(url)
    assert "secret" not in str(info.value).replace("secret_access_key", "")


def test_unknown_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown S3 options bucket_region") as info:
        S3Storage.from_url("s3://bucket/x", {"bucket_region": "eu"})
    assert "endpoint_url" in info.value.hint


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"server_side_encryption": "AES128"}, "unknown server_side_encryption"),
        ({"sse_kms_key_id": "key"}, "sse_kms_key_id needs"),
        ({"server_side_encryption": "AES256", "sse_kms_key_id": "key"}, "sse_kms_key_id needs"),
        ({"storage_class": "GLACIER"}, "cannot hold a repository"),
        ({"storage_class": "DEEP_ARCHIVE"}, "cannot hold a repository"),
        ({"storage_class": "standard ia"}, "invalid storage class"),
        ({"part_size": MIN_PART_SIZE - 1}, "below the 5 MiB"),
        ({"multipart_threshold": 0}, "must be positive"),
        ({"access_key_id": "AKID"}, "must be given together"),
        ({"secret_access_key": SECRET}, "must be given together"),
        ({"profile": "no-such-profile"}, "profile 'no-such-profile' not found"),
    ],
)
def test_options_that_cannot_work_are_config_errors(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        S3Storage.from_url("s3://bucket/x", {"endpoint_url": ENDPOINT} | options)
    assert SECRET not in str(info.value)


def test_open_storage_opens_s3_with_the_repository_settings() -> None:
    settings = RepositorySettings(
        name="offsite",
        url="s3://erp-backups/respaldo",
        endpoint_url=ENDPOINT,
        region="eu-west-1",
        access_key_id="AKIDEXAMPLE",
        secret_access_key=SecretStr(SECRET),
        server_side_encryption="AES256",
    )
    options = storage_options(settings)
    # Still wrapped on the way to the backend.
    assert isinstance(options["secret_access_key"], SecretStr)
    store = open_store(settings)
    assert isinstance(store, RetryingStorage)
    assert isinstance(store.inner, S3Storage)
    assert store.location == f"s3://erp-backups/respaldo at {ENDPOINT}"
    store.close()


def test_open_storage_accepts_a_plain_secret_string() -> None:
    store = open_storage(
        "s3://bucket/p",
        retries=0,
        endpoint_url=ENDPOINT,
        access_key_id="A",
        secret_access_key=SECRET,
    )
    assert isinstance(store, S3Storage)
    assert store.client._request_signer._credentials.secret_key == SECRET  # type: ignore[attr-defined]


def test_credentials_come_from_the_environment_when_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    store = S3Storage("bucket", endpoint_url=ENDPOINT)
    credentials = store.client._request_signer._credentials  # type: ignore[attr-defined]
    assert credentials.access_key == "AKIDFROMENV"


# --- what put sends -------------------------------------------------------------------------


def test_put_sends_standard_ia_by_default_and_sse() -> None:
    store = _store(server_side_encryption="AES256")
    with Stubber(store.client) as stubber:
        stubber.add_response(
            "put_object",
            {},
            {
                "Bucket": "bucket",
                "Key": "repo/config",
                "Body": b"data",
                "ContentMD5": "jXd/OF09/siBXSD3SWAm3A==",
                "ServerSideEncryption": "AES256",
                "StorageClass": "STANDARD_IA",
            },
        )
        store.put("config", b"data")
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize("storage_class", [None, "STANDARD"])
def test_standard_storage_class_sends_no_header(storage_class: str | None) -> None:
    store = _store(storage_class=storage_class)
    with Stubber(store.client) as stubber:
        stubber.add_response(
            "put_object",
            {},
            {
                "Bucket": "bucket",
                "Key": "repo/config",
                "Body": b"data",
                "ContentMD5": "jXd/OF09/siBXSD3SWAm3A==",
            },
        )
        store.put("config", b"data")
        stubber.assert_no_pending_responses()


def test_kms_encryption_sends_the_key_id() -> None:
    store = _store(server_side_encryption="aws:kms", sse_kms_key_id="alias/backups")
    with Stubber(store.client) as stubber:
        stubber.add_response(
            "put_object",
            {},
            {
                "Bucket": "bucket",
                "Key": "repo/k",
                "Body": b"x",
                "ContentMD5": "ndTkYSaMgDT1yFZOFVxnpg==",
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": "alias/backups",
                "StorageClass": "STANDARD_IA",
            },
        )
        store.put("k", b"x")
        stubber.assert_no_pending_responses()


def test_ranged_get_sends_a_range_header(store: S3Storage, stub: Stubber) -> None:
    stub.add_response(
        "get_object",
        {"Body": _body(b"cd"), "ContentRange": "bytes 2-3/10"},
        {"Bucket": "bucket", "Key": "repo/pack", "Range": "bytes=2-3"},
    )
    stub.add_response(
        "get_object",
        {"Body": _body(b"cdefghij"), "ContentRange": "bytes 2-9/10"},
        {"Bucket": "bucket", "Key": "repo/pack", "Range": "bytes=2-"},
    )
    assert store.get("pack", 2, 2) == b"cd"
    assert store.get("pack", 2) == b"cdefghij"


def test_a_server_that_ignores_range_is_sliced_locally(store: S3Storage, stub: Stubber) -> None:
    stub.add_response("get_object", {"Body": _body(b"abcdefghij")})
    assert store.get("pack", 2, 3) == b"cde"


def test_invalid_range_means_no_bytes(store: S3Storage, stub: Stubber) -> None:
    stub.add_client_error("get_object", "InvalidRange", http_status_code=416)
    assert store.get("pack", 10, 5) == b""


def _body(data: bytes) -> Any:
    import io

    from botocore.response import StreamingBody

    return StreamingBody(io.BytesIO(data), len(data))


# --- how errors are sorted --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("NoSuchKey", 404, ObjectNotFound),
        ("SlowDown", 503, TransientStorageError),
        ("Throttling", 400, TransientStorageError),
        ("RequestTimeout", 400, TransientStorageError),
        ("InternalError", 500, TransientStorageError),
        ("ServiceUnavailable", 503, TransientStorageError),
        ("BadGateway", 502, TransientStorageError),
        ("TooManyRequests", 429, TransientStorageError),
        ("AccessDenied", 403, PermanentStorageError),
        ("InvalidAccessKeyId", 403, PermanentStorageError),
        ("SignatureDoesNotMatch", 403, PermanentStorageError),
        ("NoSuchBucket", 404, PermanentStorageError),
        ("InvalidArgument", 400, PermanentStorageError),
        ("EntityTooLarge", 400, PermanentStorageError),
        ("KeyTooLongError", 400, PermanentStorageError),
    ],
)
def test_server_errors_are_sorted(
    store: S3Storage, stub: Stubber, code: str, status: int, expected: type[StorageError]
) -> None:
    stub.add_client_error("get_object", code, f"message of {code}", http_status_code=status)
    with pytest.raises(StorageError) as info:
        store.get("packs/ab/x")
    assert type(info.value) is expected
    assert info.value.name == "packs/ab/x"
    assert "packs/ab/x" in str(info.value)
    assert "s3://bucket/repo" in str(info.value)
    if code == "NoSuchBucket":
        assert "bucket 'bucket' does not exist" in str(info.value)
    elif expected is not ObjectNotFound:
        assert code in str(info.value)


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("NoSuchBucket", "create the bucket"),
        ("InvalidAccessKeyId", "access_key_id"),
        ("SignatureDoesNotMatch", "secret_access_key"),
        ("AccessDenied", "permission"),
        ("InvalidStorageClass", 'storage_class = "STANDARD"'),
        ("PermanentRedirect", "region"),
        ("KMS.NotFoundException", "sse_kms_key_id"),
    ],
)
def test_permanent_errors_carry_a_hint(
    store: S3Storage, stub: Stubber, code: str, hint: str
) -> None:
    stub.add_client_error("put_object", code, http_status_code=400)
    with pytest.raises(PermanentStorageError) as info:
        store.put("config", b"c")
    assert hint in info.value.hint


def test_a_secret_echoed_by_the_server_is_scrubbed(store: S3Storage, stub: Stubber) -> None:
    stub.add_client_error(
        "put_object", "SignatureDoesNotMatch", f"key {SECRET} is wrong", http_status_code=403
    )
    with pytest.raises(PermanentStorageError) as info:
        store.put("config", b"c")
    assert SECRET not in str(info.value)
    assert "***" in str(info.value)


def test_head_404_with_the_bucket_there_is_object_not_found(
    store: S3Storage, stub: Stubber
) -> None:
    stub.add_client_error("head_object", "404", "Not Found", http_status_code=404)
    stub.add_response("head_bucket", {}, {"Bucket": "bucket"})
    with pytest.raises(ObjectNotFound) as info:
        store.stat("config")
    assert info.value.name == "config"


def test_head_404_without_the_bucket_is_a_permanent_error(store: S3Storage, stub: Stubber) -> None:
    stub.add_client_error("head_object", "404", "Not Found", http_status_code=404)
    stub.add_client_error("head_bucket", "404", "Not Found", http_status_code=404)
    with pytest.raises(PermanentStorageError, match="bucket 'bucket' does not exist") as info:
        store.stat("config")
    assert "create the bucket" in info.value.hint


def test_delete_of_a_missing_object_is_object_not_found(store: S3Storage, stub: Stubber) -> None:
    # DeleteObject itself would succeed (204): the HEAD before it is what notices.
    stub.add_client_error("head_object", "404", "Not Found", http_status_code=404)
    stub.add_response("head_bucket", {})
    with pytest.raises(ObjectNotFound):
        store.delete("keys/k1")


@pytest.mark.parametrize(
    "error",
    [
        ConnectionClosedError(endpoint_url=ENDPOINT),
        ReadTimeoutError(endpoint_url=ENDPOINT),
    ],
    ids=["connection-closed", "read-timeout"],
)
def test_network_failures_are_transient_after_botocore_retries(error: Exception) -> None:
    store = _store(max_attempts=3)
    sent: list[str] = []

    def fail(**kwargs: Any) -> None:
        sent.append("attempt")
        raise error

    store.client.meta.events.register("before-send.s3.GetObject", fail)
    with pytest.raises(TransientStorageError) as info:
        store.get("packs/ab/x")
    assert len(sent) == 3
    assert "packs/ab/x" in str(info.value)


def test_missing_credentials_are_a_permanent_error_with_a_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Keep botocore off the EC2 metadata address while it looks for credentials.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = S3Storage("bucket", "repo", endpoint_url=ENDPOINT, region="eu-west-1")
    with pytest.raises(PermanentStorageError, match="no S3 credentials") as info:
        store.put("config", b"c")
    assert "AWS_ACCESS_KEY_ID" in info.value.hint


def test_close_twice_is_harmless(store: S3Storage) -> None:
    store.close()
    store.close()


# --- botocore's data: what a client keeps ------------------------------------------------


def test_an_s3_client_keeps_little_of_botocore_data_as_plain_compact_objects() -> None:
    # Every AWS service's endpoints and the S3 model's documentation were 8 MiB of a
    # backup's memory into S3 (11.9 MiB kept for one client, measured with tracemalloc).
    # Then botocore parsed what the lean loader keeps into OrderedDicts, scattered among
    # the freed rest of the parse: 2.5 MiB. Parsed again from the text of what is kept,
    # as plain dicts: 1.7 MiB.
    s3_module._shared_loader.cache_clear()
    tracemalloc.start()
    try:
        store = _store()
        gc.collect()
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    store.close()
    assert kept < 2.1 * 1024 * 1024, f"{kept / 2**20:.2f} MiB kept"
    data = s3_module._shared_loader().load_service_model("s3", "service-2")
    assert type(data) is dict and type(data["shapes"]) is dict


def _plain(node: Any) -> bool:
    if isinstance(node, dict):
        return type(node) is dict and all(_plain(value) for value in node.values())
    if isinstance(node, list):
        return all(_plain(value) for value in node)
    return True


@pytest.mark.parametrize(
    "name", ["endpoints", "s3/2006-03-01/service-2", "s3/2006-03-01/endpoint-rule-set-1"]
)
def test_botocore_files_are_parsed_whole_into_plain_dicts_of_the_same_content(name: str) -> None:
    # botocore's own parse builds OrderedDicts, and a (key, value) tuple for each member
    # on the way: the freed tuples kept in Python's free list held on to the pages of
    # the whole parse (4.7 MiB more resident after making a client, measured).
    data, path = s3_module._full_data(name)
    theirs, their_path = create_loader().load_data_with_path(name)
    assert path == their_path
    assert data == theirs
    assert _plain(data)


def test_making_a_client_leaves_little_of_botocore_parse_resident() -> None:
    # In a process of its own: what a client adds to the resident memory depends on what
    # the process's allocators held before. With the allocator tuned as a job's is
    # (repository/allocator.py), a client added 8.4 MiB when botocore parsed its files
    # into OrderedDicts, 3.7 as plain dicts.
    code = (
        "import gc\n"
        "from pydantic import SecretStr\n"
        "from respaldo.repository import allocator\n"
        "from respaldo.storage.s3 import S3Storage\n"
        "def rss():\n"
        "    with open('/proc/self/statm') as fh:\n"
        "        return int(fh.read().split()[1]) * 4096\n"
        "allocator.tune()\n"
        "gc.collect()\n"
        "before = rss()\n"
        f"S3Storage('bucket', endpoint_url={ENDPOINT!r}, region='eu-west-1',\n"
        "          access_key_id='a', secret_access_key=SecretStr('b'))\n"
        "print(rss() - before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    added = int(done.stdout)
    assert added < 6 * 1024 * 1024, f"{added / 2**20:.1f} MiB"


@pytest.mark.parametrize(
    ("region", "url"),
    [
        ("eu-west-1", "https://s3.eu-west-1.amazonaws.com"),
        ("us-gov-west-1", "https://s3.us-gov-west-1.amazonaws.com"),
        ("cn-north-1", "https://s3.cn-north-1.amazonaws.com.cn"),
    ],
)
def test_the_lean_endpoint_data_still_resolves_every_partition(region: str, url: str) -> None:
    store = S3Storage("bucket", region=region, access_key_id="a", secret_access_key=SecretStr("b"))
    assert store.client.meta.endpoint_url == url
    store.close()
