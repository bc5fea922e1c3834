"""Amazon S3 and S3-compatible servers (SeaweedFS, MinIO, Ceph RGW, …) as an object store.

A store is a bucket and a key prefix: ``s3://bucket/some/prefix`` keeps the object
``packs/ab/x`` under the key ``some/prefix/packs/ab/x``; S3 keys end at 1024 bytes, so the
prefix and the longest name must fit in that together. One client (botocore's, which is
what ``boto3.client`` returns) serves every thread: clients are thread-safe, sessions and
resources are not. Its connection pool is large enough for the repository's parallel
uploads.

How the interface maps onto S3:

- ``put``: one PutObject up to ``multipart_threshold`` bytes (16 MiB by default, so the
  repository's ~12 MiB packs go in one request), a multipart upload above it. S3 makes
  either visible atomically when it completes; a multipart upload that fails part-way is
  aborted so that its parts do not linger (and cost money) on the server.
- ``open_spool`` (how a backup writes its packs): the pieces go to an unnamed temporary
  file (``O_TMPFILE``, or unlinked at once where that is missing) in a 0700 directory of
  this process below ``TMPDIR`` (:func:`respaldo.privatedir.private_dir`), their MD5 taken
  as they come; the commit uploads the file as ``put`` uploads bytes (the same request,
  options and Content-MD5, one PutObject or a multipart upload of parts read from the
  file), so a pack never sits whole in memory. The file goes with the spool; the
  directory with the store: at ``close``, or when a store nobody closed is garbage
  collected or its process exits (before, each such store left an empty directory behind
  for good: a dozen of one test process were found in ``/tmp`` after a CI run); a killed
  process leaves only an empty directory, swept by the next one; S3 shows no object
  until its upload completes. A transient failure of the upload keeps the file for
  :class:`~respaldo.storage.retry.RetryingStorage`'s next try.
- ``get``: GetObject, with a ``Range`` header for a slice. S3 answers a range that starts
  at or after the end of the object with 416 InvalidRange; the interface wants ``b""``.
  A ranged answer whose body does not hold the bytes its Content-Range names (a gateway
  cut it short, with a Content-Length to match) is a transient error, retried.
- ``stat``: HeadObject. A HEAD answer has no body, so a 404 does not say whether the key
  or the bucket is missing: on a 404 the bucket is checked (HeadBucket) so that a missing
  bucket is a permanent error rather than "no such object" (which would let ``init`` think
  the repository is merely empty).
- ``list``: ListObjectsV2 through the paginator, read whole at the call and sorted (S3
  lists keys in UTF-8 binary order already; some compatible servers walk directories).
- ``delete``: S3's DeleteObject succeeds for missing keys, but the interface promises
  ``ObjectNotFound``: a HeadObject goes first. Two deleters racing may both pass the HEAD
  and both succeed; that is harmless (the object is gone either way), and it is the same
  outcome :class:`~respaldo.storage.retry.RetryingStorage` reports for a delete whose answer
  was lost. The HEAD also keeps a delete of a "directory" (``packs``) on servers that model
  keys as a file tree from removing what lies below it.

Errors are sorted the way :mod:`respaldo.storage` asks: 404/NoSuchKey is ``ObjectNotFound``;
timeouts, dropped connections, 5xx and throttling (SlowDown, RequestTimeout, …) are
``TransientStorageError``; everything else (403 AccessDenied, NoSuchBucket, bad credentials,
other 4xx) is ``PermanentStorageError``. botocore retries a little by itself (standard
mode, 3 attempts by default) so that a single dropped connection does not surface at all;
longer retries belong to RetryingStorage, which wraps every backend. Messages name the
bucket and key and never contain the secret key.

Server-side encryption: ``AES256`` (SSE-S3, keys kept by the server) or ``aws:kms`` with an
optional ``sse_kms_key_id``. An S3-compatible server needs to be set up for either
(SeaweedFS: a key-encryption key for SSE-S3, a KMS provider for SSE-KMS; without a KMS
provider SeaweedFS answers SSE-KMS uploads with 500 InternalError, which looks transient).

Uploads carry ``Content-MD5``: S3 refuses uploads with an Object Lock retention (and
every upload to a bucket with a default retention) without it, and any server checks it.

Object Lock (``object_lock_mode`` GOVERNANCE or COMPLIANCE, ``object_lock_days``): every
object but those under ``object_lock_exempt`` prefixes is written with a retention of that
many days. The bucket must have Object Lock enabled: ``init`` checks it, and a locked
write that the server refuses as an invalid request is explained by a look at the
bucket (no request is spent on that while all is well: wal-push opens a store per
segment). Renewal, the bucket's state and the versions behind a rewind are the methods of
:class:`~respaldo.storage.object_lock.LockingStorage`; see that module for why.

Lifecycle rules: a bucket rule that expires current objects, or moves them to an archive
class, takes packs away that later backups deduplicated against (:mod:`.lifecycle`);
``init`` refuses such a bucket (:meth:`S3Storage.lifecycle_hazards`).

Storage classes: ``STANDARD_IA`` by default (the specification's choice: backups are written
once and read rarely). S3 bills STANDARD_IA objects for at least 128 KiB and 30 days, which
the repository's small index and manifest objects pay for. ``storage_class = "STANDARD"``
(or ``None``) sends no storage-class header at all, which every server accepts; use it for
S3-compatible servers that reject classes they do not know (MinIO accepts only STANDARD and
REDUCED_REDUNDANCY). Archive classes (GLACIER, DEEP_ARCHIVE) are refused: their objects
cannot be read without a restore request, and the repository reads packs by range.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import functools
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import unquote, urlsplit

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoAuthTokenError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSLError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.loaders import JSONFileLoader, Loader
from botocore.session import Session as BotocoreSession
from botocore.session import get_session
from pydantic import SecretStr

from respaldo.errors import (
    ConfigError,
    InvalidObjectName,
    ObjectNotFound,
    PermanentStorageError,
    StorageError,
    TransientStorageError,
    WriteRefused,
)
from respaldo.privatedir import private_dir
from respaldo.storage import lifecycle
from respaldo.storage.base import (
    ObjectInfo,
    Spool,
    check_range,
    validate_name,
    validate_prefix,
    write_all,
)
from respaldo.storage.object_lock import (
    BucketLockState,
    LockPolicy,
    ObjectVersion,
    no_object_lock,
)

if TYPE_CHECKING:  # boto3-stubs is a development dependency
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import (
        ObjectLockModeType,
        ObjectLockRetentionModeType,
        ServerSideEncryptionType,
        StorageClassType,
    )
    from mypy_boto3_s3.type_defs import (
        CompletedPartTypeDef,
        CopyObjectRequestTypeDef,
        CreateMultipartUploadRequestTypeDef,
        PutObjectRequestTypeDef,
    )

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = 16 * MIB
DEFAULT_PART_SIZE = 8 * MIB
MIN_PART_SIZE = 5 * MIB
"""S3 rejects parts (other than the last) below 5 MiB when the upload completes."""
MAX_PARTS = 10_000
DEFAULT_STORAGE_CLASS = "STANDARD_IA"

# Parallel uploads of packs from several workers, plus readers: botocore's default of 10
# connections would make threads queue for a connection and log "pool is full" warnings.
DEFAULT_MAX_POOL_CONNECTIONS = 32

_SSE_VALUES = ("AES256", "aws:kms")
_ARCHIVE_CLASSES = {"GLACIER", "DEEP_ARCHIVE"}
# Bucket names as AWS allows them, loosened to what S3-compatible servers also accept
# (underscores, upper case); the server has the last word.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")

# Codes that mean "try again later", whatever the HTTP status says.
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
    "PriorRequestNotComplete",
    # The body arrived damaged (its Content-MD5 did not match): send it again.
    "BadDigest",
}
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "InvalidSecurity",
}

_CREDENTIALS_HINT = (
    "check the repository's access_key_id and secret_access_key (or the AWS_* variables, "
    "or the profile) and the server's clock"
)
_NO_CREDENTIALS_HINT = (
    "give the repository access_key_id and secret_access_key (the secret through "
    "RESPALDO_REPOSITORIES as environment), set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "or name a profile"
)
_UNREACHABLE_HINT = "check that the S3 endpoint is up and reachable from this machine"

_OPTIONS = {
    "endpoint_url",
    "region",
    "profile",
    "access_key_id",
    "secret_access_key",
    "server_side_encryption",
    "sse_kms_key_id",
    "storage_class",
    "multipart_threshold",
    "part_size",
    "max_pool_connections",
    "max_attempts",
    "connect_timeout",
    "read_timeout",
    "object_lock_mode",
    "object_lock_days",
    "object_lock_exempt",
}


class S3Storage:
    """Objects in an S3 bucket below a key prefix; see the module docstring.

    ``secret_access_key`` stays wrapped in a ``SecretStr`` until it is handed to boto3.
    ``max_attempts`` counts every request botocore makes for one call, the first included;
    parts are at least ``part_size`` bytes (5 MiB or more, S3's minimum).
    Without ``access_key_id``/``secret_access_key`` boto3's default chain applies: the
    ``profile`` if one is named, else the AWS_* environment variables, ~/.aws, instance or
    container roles. Raises ConfigError for options that cannot work.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: SecretStr | None = None,
        server_side_encryption: str | None = None,
        sse_kms_key_id: str | None = None,
        storage_class: str | None = DEFAULT_STORAGE_CLASS,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int = DEFAULT_PART_SIZE,
        max_pool_connections: int = DEFAULT_MAX_POOL_CONNECTIONS,
        max_attempts: int = 3,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        object_lock_mode: str | None = None,
        object_lock_days: int | None = None,
        object_lock_exempt: tuple[str, ...] = (),
    ) -> None:
        if not _BUCKET.fullmatch(bucket):
            raise ConfigError(
                f"invalid S3 bucket name {bucket!r}",
                hint="bucket names are 3-63 letters, digits, '.', '-' (and '_' on some servers)",
            )
        self._bucket = bucket
        self._prefix = _clean_prefix(prefix)
        self._key_prefix = f"{self._prefix}/" if self._prefix else ""
        self._endpoint_url = endpoint_url
        self._sse = _check_sse(server_side_encryption, sse_kms_key_id)
        self._sse_kms_key_id = sse_kms_key_id
        self._storage_class = _check_storage_class(storage_class)
        self._lock_policy = _check_lock(object_lock_mode, object_lock_days)
        self._lock_exempt = tuple(object_lock_exempt)
        if part_size < MIN_PART_SIZE:
            raise ConfigError(
                f"S3 part size {part_size} is below the 5 MiB that S3 requires",
                hint=f"use a part_size of at least {MIN_PART_SIZE}",
            )
        if multipart_threshold < 1:
            raise ConfigError(f"S3 multipart threshold must be positive, not {multipart_threshold}")
        self._threshold = multipart_threshold
        self._part_size = part_size
        if (access_key_id is None) != (secret_access_key is None):
            raise ConfigError(
                "S3 access_key_id and secret_access_key must be given together",
                hint="give both, or neither to use the environment or a profile",
            )
        # Kept only to scrub it from any message a server might echo it in.
        self._secret = secret_access_key
        self._closed = False
        self._close_lock = threading.Lock()
        self._spool_path: Path | None = None
        self._spool_remover: weakref.finalize[[Path, bool], S3Storage] | None = None

        try:
            session = _new_session(profile)
            config = Config(
                # A region is needed to sign requests; S3-compatible servers mostly ignore
                # it, and AWS itself redirects requests for buckets of other regions.
                region_name=region or session.get_config_variable("region") or "us-east-1",
                # total_max_attempts counts the first request; botocore's max_attempts
                # would count only the retries.
                retries={"mode": "standard", "total_max_attempts": max_attempts},
                max_pool_connections=max_pool_connections,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                # boto3 >= 1.36 adds CRC checksums (headers or aws-chunked trailers) to every
                # upload by default, and S3-compatible servers that do not know them reject
                # the request (or store the chunk framing as data). Send them only where an
                # operation requires one. Integrity does not suffer: every sealed chunk is
                # authenticated (AES-GCM) by the repository when it is read.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                # Virtual-host addressing needs a DNS name per bucket, which a custom
                # endpoint (an IP address, localhost, a single host name) rarely has.
                s3={"addressing_style": "path"} if endpoint_url else {},
                user_agent_extra="respaldo",
            )
            client = session.create_client(
                "s3",
                endpoint_url=endpoint_url,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=(
                    secret_access_key.get_secret_value() if secret_access_key is not None else None
                ),
                config=config,
            )
        except ProfileNotFound as exc:
            raise ConfigError(
                f"AWS profile {profile!r} not found",
                hint="define it in ~/.aws/config or ~/.aws/credentials, or remove 'profile'",
            ) from exc
        except ValueError as exc:  # a malformed endpoint_url
            raise ConfigError(f"invalid S3 endpoint_url {endpoint_url!r}: {exc}") from exc
        self._client = cast("S3Client", client)

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any] | None = None) -> S3Storage:
        """Open ``s3://bucket/prefix`` with backend options (those of RepositorySettings).

        A plain string ``secret_access_key`` is wrapped in ``SecretStr``. Unknown options,
        credentials or a query in the URL are ConfigErrors.
        """
        options = dict(options or {})
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigError(
                f"unknown S3 options {', '.join(unknown)} for {url}",
                hint=f"known: {', '.join(sorted(_OPTIONS))}",
            )
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigError(f"not an S3 URL: {url}", hint="use s3://bucket/prefix")
        if "@" in parts.netloc or ":" in parts.netloc:
            raise ConfigError(
                "an S3 URL names only the bucket and prefix",
                hint="give the server as endpoint_url and credentials as access_key_id and "
                "secret_access_key",
            )
        if parts.query or parts.fragment:
            raise ConfigError(f"S3 URLs take no query or fragment: {url}")
        secret = options.get("secret_access_key")
        if isinstance(secret, str):
            options["secret_access_key"] = SecretStr(secret)
        return cls(parts.netloc, unquote(parts.path), **options)

    # --- properties ------------------------------------------------------------------

    @property
    def location(self) -> str:
        where = f"s3://{self._bucket}/{self._prefix}"
        if self._endpoint_url:
            # Drop any user:password@ from the endpoint; keep scheme, host, port and path.
            endpoint = urlsplit(self._endpoint_url)
            host = endpoint.hostname or ""
            port = f":{endpoint.port}" if endpoint.port else ""
            where += f" at {endpoint.scheme}://{host}{port}{endpoint.path.rstrip('/')}"
        return where

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        """The key prefix without a trailing ``/`` (empty: the whole bucket)."""
        return self._prefix

    @property
    def client(self) -> S3Client:
        """The boto3 client, shared by all threads (for tests and diagnostics)."""
        return self._client

    @property
    def lock_policy(self) -> LockPolicy | None:
        return self._lock_policy

    @property
    def lock_exempt(self) -> tuple[str, ...]:
        return self._lock_exempt

    @property
    def spool_dir(self) -> Path | None:
        """The private directory of this store's upload spools (None before the first)."""
        return self._spool_path

    def key(self, name: str) -> str:
        """The S3 key of an object name (validated)."""
        return self._key_prefix + validate_name(name)

    # --- the interface ----------------------------------------------------------------

    def put(self, name: str, data: bytes) -> None:
        key = self.key(name)
        with self._writing(name):
            if len(data) > self._threshold:
                view = memoryview(data)
                self._put_multipart(
                    name, key, len(data), lambda start, size: bytes(view[start : start + size])
                )
            else:
                self._put_object(name, key, bytes(data), _md5(data))

    def open_spool(self, directory: str) -> Spool:
        validate_prefix(directory)
        where = self._spool_dir()
        try:
            # No name at all (O_TMPFILE where the file system has it, else unlinked at
            # once): whatever ends this process, the file goes with it.
            file = tempfile.TemporaryFile(dir=where, buffering=0)  # noqa: SIM115 (the spool owns it)
        except OSError as exc:
            raise _spool_error(exc, where) from exc
        return _UploadSpool(self, cast(BinaryIO, file), where)

    def _spool_dir(self) -> Path:
        with self._close_lock:
            if self._spool_path is None or not self._spool_path.is_dir():
                try:
                    path = private_dir("upload")
                except OSError as exc:
                    raise _spool_error(exc, Path(tempfile.gettempdir())) from exc
                if self._spool_remover is not None:
                    self._spool_remover()  # the one removed behind this store's back
                self._spool_path = path
                # Removed with the store even if nobody closes it: garbage collected, or
                # at the process's exit (atexit). Only SIGKILL leaves it, for the sweep.
                self._spool_remover = weakref.finalize(self, shutil.rmtree, path, True)
            return self._spool_path

    @contextlib.contextmanager
    def _writing(self, name: str) -> Iterator[None]:
        """Sort what a write raised (see :meth:`_error`)."""
        try:
            yield
        except ClientError as exc:
            if self._lock_policy is not None and _code(exc) == "InvalidRequest":
                self._refuse_unlockable_bucket()
            raise self._error(exc, name, "write") from exc
        except BotoCoreError as exc:
            raise self._error(exc, name, "write") from exc

    def _put_object(self, name: str, key: str, body: bytes | BinaryIO, md5: str) -> None:
        request: PutObjectRequestTypeDef = {
            "Bucket": self._bucket,
            "Key": key,
            "Body": body,
            "ContentMD5": md5,
        }
        self._add_object_options(request, name)
        self._client.put_object(**request)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        key = self.key(name)
        check_range(offset, length)
        if length == 0:
            # Nothing to read, but a missing object must still be reported.
            self.stat(name)
            return b""
        ranged = offset > 0 or length is not None
        try:
            if ranged:
                end = "" if length is None else str(offset + length - 1)
                response = self._client.get_object(
                    Bucket=self._bucket, Key=key, Range=f"bytes={offset}-{end}"
                )
            else:
                response = self._client.get_object(Bucket=self._bucket, Key=key)
            body = response["Body"]
            try:
                data = body.read()
            finally:
                body.close()
        except ClientError as exc:
            if _code(exc) == "InvalidRange" or _status(exc) == 416:
                # The range starts at or after the end: the object exists (S3 checks the
                # key first) and has no bytes there.
                return b""
            raise self._error(exc, name, "read") from exc
        except BotoCoreError as exc:
            raise self._error(exc, name, "read") from exc
        if ranged and "ContentRange" not in response:
            # A server that ignored the Range header sent the whole object.
            return data[offset:] if length is None else data[offset : offset + length]
        if ranged:
            self._check_range_answer(name, response["ContentRange"], offset, len(data))
        return data

    def _check_range_answer(self, name: str, content_range: str, offset: int, got: int) -> None:
        """Raise TransientStorageError unless a ranged answer holds the bytes its
        Content-Range names, from ``offset``. botocore checks the body against the
        Content-Length only: a gateway that cuts the answer short and says so in its
        Content-Length would hand over too few bytes without a word, which the
        repository would take for a truncated (damaged) pack."""
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(?:\d+|\*)", content_range.strip())
        if match is None:
            return  # a form this check does not know: the repository authenticates anyway
        start, end = int(match.group(1)), int(match.group(2))
        if start != offset or got != end - start + 1:
            raise TransientStorageError(
                f"cannot read {name} in {self.location}: the server returned {got} of the "
                f"{end - start + 1} bytes its answer's Content-Range ({content_range}) names",
                name=name,
                hint="something between this machine and the S3 endpoint (a proxy, a "
                "gateway) cuts answers short; the read is retried",
            )

    def sync(self, name: str) -> None:
        # An object a server lists or answers for was acknowledged durable by its put.
        self.stat(name)

    def stat(self, name: str) -> ObjectInfo:
        key = self.key(name)
        try:
            response = self._client.head_object(Bucket=self._bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, name, "stat", head=True) from exc
        return ObjectInfo(name, response["ContentLength"])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        found: list[ObjectInfo] = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._key_prefix + prefix):
                for entry in page.get("Contents", []):
                    name = self._name_of(entry["Key"])
                    if name is not None:
                        found.append(ObjectInfo(name, entry.get("Size", 0)))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, prefix, "list") from exc
        found.sort(key=lambda info: info.name)
        return iter(found)

    def _name_of(self, key: str) -> str | None:
        """The object name of an S3 key below the prefix; None for keys respaldo never writes."""
        name = key[len(self._key_prefix) :]
        if not key.startswith(self._key_prefix) or not _is_object_name(name):
            # Directory markers ("x/") and keys that respaldo never writes.
            log.debug("ignoring key %r in %s", key, self.location)
            return None
        return name

    def delete(self, name: str) -> None:
        key = self.key(name)
        self.stat(name)  # raises ObjectNotFound: see the module docstring for the race
        try:
            self._client.delete_object(Bucket=self._bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, name, "delete") from exc

    # --- object lock and versions (respaldo.storage.object_lock.LockingStorage) ---------

    def bucket_lock_state(self) -> BucketLockState:
        try:
            versioning = self._client.get_bucket_versioning(Bucket=self._bucket).get("Status", "")
            try:
                config = self._client.get_object_lock_configuration(Bucket=self._bucket)
                enabled = config["ObjectLockConfiguration"].get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if _code(exc) != "ObjectLockConfigurationNotFoundError":
                    raise
                enabled = False
            return BucketLockState(enabled, versioning)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "", "read the lock settings of") from exc

    def lifecycle_rules(self) -> Sequence[Mapping[str, Any]]:
        """The bucket's lifecycle rules (none where the bucket has none, or the server
        keeps none: SeaweedFS answers NotImplemented). Needs s3:GetLifecycleConfiguration;
        raises the storage error of a refusal."""
        try:
            response = self._client.get_bucket_lifecycle_configuration(Bucket=self._bucket)
        except ClientError as exc:
            if _code(exc) in ("NoSuchLifecycleConfiguration", "NotImplemented"):
                return []
            raise self._error(exc, "", "read the lifecycle rules of") from exc
        except BotoCoreError as exc:
            raise self._error(exc, "", "read the lifecycle rules of") from exc
        return cast("Sequence[Mapping[str, Any]]", response.get("Rules", []))

    def lifecycle_hazards(self) -> builtins.list[str]:
        """The bucket's lifecycle rules that delete or archive this store's current
        objects, one sentence each (:mod:`respaldo.storage.lifecycle`)."""
        return [
            f"{text} in bucket {self._bucket!r}"
            for text in lifecycle.hazards(self.lifecycle_rules(), self._key_prefix)
        ]

    def noncurrent_expiration_days(self) -> int | None:
        rules = self.lifecycle_rules()
        if not rules:
            return None
        days = None
        for rule in rules:
            expiry = rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")
            rule_prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix", ""))
            # Only rules that cover every key of this store count (rules filtered by tags or
            # sizes are not understood here, and are not counted).
            covers = set(rule.get("Filter", {})) <= {"Prefix"} and (
                self._key_prefix.startswith(rule_prefix)
            )
            if rule.get("Status") == "Enabled" and expiry is not None and covers:
                days = expiry if days is None else min(days, expiry)
        return days

    def locked_until(self, name: str) -> datetime | None:
        key = self.key(name)
        try:
            response = self._client.head_object(Bucket=self._bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, name, "stat", head=True) from exc
        return response.get("ObjectLockRetainUntilDate")

    def extend_lock(self, name: str, until: datetime) -> None:
        policy = self._require_policy()
        key = self.key(name)
        try:
            self._client.put_object_retention(
                Bucket=self._bucket,
                Key=key,
                Retention={
                    "Mode": cast("ObjectLockRetentionModeType", policy.mode),
                    "RetainUntilDate": until,
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, name, "extend the lock of") from exc

    def versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        validate_prefix(prefix)
        found: list[ObjectVersion] = []
        try:
            paginator = self._client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._key_prefix + prefix):
                # S3 lists versions and markers apart, each newest first per key; they
                # are merged below by time (see LockingStorage.versions for ties).
                for entry in page.get("Versions", []):
                    name = self._name_of(entry["Key"])
                    if name is not None:
                        found.append(
                            ObjectVersion(
                                name,
                                entry["VersionId"],
                                entry["LastModified"],
                                entry.get("Size", 0),
                                latest=entry.get("IsLatest", False),
                                etag=entry.get("ETag", ""),
                            )
                        )
                for marker in page.get("DeleteMarkers", []):
                    name = self._name_of(marker["Key"])
                    if name is not None:
                        found.append(
                            ObjectVersion(
                                name,
                                marker["VersionId"],
                                marker["LastModified"],
                                delete_marker=True,
                                latest=marker.get("IsLatest", False),
                            )
                        )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, prefix, "list the versions of") from exc
        # Newest first per name. Within one time: the current entry (IsLatest) first, then
        # versions before markers; among versions S3's own order stays (a stable sort).
        found.sort(key=lambda v: (v.name, -v.modified.timestamp(), not v.latest, v.delete_marker))
        return iter(found)

    def restore_version(self, name: str, version_id: str) -> None:
        key = self.key(name)
        request: CopyObjectRequestTypeDef = {
            "Bucket": self._bucket,
            "Key": key,
            "CopySource": {"Bucket": self._bucket, "Key": key, "VersionId": version_id},
            # The copy gets this store's encryption and class, not the old ones.
            "MetadataDirective": "REPLACE",
        }
        # The lock follows in a request of its own: a CopyObject that carries lock headers
        # has no body to give a Content-MD5 of, and some servers insist on one (moto). The
        # version copied from stays locked meanwhile, so nothing is exposed.
        self._add_object_options(request, name, lock=False)
        try:
            self._client.copy_object(**request)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, name, f"restore version {version_id} of") from exc
        policy = self._lock_policy
        if policy is not None and not name.startswith(self._lock_exempt):
            self.extend_lock(name, policy.until(datetime.now(UTC)))

    def _require_policy(self) -> LockPolicy:
        if self._lock_policy is None:
            raise ConfigError(f"{self.location} has no object_lock_mode set")
        return self._lock_policy

    def _refuse_unlockable_bucket(self) -> None:
        """After a locked write was refused: ConfigError if the bucket cannot lock at all.

        Servers word that refusal differently (AWS and moto: "Bucket is missing Object Lock
        Configuration", SeaweedFS: "Invalid Request"), so the bucket itself is asked.
        """
        try:
            enabled = self.bucket_lock_state().object_lock_enabled
        except StorageError:
            return  # the original error is the one to report
        if not enabled:
            raise no_object_lock(self.location)

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            remover, self._spool_path, self._spool_remover = self._spool_remover, None, None
        self._client.close()
        if remover is not None:
            # Spools still open keep their files (they have no name in it).
            remover()

    # --- helpers ----------------------------------------------------------------------

    def _add_object_options(
        self,
        request: PutObjectRequestTypeDef
        | CreateMultipartUploadRequestTypeDef
        | CopyObjectRequestTypeDef,
        name: str,
        *,
        lock: bool = True,
    ) -> None:
        policy = self._lock_policy
        if lock and policy is not None and not name.startswith(self._lock_exempt):
            request["ObjectLockMode"] = cast("ObjectLockModeType", policy.mode)
            request["ObjectLockRetainUntilDate"] = policy.until(datetime.now(UTC))
        if self._sse is not None:
            request["ServerSideEncryption"] = self._sse
            if self._sse_kms_key_id is not None:
                request["SSEKMSKeyId"] = self._sse_kms_key_id
        if self._storage_class is not None:
            request["StorageClass"] = self._storage_class

    def _put_multipart(
        self, name: str, key: str, size: int, read: Callable[[int, int], bytes]
    ) -> None:
        """Upload ``size`` bytes in parts, each ``read(start, length)`` when it is sent."""
        # Parts go one after another: parallelism comes from the repository uploading
        # several packs at once, and a pack rarely crosses the threshold at all.
        part_size = max(self._part_size, -(-size // MAX_PARTS))
        request: CreateMultipartUploadRequestTypeDef = {"Bucket": self._bucket, "Key": key}
        self._add_object_options(request, name)
        upload_id = self._client.create_multipart_upload(**request)["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            for number, start in enumerate(range(0, size, part_size), start=1):
                part = read(start, min(part_size, size - start))
                response = self._client.upload_part(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=part,
                    ContentMD5=_md5(part),
                )
                parts.append({"ETag": response["ETag"], "PartNumber": number})
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self._abort(key, upload_id)
            raise

    def _abort(self, key: str, upload_id: str) -> None:
        """Abort a failed multipart upload, so that its parts are not kept (and billed)."""
        try:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:
            # The original failure is what the caller must hear about; a bucket lifecycle
            # rule (AbortIncompleteMultipartUpload) is the backstop for leftovers.
            log.warning(
                "could not abort multipart upload of %s in s3://%s: %s",
                key,
                self._bucket,
                self._scrub(str(exc)),
            )

    def _scrub(self, text: str) -> str:
        if self._secret is not None:
            secret = self._secret.get_secret_value()
            if secret:
                text = text.replace(secret, "***")
        return text

    def _bucket_missing(self) -> bool:
        """After a 404 without a body (HEAD): is it the bucket that is missing?"""
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except ClientError as exc:
            return _code(exc) in ("404", "NoSuchBucket", "NotFound")
        except BotoCoreError:
            return False
        return False

    def _error(
        self, exc: ClientError | BotoCoreError, name: str, action: str, *, head: bool = False
    ) -> StorageError:
        """Sort a boto error into not-found, transient or permanent, with a clear message."""
        where = f"{name} in {self.location}" if name else self.location
        if isinstance(exc, ClientError):
            return self._client_error(exc, name, action, where, head=head)
        detail = self._scrub(str(exc))
        message = f"cannot {action} {where}: {detail}"
        if isinstance(exc, NoCredentialsError | PartialCredentialsError | NoAuthTokenError):
            return PermanentStorageError(
                f"cannot {action} {where}: no S3 credentials found",
                name=name,
                hint=_NO_CREDENTIALS_HINT,
            )
        if isinstance(exc, CredentialRetrievalError | TokenRetrievalError):
            return PermanentStorageError(message, name=name, hint=_CREDENTIALS_HINT)
        if isinstance(exc, SSLError) and "CERTIFICATE_VERIFY_FAILED" in detail:
            return PermanentStorageError(
                message,
                name=name,
                hint="the endpoint's TLS certificate is not trusted; set AWS_CA_BUNDLE to "
                "the CA that signed it",
            )
        if isinstance(exc, BotoConnectionError):
            return TransientStorageError(message, name=name, hint=_UNREACHABLE_HINT)
        if isinstance(exc, HTTPClientError | IncompleteReadError):
            return TransientStorageError(message, name=name)
        return PermanentStorageError(message, name=name)

    def _client_error(
        self, exc: ClientError, name: str, action: str, where: str, *, head: bool
    ) -> StorageError:
        code = _code(exc)
        status = _status(exc)
        text = exc.response.get("Error", {}).get("Message") or ""
        detail = self._scrub(f"{code}: {text}" if text and text != code else code)
        message = f"cannot {action} {where}: {detail} (HTTP {status})"

        if code == "NoSuchBucket" or (head and code in _NOT_FOUND_CODES and self._bucket_missing()):
            return PermanentStorageError(
                f"cannot {action} {where}: bucket {self._bucket!r} does not exist",
                name=name,
                hint="create the bucket, or correct the repository URL (s3://bucket/prefix) "
                "and endpoint_url",
            )
        if code in _NOT_FOUND_CODES:
            return ObjectNotFound(f"no object {where}", name=name)
        if code in _TRANSIENT_CODES or status >= 500 or status in (408, 429):
            return TransientStorageError(message, name=name)
        if code in _CREDENTIAL_CODES:
            return PermanentStorageError(message, name=name, hint=_CREDENTIALS_HINT)
        if code in ("AccessDenied", "403", "AllAccessDisabled") or status == 403:
            # Denied a write: credentials that may only read (readers can carry on).
            refused = WriteRefused if action == "write" else PermanentStorageError
            return refused(
                message,
                name=name,
                hint=f"the credentials lack a permission on bucket {self._bucket!r} "
                "(s3:GetObject, s3:PutObject, s3:DeleteObject, s3:ListBucket, and "
                "s3:AbortMultipartUpload are needed); "
                "with wrong credentials, " + _CREDENTIALS_HINT,
            )
        if code == "InvalidStorageClass":
            return PermanentStorageError(
                message,
                name=name,
                hint=f"this server does not support storage class {self._storage_class!r}; "
                'set storage_class = "STANDARD"',
            )
        if code in (
            "PermanentRedirect",
            "AuthorizationHeaderMalformed",
            "IllegalLocationConstraintException",
        ):
            return PermanentStorageError(
                message, name=name, hint="set the repository's region to the bucket's region"
            )
        if "Encryption" in code or "KMS" in code or code == "NotImplemented":
            return PermanentStorageError(
                message,
                name=name,
                hint="check server_side_encryption and sse_kms_key_id against what the server "
                "supports",
            )
        return PermanentStorageError(message, name=name)


_SPOOL_HINT = (
    "packs on their way to S3 wait in a temporary file (about 12 MiB each, a few at once): "
    "free space in the temporary directory, or point TMPDIR at a file system with room"
)


def _spool_error(exc: OSError, where: Path) -> PermanentStorageError:
    return PermanentStorageError(
        f"cannot write an upload's temporary file in {where}: {exc.strerror or exc}",
        hint=_SPOOL_HINT,
    )


_BODY_READ_MAX = 128 * 1024
"""The most a spool's upload reads of its file at a time (what ``http.client`` sends at
a time anyway)."""


class _SpoolBody:
    """A spool's file as the body of its PutObject, read at most :data:`_BODY_READ_MAX`
    bytes a call.

    Over plain HTTP botocore signs the payload: it reads the whole body to hash it first,
    1 MiB a call, the previous read still held while it makes the next: 2 MiB mapped
    anew for each MiB hashed, on each upload thread (a pack's upload peaked at 2.0 MiB
    traced, 0.5 with reads of 256 KiB; two upload threads at once were two of a backup's
    mapped buffers at its peak). Over HTTPS, with the Content-MD5 every upload carries,
    botocore does not hash the payload and reads only what it sends."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def read(self, size: int = -1) -> bytes:
        # read() and read(-1) mean "to the end": only bounded reads are capped.
        return self._file.read(min(size, _BODY_READ_MAX) if size >= 0 else -1)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()


class _UploadSpool:
    """:meth:`S3Storage.open_spool`'s spool: an unnamed temporary file, uploaded whole by
    the commit (see the module docstring). Used by one thread at a time."""

    def __init__(self, store: S3Storage, file: BinaryIO, where: Path) -> None:
        self._store = store
        self._file: BinaryIO | None = file
        self._where = where
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, pieces: Sequence[bytes]) -> None:
        file = self._open_file()
        for piece in pieces:
            self._md5.update(piece)
        try:
            self.size += write_all(file.fileno(), pieces)
        except OSError as exc:
            # The MD5 has bytes the file lacks: this spool can only be discarded now.
            self.discard()
            raise _spool_error(exc, self._where) from exc

    def commit(self, name: str) -> None:
        file = self._open_file()
        store = self._store
        key = store.key(name)
        md5 = base64.b64encode(self._md5.digest()).decode("ascii")
        fd = file.fileno()
        try:
            with store._writing(name):
                if self.size > store._threshold:
                    store._put_multipart(
                        name, key, self.size, lambda start, size: os.pread(fd, size, start)
                    )
                else:
                    file.seek(0)
                    store._put_object(name, key, cast(BinaryIO, _SpoolBody(file)), md5)
        except TransientStorageError:
            raise  # the file stays for another try
        except BaseException:
            self.discard()
            raise
        self.discard()

    def discard(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()

    def _open_file(self) -> BinaryIO:
        if self._file is None:
            raise StorageError("an upload's spool was committed or discarded already")
        return self._file


# The services whose endpoints a client of this module can need: S3 itself, and those a
# credential chain may create clients for (a profile's role, SSO).
_ENDPOINT_SERVICES = frozenset({"s3", "sts", "sso", "sso-oidc"})

# The S3 operations this module calls (tests/unit/storage/test_s3_lean_model.py fails when
# a call to another one is added without it), and CreateSession, which botocore itself
# calls to sign requests to S3 Express directory buckets. The client is made from a model
# of these alone: S3 has about 120 operations and 740 shapes, 3.6 MiB of Python objects
# for the life of the process; these and the shapes they reach are about a fifth of it.
S3_OPERATIONS = frozenset(
    {
        "AbortMultipartUpload",
        "CompleteMultipartUpload",
        "CopyObject",
        "CreateMultipartUpload",
        "CreateSession",
        "DeleteObject",
        "GetBucketLifecycleConfiguration",
        "GetBucketVersioning",
        "GetObject",
        "GetObjectLockConfiguration",
        "HeadBucket",
        "HeadObject",
        "ListObjectVersions",
        "ListObjectsV2",
        "PutObject",
        "PutObjectRetention",
        "UploadPart",
    }
)


class _LeanLoader(Loader):
    """botocore's data loader, keeping less of what it loads for the life of the process.

    ``endpoints`` (every AWS service in every partition: 6.8 MiB of Python objects once
    parsed, kept by the loader's cache and the session's resolver) is kept with the
    services of :data:`_ENDPOINT_SERVICES` only, and the service models with their
    ``documentation`` strings emptied (docstrings for ``help()``; no request needs their
    text): about a sixth of a backup's memory into S3 was botocore's data. S3's model is
    cut to the operations of :data:`S3_OPERATIONS` (a client of it has no other methods).
    Every file it loads is kept as plain dicts and lists parsed again from the JSON text of
    what is kept (botocore's own parse makes OrderedDicts): 1.7 MiB kept for a client
    instead of 2.5 (tracemalloc).
    """

    def __init__(self) -> None:
        super().__init__()
        self._lean: dict[str, tuple[Any, str]] = {}
        self._lean_lock = threading.Lock()

    def load_data_with_path(self, name: str) -> tuple[Any, str]:
        with self._lean_lock:
            if name not in self._lean:
                text, path = _lean_text(name)
                # Parsed again from the text of what is kept, once the whole file's parse
                # is gone: what is kept is then packed together in memory instead of
                # scattered among the freed rest, which held on to the allocator's pages.
                self._lean[name] = (json.loads(text), path)
            return self._lean[name]


class _PlainJSONFileLoader(JSONFileLoader):
    """botocore's file loader, parsing into plain dicts rather than OrderedDicts.

    For an OrderedDict, ``json`` builds a ``(key, value)`` tuple of every member of every
    object first; the last couple of thousand freed go to Python's free list of tuples,
    each in a page of its own among the freed rest of the parse, and keep those pages'
    arenas from going back to the system until a full garbage collection. Parsing the
    three files an S3 client needs (the endpoints of every service, S3's model and its
    endpoint rules, about 11 MiB of objects at once) left 10.1 MiB more resident in a
    process holding a backup's modules; parsed into plain dicts, 5.5.
    """

    _OPENERS: tuple[tuple[str, Callable[[str, str], Any]], ...] = (
        (".json", open),
        (".json.gz", gzip.open),
    )

    def load_file(self, file_path: str) -> Any:
        for ext, opener in self._OPENERS:
            path = file_path + ext
            if Path(path).is_file():
                with opener(path, "rb") as fh:
                    return json.loads(fh.read())
        # A form this class does not know (a later botocore's): botocore's own parse.
        return super().load_file(file_path)


def _full_data(name: str) -> tuple[Any, str]:
    """botocore's data file ``name``, whole, as plain dicts and lists; and its path."""
    # A throwaway loader, so that the whole file is not cached by the shared one.
    loader = Loader(file_loader=_PlainJSONFileLoader())
    return cast("tuple[Any, str]", loader.load_data_with_path(name))


def _lean_text(name: str) -> tuple[str, str]:
    """The JSON text of the part of botocore's data file ``name`` that is kept."""
    data, path = _full_data(name)
    if name == "endpoints":
        for partition in data.get("partitions", []):
            services = partition.get("services", {})
            partition["services"] = {k: v for k, v in services.items() if k in _ENDPOINT_SERVICES}
    elif name.endswith("/service-2"):
        _drop_documentation(data)
        if name.startswith("s3/"):
            data = _only_operations(data, S3_OPERATIONS)
    return json.dumps(data, separators=(",", ":")), path


def _drop_documentation(node: Any) -> None:
    if isinstance(node, dict):
        # Emptied, not removed: botocore reads some (client context parameters'). Only
        # strings: a member named "documentation" would be a dict (its shape), kept.
        if isinstance(node.get("documentation"), str):
            node["documentation"] = ""
        for value in node.values():
            _drop_documentation(value)
    elif isinstance(node, list):
        for value in node:
            _drop_documentation(value)


def _only_operations(model: dict[str, Any], operations: frozenset[str]) -> dict[str, Any]:
    """A service model (``service-2``) with only ``operations`` and the shapes they reach
    (their input, output and errors, through members, list members and map keys and
    values); the rest of the model as it is."""
    shapes: dict[str, Any] = model["shapes"]
    kept: set[str] = set()
    todo: list[str] = []
    ops = {name: op for name, op in model["operations"].items() if name in operations}
    for op in ops.values():
        todo += [op[part]["shape"] for part in ("input", "output") if part in op]
        todo += [error["shape"] for error in op.get("errors", [])]
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept.add(name)
        shape = shapes[name]
        todo += [member["shape"] for member in shape.get("members", {}).values()]
        todo += [shape[part]["shape"] for part in ("member", "key", "value") if part in shape]
    return {
        **model,
        "operations": ops,
        "shapes": {name: shape for name, shape in shapes.items() if name in kept},
    }


@functools.cache
def _shared_loader() -> Loader:
    return _LeanLoader()


def _new_session(profile: str | None) -> BotocoreSession:
    """A botocore session (one per store: sessions cache credentials) on a shared loader.

    Every new session would otherwise parse megabytes of JSON (the S3 service model and
    endpoint rules) again, a tenth of a second each time; the loader caches what it parsed
    and is only read once it has.
    """
    session = get_session()
    session.register_component("data_loader", _shared_loader())
    if profile is not None:
        session.set_config_variable("profile", profile)
    return session


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _md5(data: bytes) -> str:
    """The Content-MD5 header of a body (base64 of the digest, as HTTP wants it)."""
    digest = hashlib.md5(data, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def _check_lock(mode: str | None, days: int | None) -> LockPolicy | None:
    if mode is None and days is None:
        return None
    if mode is None or days is None:
        raise ConfigError(
            "object_lock_mode and object_lock_days go together",
            hint='e.g. object_lock_mode = "COMPLIANCE" and object_lock_days = 30',
        )
    return LockPolicy(mode, days)


def _is_object_name(name: str) -> bool:
    try:
        validate_name(name)
    except InvalidObjectName:
        return False
    return True


def _clean_prefix(prefix: str) -> str:
    cleaned = prefix.strip("/")
    if cleaned:
        try:
            validate_name(cleaned)
        except InvalidObjectName as exc:
            raise ConfigError(
                f"invalid S3 key prefix {prefix!r}",
                hint="prefixes are '/'-separated segments of letters, digits, '.', '_' and '-'",
            ) from exc
    return cleaned


def _check_sse(value: str | None, kms_key_id: str | None) -> ServerSideEncryptionType | None:
    if value is not None and value not in _SSE_VALUES:
        raise ConfigError(
            f"unknown server_side_encryption {value!r}",
            hint='use "AES256" (keys managed by S3) or "aws:kms" (with sse_kms_key_id)',
        )
    if kms_key_id is not None and value != "aws:kms":
        raise ConfigError(
            'sse_kms_key_id needs server_side_encryption = "aws:kms"',
            hint='set server_side_encryption = "aws:kms" or remove sse_kms_key_id',
        )
    return cast("ServerSideEncryptionType | None", value)


def _check_storage_class(value: str | None) -> StorageClassType | None:
    if value is None or value == "STANDARD":
        return None
    if value in _ARCHIVE_CLASSES:
        raise ConfigError(
            f"storage class {value} cannot hold a repository",
            hint="its objects cannot be read without a restore request, and restores read "
            "packs by range; use STANDARD_IA (a lifecycle rule moving the repository's "
            "objects to an archive class makes its backups unreadable in the same way)",
        )
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*", value):
        raise ConfigError(
            f"invalid storage class {value!r}", hint="e.g. STANDARD, STANDARD_IA, ONEZONE_IA"
        )
    return cast("StorageClassType", value)
