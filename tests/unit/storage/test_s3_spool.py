"""S3Storage's spool (``open_spool``, how a backup writes its packs): an unnamed file in a
private directory, uploaded by streaming when it is committed, with ``put``'s guarantees.

Runs against the session's SeaweedFS and moto servers (``tests/servers/s3.py``). What every
store's spool promises is in the contract suite (``tests/contract``); here what only S3's
does: where its bytes wait, that a pack is never whole in memory, the multipart path,
retries, Object Lock, and a process killed mid-upload.
"""

from __future__ import annotations

import errno
import gc
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ConnectionClosedError
from pydantic import SecretStr

from respaldo.errors import ObjectNotFound, PermanentStorageError, StorageError, WriteRefused
from respaldo.privatedir import sweep
from respaldo.storage import s3 as s3_module
from respaldo.storage.retry import RetryingStorage
from respaldo.storage.s3 import MIN_PART_SIZE, S3Storage
from tests.servers.faultproxy import FaultProxy, Rule
from tests.servers.s3 import S3Endpoint
from tests.unit.repository.helpers import (
    init_repo,
    open_repo,
    random_bytes,
    read_stream,
    write_backup,
)

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def _data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(params=["s3_server", "moto_server"], ids=["seaweedfs", "moto"])
def server(request: pytest.FixtureRequest) -> S3Endpoint:
    endpoint: S3Endpoint = request.getfixturevalue(request.param)
    return endpoint


