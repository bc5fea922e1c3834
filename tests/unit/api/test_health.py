"""``GET /health``: 200 with the newest backups when the service works (a mirror down:
``degraded``), 503 when it cannot do its job."""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import BackupKind
from respaldo.operations import health
from respaldo.operations.context import Context
from respaldo.operations.health import CATALOG_FAILS, REPOSITORY_FAILS, REPOSITORY_HANGS
from tests.unit.api.conftest import completed_backup


def test_health_is_200_with_the_age_of_the_newest_backup_per_database_and_kind(
    settings: Settings, context: Context
) -> None:
    now = datetime.now(UTC)
    completed_backup(context, "erp", BackupKind.FULL, now - timedelta(days=2))
    newest = completed_backup(context, "erp", BackupKind.FULL, now - timedelta(hours=3))
    physical = completed_backup(context, "erp", BackupKind.INCREMENTAL, now - timedelta(hours=1))
    with TestClient(create_app(settings, context)) as client:
        response = client.get("/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["ok"], body["status"]) == (True, "ok")
    assert body["catalog"] == {"name": "catalog", "ok": True, "error": None}
    assert [r["name"] for r in body["repositories"]] == ["local", "offsite"]
    assert [(b["database"], b["kind"], b["backupId"]) for b in body["newestBackups"]] == [
        ("erp", "full", newest),
        ("erp", "incremental", physical),
    ]
    age = body["newestBackups"][0]["ageSeconds"]
    assert 3 * 3600 - 60 - 600 < age < 3 * 3600 + 600


def test_a_backup_dated_in_the_future_is_not_the_newest_one_health_reports(
    settings: Settings, context: Context
) -> None:
    # Taken while the clock was a month ahead: its age read -30 d, a fresh backup to a
    # monitor reading /health (or GET /admin/databases), whatever happened since.
    now = datetime.now(UTC)
    believable = completed_backup(context, "erp", BackupKind.FULL, now - timedelta(hours=30))
    completed_backup(context, "erp", BackupKind.FULL, now + timedelta(days=30))
    with TestClient(create_app(settings, context)) as client:
        body = client.get("/health").json()
    (newest,) = body["newestBackups"]
    assert newest["backupId"] == believable
    assert newest["ageSeconds"] > 30 * 3600 - 600


def test_health_is_200_degraded_with_a_mirror_gone_and_503_with_the_primary_gone(
    settings: Settings, context: Context, tmp_path: Path
) -> None:
    # A mirror down answered 503: a load balancer took the API out of rotation (an
    # orchestrator restarted it) while backups and restores worked. It is named in the
    # body; only what stops the service's job (catalog, primary) answers 503.
    (tmp_path / "offsite" / "config").unlink()
    with TestClient(create_app(settings, context)) as client:
        response = client.get("/health")
        assert response.status_code == 200
        body = response.json()
        assert (body["ok"], body["status"]) == (False, "degraded")
        assert body["repositories"] == [
            {"name": "local", "ok": True, "error": None},
            {"name": "offsite", "ok": False, "error": REPOSITORY_FAILS},
        ]
        assert body["catalog"]["ok"] is True
        (tmp_path / "repo" / "config").unlink()
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "failing"
    assert response.json()["repositories"][0] == {
        "name": "local",
        "ok": False,
        "error": REPOSITORY_FAILS,
    }


def test_health_opens_its_own_context_without_one(settings: Settings, context: Context) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200


def test_health_tells_an_unauthenticated_caller_no_secret_file_path_nor_store_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A repository fails before anything answers when the file holding its S3 key cannot
    # be read, and that error names the file; /health needs no login: the path must not
    # reach it, nor any store's own error text.
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "correct horse (test)")
    key_file = tmp_path / "secrets" / "s3-secret-key"
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        repositories=[
            {"name": "vault", "url": f"file://{tmp_path / 'hidden-store'}"},
            {
                "name": "offsite",
                "url": "s3://backups-bucket/respaldo",
                "endpoint_url": "http://127.0.0.1:9",
                "access_key_id": "AKIAEXAMPLE",
                "secret_access_key_file": str(key_file),
            },
        ],
        cache_dir=tmp_path / "cache",
    )
    with (
        Context.open(settings, create=True) as context,
        caplog.at_level(logging.WARNING),
        TestClient(create_app(settings, context)) as client,
    ):
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["catalog"]["ok"] is True
    assert body["repositories"] == [
        {"name": "vault", "ok": False, "error": REPOSITORY_FAILS},
        {"name": "offsite", "ok": False, "error": REPOSITORY_FAILS},
    ]
    assert str(tmp_path) not in response.text
    # The details go to the server's log, with the secret file's path replaced.
    logged = "\n".join(
        r.getMessage() for r in caplog.records if r.name == "respaldo.operations.health"
    )
    assert "repository vault cannot be read: no object config" in logged
    assert "repository offsite" in logged and "<secret file>" in logged
    assert str(key_file) not in logged