def _files_open_in(directory: Path) -> list[str]:
    """This process's open files in ``directory`` (an unnamed one reads '#N (deleted)')."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith(f"{directory}/"):
            found.append(target)
    return found


def test_a_spool_waits_in_an_unnamed_file_of_a_private_directory(server: S3Endpoint) -> None:
    store = server.storage()
    spool = store.open_spool("packs/")
    spool.write([_data(MIB, seed=1), _data(1000, seed=2)])
    where = store.spool_dir
    assert where is not None
    assert where.stat().st_mode & 0o777 == 0o700
    assert list(where.iterdir()) == []  # nothing with a name, whatever ends the process
    assert len(_files_open_in(where)) == 1
    spool.commit("packs/ab/x")
    assert _files_open_in(where) == []
    assert store.get("packs/ab/x") == _data(MIB, seed=1) + _data(1000, seed=2)
    discarded = store.open_spool("packs/")
    discarded.write([b"never stored"])
    discarded.discard()
    assert _files_open_in(where) == []
    store.close()
    assert not where.exists()


def test_a_spooled_pack_is_never_whole_in_memory(s3_server: S3Endpoint) -> None:
    # The pieces come one at a time, as the pack spooler hands them on; what the upload
    # holds is a few blocks of the file, not the 12 MiB that put() would be given. (Not
    # on moto: it runs in this process, and holds what it receives.)
    store = s3_server.storage()
    spool = store.open_spool("packs/")
    tracemalloc.start()
    try:
        for i in range(12):
            spool.write([_data(MIB, seed=i)])
        spool.commit("packs/ab/pack")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB, f"{peak / MIB:.1f} MiB held"
    assert store.get("packs/ab/pack") == b"".join(_data(MIB, seed=i) for i in range(12))
    store.close()


def test_a_spooled_upload_reads_its_file_a_little_at_a_time(s3_server: S3Endpoint) -> None:
    # SeaweedFS over plain HTTP: botocore signs the payload, reading the body to hash it
    # before it sends it. It asked for 1 MiB a read and held two at a time: 2.0 MiB traced
    # for the upload of a pack, on each upload thread of a backup.
    store = s3_server.storage()
    spool = store.open_spool("packs/")
    for i in range(4):
        spool.write([_data(MIB, seed=i)])
    tracemalloc.start()
    try:
        spool.commit("packs/ab/small-reads")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MIB, f"{peak / MIB:.2f} MiB held"
    assert store.get("packs/ab/small-reads") == b"".join(_data(MIB, seed=i) for i in range(4))
    store.close()


def test_a_spool_over_the_threshold_goes_up_in_parts_read_from_its_file(
    server: S3Endpoint,
) -> None:
    store = server.storage(multipart_threshold=MIB, part_size=MIN_PART_SIZE)
    data = _data(2 * MIN_PART_SIZE + 123_457, seed=3)
    spool = store.open_spool("packs/")
    spool.write([data[i : i + MIB] for i in range(0, len(data), MIB)])
    spool.commit("packs/ab/big")
    assert store.get("packs/ab/big") == data
    head = server.client().head_object(Bucket=server.bucket, Key=store.key("packs/ab/big"))
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    uploads = server.client().list_multipart_uploads(Bucket=server.bucket, Prefix=store.key("p"))
    assert uploads.get("Uploads", []) == []
    store.close()


@pytest.mark.parametrize("size", [MIB, 2 * MIN_PART_SIZE + 1], ids=["one-request", "parts"])
def test_a_spooled_upload_that_failed_transiently_is_retried_from_its_file(
    server: S3Endpoint, size: int
) -> None:
    # botocore's own retries off: the retrying wrapper tries the commit again, and the
    # file (kept after a transient failure) is sent again from its start.
    inner = server.storage(max_attempts=1, multipart_threshold=MIB, part_size=MIN_PART_SIZE)
    attempts: list[str] = []

    def fail_first(request: AWSPreparedRequest, **kwargs: Any) -> None:
        if not attempts:
            attempts.append(request.url)
            raise ConnectionClosedError(endpoint_url=request.url)

    operation = "PutObject" if size <= MIB else "UploadPart"
    inner.client.meta.events.register(f"before-send.s3.{operation}", fail_first)
    store = RetryingStorage(inner, sleep=lambda _: None)
    data = _data(size, seed=4)
    spool = store.open_spool("packs/")
    spool.write([data])
    spool.commit("packs/ab/retried")
    assert len(attempts) == 1
    assert store.get("packs/ab/retried") == data
    assert inner.spool_dir is not None and _files_open_in(inner.spool_dir) == []
    store.close()


def test_a_refused_spooled_upload_stores_nothing_and_closes_its_file(
    s3_server: S3Endpoint,
) -> None:
    # SeaweedFS checks credentials: the reader may not write.
    store = s3_server.storage(
        access_key_id=s3_server.reader_key_id,
        secret_access_key=SecretStr(s3_server.reader_secret),
    )
    spool = store.open_spool("packs/")
    spool.write([b"refused"])
    with pytest.raises(WriteRefused, match="cannot write packs/ab/x"):
        spool.commit("packs/ab/x")
    assert store.spool_dir is not None and _files_open_in(store.spool_dir) == []
    with pytest.raises(ObjectNotFound):
        s3_server.storage(prefix=store.prefix).stat("packs/ab/x")
    store.close()


def test_a_spooled_object_is_locked_like_a_put_one(server: S3Endpoint) -> None:
    store = server.storage(
        bucket=server.locked_bucket, object_lock_mode="GOVERNANCE", object_lock_days=1
    )
    spool = store.open_spool("packs/")
    spool.write([b"locked pack"])
    spool.commit("packs/ab/locked")
    head = server.client().head_object(
        Bucket=server.locked_bucket, Key=store.key("packs/ab/locked")
    )
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert store.locked_until("packs/ab/locked") is not None
    store.close()


_KILLED_UPLOADER = """
import sys
from pydantic import SecretStr
from respaldo.storage.s3 import S3Storage
url, key, secret, bucket, prefix = sys.argv[1:]
store = S3Storage(bucket, prefix, endpoint_url=url, region="us-east-1", access_key_id=key,
                  secret_access_key=SecretStr(secret))