def test_health_tells_an_unauthenticated_caller_nothing_of_a_catalog_error(
    settings: Settings, context: Context, caplog: pytest.LogCaptureFixture
) -> None:
    # A catalog error's text is the database's own (table names, statement, a server's
    # host and user): a fixed sentence is answered, the text goes to the log.
    with context.catalog.begin() as session:
        session.execute(sa.text("DROP TABLE backup_records"))
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings, context)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["catalog"] == {"name": "catalog", "ok": False, "error": CATALOG_FAILS}
    assert "backup_records" not in response.text
    logged = [r.getMessage() for r in caplog.records if r.name == "respaldo.operations.health"]
    assert any("backup_records" in line for line in logged)


class _Dropping:
    """An S3 endpoint that is down: it takes each connection and closes it unanswered
    (as a stopped gateway's port behind a proxy does), counting them."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:  # closed: the test is over
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        # A close alone does not wake the accept (Linux): the shutdown does.
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self._thread.join()


@pytest.fixture
def dropping() -> Iterator[_Dropping]:
    server = _Dropping()
    try:
        yield server
    finally:
        server.close()


def test_health_looks_once_at_a_mirror_that_is_down_and_says_it_is_down(
    tmp_path: Path, dropping: _Dropping
) -> None:
    # Each probe retried the mirror 4 x 3 times with backoff (respaldo's retries around
    # botocore's): seconds per probe while it was down, minutes if it took connections
    # and never answered, and the prober timed out and took the whole service for dead.
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        repositories=[
            {
                "name": "mirror",
                "url": "s3://backups-bucket/respaldo",
                "endpoint_url": dropping.url,
                "access_key_id": "AKIAEXAMPLE",
                "secret_access_key": "not-a-secret",
            },
        ],
        cache_dir=tmp_path / "cache",
    )
    with (
        Context.open(settings, create=True) as context,
        TestClient(create_app(settings, context)) as client,
    ):
        response = client.get("/health")
    assert response.status_code == 503  # the only repository: the primary
    assert response.json()["repositories"] == [
        {"name": "mirror", "ok": False, "error": REPOSITORY_FAILS}
    ]
    assert dropping.connections == 1


def _release(fifo: Path, data: bytes) -> None:
    """Give ``data`` to whatever waits to read ``fifo``, if anything does (a writer's open
    without a reader fails at once: ENXIO)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        assert exc.errno == errno.ENXIO, exc
        return
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _replace(fifo: Path, data: bytes) -> None:
    """Give ``data`` to whatever waits to read ``fifo``, and put a regular file holding it
    in its place: a reader that looks again (the scrubber, seeing it changed) waits no
    more."""
    try:
        fd: int | None = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        fd = None  # nobody reads it (ENXIO)
    plain = fifo.with_name(fifo.name + ".plain")
    plain.write_bytes(data)
    plain.chmod(0o600)
    plain.replace(fifo)
    if fd is not None:
        os.write(fd, data)
        os.close(fd)