spool = store.open_spool("packs/")
spool.write([bytes(3 * 1024 * 1024)])
print(store.spool_dir, flush=True)
spool.commit("packs/ab/killed")
"""


def test_a_process_killed_mid_upload_leaves_no_object_and_no_file(
    s3_server: S3Endpoint, tmp_path: Path
) -> None:
    # The proxy holds the upload (it has its whole body): the kill strikes mid-upload
    # whatever the machine's speed.
    prefix = f"k{os.getpid()}"
    proxy = FaultProxy(s3_server.endpoint_url).start()
    held = proxy.add(Rule("stall", path="/packs/", method="PUT", times=None))
    try:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _KILLED_UPLOADER,
                proxy.url,
                s3_server.access_key_id,
                s3_server.secret_access_key,
                s3_server.bucket,
                prefix,
            ],
            stdout=subprocess.PIPE,
            # A temporary directory of this test's: no other process sweeps it.
            env={**os.environ, "TMPDIR": str(tmp_path)},
        )
        assert child.stdout is not None
        where = Path(child.stdout.readline().decode().strip())
        deadline = time.monotonic() + 120  # generous: only a hang waits this long
        while held.hits == 0 and child.poll() is None:
            assert time.monotonic() < deadline, "the upload never reached the server"
            time.sleep(0.02)
        assert child.poll() is None, f"the upload ended (status {child.returncode})"
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        proxy.clear()
        proxy.stop()
    with pytest.raises(ObjectNotFound):
        s3_server.storage(prefix=prefix).stat("packs/ab/killed")
    # The file had no name: only the empty directory is left, and the next process's
    # sweep of the temporary directory removes it.
    assert where.parent == tmp_path
    assert list(where.iterdir()) == []
    assert sweep(tmp_path) == [where]


class _PutRecorder(S3Storage):
    """An S3 store that records the names given to ``put`` (the objects sent whole)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.whole: list[str] = []

    def put(self, name: str, data: bytes) -> None:
        self.whole.append(name)
        super().put(name, data)


def test_a_backup_into_s3_sends_its_packs_through_spools(s3_server: S3Endpoint) -> None:
    # Before, every pack was built whole in memory and put: 12 MiB each, three at once.
    plain = s3_server.storage()
    store = _PutRecorder(
        plain.bucket,
        plain.prefix,
        endpoint_url=s3_server.endpoint_url,
        region="us-east-1",
        access_key_id=s3_server.access_key_id,
        secret_access_key=SecretStr(s3_server.secret_access_key),
    )
    repo = init_repo(RetryingStorage(store))
    data = random_bytes(600_000, seed=5)
    manifest, stats = write_backup(repo, "b1", {"dump": data})
    assert stats.packs >= 2
    assert [n for n in store.whole if n.startswith("packs/")] == []
    packs = [info.name for info in store.list("packs/")]
    assert len(packs) == stats.packs
    assert read_stream(open_repo(s3_server.storage(plain.prefix)), manifest) == data
    assert store.spool_dir is not None and _files_open_in(store.spool_dir) == []
    store.close()


def test_a_full_temporary_directory_fails_the_spool_with_a_hint_and_stores_nothing(
    moto_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, pieces: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    store = moto_server.storage()
    spool = store.open_spool("packs/")
    spool.write([b"first piece"])
    monkeypatch.setattr(s3_module, "write_all", full)
    with pytest.raises(PermanentStorageError, match="No space left on device") as caught:
        spool.write([b"second piece"])
    assert caught.value.hint is not None and "TMPDIR" in caught.value.hint
    assert store.spool_dir is not None and _files_open_in(store.spool_dir) == []
    with pytest.raises(StorageError):
        spool.commit("packs/ab/x")
    assert list(store.list("")) == []
    store.close()


_UNCLOSED_UPLOADER = """
import sys
from pydantic import SecretStr
from respaldo.storage.s3 import S3Storage
url, key, secret, bucket, prefix = sys.argv[1:]
store = S3Storage(bucket, prefix, endpoint_url=url, region="us-east-1", access_key_id=key,
                  secret_access_key=SecretStr(secret))
spool = store.open_spool("packs/")
spool.write([b"a pack"])
spool.commit("packs/ab/unclosed")
print(store.spool_dir, flush=True)
"""


def test_stores_nobody_closed_leave_no_upload_directory(
    moto_server: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CI run left a dozen empty respaldo-upload-* directories in /tmp, of stores its
    # test process never closed: each stayed until another process happened to sweep.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for n in range(50):
        store = moto_server.storage()
        spool = store.open_spool("packs/")
        spool.write([b"a pack"])
        spool.commit(f"packs/ab/p{n}")
        del spool, store
    gc.collect()
    assert list(tmp_path.iterdir()) == []
    # A process that exits without closing its store takes the directory with it.
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            _UNCLOSED_UPLOADER,
            moto_server.endpoint_url,
            moto_server.access_key_id,
            moto_server.secret_access_key,
            moto_server.bucket,
            f"u{os.getpid()}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        check=True,
    )
    assert Path(child.stdout.strip()).parent == tmp_path
    assert list(tmp_path.iterdir()) == []