def test_health_answers_a_mirror_on_a_hung_mount_within_the_bound_with_one_look_in_flight(
    settings: Settings, context: Context, tmp_path: Path
) -> None:
    # A file repository on a hung mount (an NFS hard mount that never answers) held
    # /health for ever: only S3 had a bound. Here a read of the mirror's config really
    # blocks: it is a FIFO that no one writes to.
    config = tmp_path / "offsite" / "config"
    saved = config.read_bytes()
    config.unlink()
    os.mkfifo(config)
    # Only if the bound fails: the read is let through, so that the test ends (and fails)
    # instead of hanging.
    backstop = threading.Timer(60, _release, (config, saved))
    with TestClient(create_app(settings, context)) as client:
        try:
            backstop.start()
            try:
                response = client.get("/health")
            finally:
                backstop.cancel()
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["status"] == "degraded"
            assert body["repositories"] == [
                {"name": "local", "ok": True, "error": None},
                {"name": "offsite", "ok": False, "error": REPOSITORY_HANGS},
            ]
            # The next probe does not start a second look (one more thread stuck for
            # good at each probe): the one in flight, past its bound, is answered at once.
            again = client.get("/health").json()
            assert again["repositories"][1]["error"] == REPOSITORY_HANGS
            (looking,) = [t for t in threading.enumerate() if t.name == "health-offsite"]
            # The mount answers again: the look ends, and the next probe looks afresh.
            _release(config, saved)
            looking.join()
            config.unlink()
            config.write_bytes(saved)
            assert client.get("/health").json()["status"] == "ok"
        finally:
            if config.is_fifo():
                _release(config, saved)


@pytest.mark.usefixtures("context")
def test_health_answers_a_mirror_whose_store_does_not_open_within_the_bound(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only a repository's read was bounded: opening its store before it (its secret
    # file read, boto3's client and credential chain made) was waited for without
    # bound, and a secret_access_key_file that is a named pipe nobody writes (as a
    # credential_process or a hung mount) held /health for ever. So did the scrubber,
    # reading a notification target's url_file that is one. Both really block here.
    monkeypatch.setattr(health, "OPEN_SECONDS", 2.0)  # 10 s: a test waits less
    key = tmp_path / "s3-secret-key"
    url = tmp_path / "hook-url"
    os.mkfifo(key, 0o600)
    os.mkfifo(url, 0o600)
    piped = Settings(
        catalog=settings.catalog,
        cache_dir=settings.cache_dir,
        repositories=[
            settings.repositories[0],
            {
                "name": "offsite",
                "url": "s3://piped-bucket/respaldo",
                "endpoint_url": "http://127.0.0.1:9",
                "access_key_id": "AKIAEXAMPLE",
                "secret_access_key_file": str(key),
            },
        ],
        notifications={"targets": [{"name": "hook", "url_file": str(url)}]},
    )
    # Only if the bound fails: the reads are let through, so that the test ends (and
    # fails) instead of hanging.
    backstops = [threading.Timer(60, _replace, (fifo, b"x\n")) for fifo in (key, url)]
    for backstop in backstops:
        backstop.start()
    with Context.open(piped) as opened, TestClient(create_app(piped, opened)) as client:
        try:
            try:
                response = client.get("/health")
            finally:
                for backstop in backstops:
                    backstop.cancel()
            assert response.status_code == 200, response.text
            assert response.json()["repositories"] == [
                {"name": "local", "ok": True, "error": None},
                {"name": "offsite", "ok": False, "error": health.REPOSITORY_OPEN_HANGS},
            ]
        finally:
            # The look ends (its store then refuses the connection): given the key
            # until it has read it, whenever its read of the pipe starts.
            for thread in [t for t in threading.enumerate() if t.name == "health-offsite"]:
                while thread.is_alive():
                    _release(key, b"not-a-secret\n")
                    thread.join(0.1)
