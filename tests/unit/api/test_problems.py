"""Every failure is ``application/problem+json`` with its status, message and hint, and
none shows a stack trace, a password or the path of a file holding a secret."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.api.app import MAX_BODY_BYTES
from respaldo.api.problems import Scrubber
from respaldo.config import Settings
from respaldo.domain import BackupKind
from respaldo.errors import ConnectionFailed
from respaldo.operations.context import Context
from tests.unit.api.conftest import completed_backup

PASSWORD = "Tr0ub4dor&3-of-the-erp"


def test_unknown_records_are_404_problems(
    settings: Settings, context: Context, admin: dict[str, str]
) -> None:
    with TestClient(create_app(settings, context), headers=admin) as client:
        for path in ("/admin/backups/20261128T083000Z-1a2b3c4d", "/admin/jobs/99"):
            answer = client.get(path)
            assert answer.status_code == 404, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            problem = answer.json()
            assert (problem["status"], problem["title"]) == (404, "Not Found")
            assert problem["error"] == "RecordNotFound"
        malformed = client.get("/admin/backups/not-an-id")
    assert malformed.status_code == 404
    assert malformed.json()["error"] == "InvalidBackupId"


def test_a_body_that_is_not_json_is_400_and_one_that_does_not_fit_is_422(
    settings: Settings, context: Context, admin: dict[str, str]
) -> None:
    with TestClient(create_app(settings, context), headers=admin) as client:
        garbled = client.post(
            "/admin/backups", content=b"{type: full", headers={"content-type": "application/json"}
        )
        unfit = client.post("/admin/backups", json={"type": "full", "password": PASSWORD})
    assert garbled.status_code == 400, garbled.text
    assert unfit.status_code == 422, unfit.text
    assert unfit.json()["errors"] == [
        {
            "loc": ["body", "password"],
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
    ]
    assert PASSWORD not in unfit.text  # the input is not echoed


def test_a_json_body_sent_without_its_content_type_says_so(
    settings: Settings, context: Context, admin: dict[str, str]
) -> None:
    # curl -d '{"type": "full"}' sends it as a form; the answer said the body "should be a
    # valid dictionary", which it looked like.
    body = b'{"type": "full"}'
    kinds = ("application/x-www-form-urlencoded", "text/plain; charset=utf-8")
    with TestClient(create_app(settings, context), headers=admin) as client:
        answers = [
            client.post("/admin/backups", content=body, headers={"content-type": kind})
            for kind in kinds
        ]
        # The same body as JSON (with or without its header) is taken.
        taken = client.post(
            "/admin/backups", content=body, headers={"content-type": "application/json"}
        )
        # A form route's missing field is no JSON matter.
        form = client.post("/auth/token", data={"username": "ana"})
    for answer, kind in zip(
        answers, ("application/x-www-form-urlencoded", "text/plain"), strict=True
    ):
        assert answer.status_code == 400, answer.text
        problem = answer.json()
        assert problem["detail"].startswith("the body must be JSON, sent as application/json")
        assert kind in problem["detail"]
        assert "Content-Type: application/json" in problem["hint"]
    assert "must be JSON" not in taken.text  # refused for what it asks, not its form
    assert form.status_code == 422, form.text
    assert form.json()["detail"] == "the request is malformed: body.password"


def test_a_body_over_the_limit_is_refused_before_it_is_held(
    settings: Settings, context: Context, admin: dict[str, str]
) -> None:
    # The body is read before the login is checked: unbounded, one anonymous 300 MB post
    # made the service hold 1 GB before its 401.
    big = b'{"type": "full", "database": "' + b"A" * MAX_BODY_BYTES + b'"}'

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    json_type = {"content-type": "application/json"}
    with TestClient(create_app(settings, context)) as client:
        answers = [
            client.post("/admin/backups", content=big, headers=json_type),
            client.post("/admin/backups", content=chunked(), headers={**json_type, **admin}),
            client.post("/login", content=big, headers={"content-type": "text/plain"}),
        ]
        # Under the limit, a body is read and judged as before.
        small = client.post("/admin/backups", content=b'{"type": "no"}', headers=json_type)
    for answer in answers:
        assert answer.status_code == 413, answer.text[:300]
    assert answers[1].headers["content-type"] == "application/problem+json"
    assert answers[1].json()["status"] == 413
    assert small.status_code == 401, small.text


def test_a_secret_files_path_is_not_shown(
    settings: Settings,
    context: Context,
    admin: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backup_id = completed_backup(context, "erp", BackupKind.FULL, datetime.now(UTC))
    secret = tmp_path / "secrets" / "passphrase"
    secret.parent.mkdir()
    secret.write_text("correct horse (test)\n")
    secret.chmod(0o644)  # readable by others: refused
    monkeypatch.delenv("RESPALDO_PASSPHRASE")
    served = settings.model_copy(update={"passphrase": None, "passphrase_file": secret})
    with TestClient(create_app(served), headers=admin) as client:
        answer = client.get(f"/admin/backups/{backup_id}")
    assert answer.status_code == 503, answer.text
    problem = answer.json()
    assert problem["detail"] == "passphrase_file <secret file> is readable by group or others"
    assert problem["hint"] == "chmod 600 <secret file>"
    assert str(secret) not in answer.text and "secrets" not in answer.text


def test_passwords_and_tracebacks_never_reach_the_client(
    settings: Settings, context: Context, admin: dict[str, str]
) -> None:
    served = settings.model_copy(
        update={
            "databases": Settings(
                databases=[{"name": "erp", "dsn": "postgresql://erp@db/erp", "password": PASSWORD}]
            ).databases
        }
    )
    app = create_app(served, context)

    @app.get("/test/unexpected")
    def unexpected() -> None:
        raise RuntimeError(f"connection to db failed: password={PASSWORD} at {__file__}")

    @app.get("/test/respaldo")
    def respaldo_error() -> None:
        raise ConnectionFailed(f"cannot connect with {PASSWORD}", hint=f"try {PASSWORD}")

    with TestClient(app, raise_server_exceptions=False) as client:
        crash = client.get("/test/unexpected")
        known = client.get("/test/respaldo")
    assert crash.status_code == 500
    assert crash.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "an unexpected error stopped the request",
        "hint": "the server's log has the details",
    }
    assert known.status_code == 503
    assert known.json()["detail"] == "cannot connect with <secret>"
    assert known.json()["hint"] == "try <secret>"
    for answer in (crash, known):
        assert PASSWORD not in answer.text
        assert "Traceback" not in answer.text and __file__ not in answer.text


def test_the_catalogs_password_is_scrubbed_as_written_and_decoded(tmp_path: Path) -> None:
    # The catalog's URL can carry its password (RESPALDO_CATALOG__URL): a driver's error
    # echoing either form must not reach a client or the log.
    settings = Settings(
        catalog={"url": "postgresql://respaldo:p%40ss-w0rd@catalog.internal/respaldo"},
        cache_dir=tmp_path / "cache",
    )
    scrub = Scrubber(settings)
    text = scrub("refused p@ss-w0rd and p%40ss-w0rd for respaldo")
    assert text == "refused <secret> and <secret> for respaldo"


def _with_password_file(settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    """``settings`` whose database takes its password from a 0600 file (returned)."""
    password_file = tmp_path / "erp.password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    database = {"name": "erp", "dsn": "postgresql://erp@db/erp", "password_file": password_file}
    databases = Settings(databases=[database]).databases
    return settings.model_copy(update={"databases": databases}), password_file


def test_a_password_loaded_from_its_file_is_scrubbed_from_answers_and_the_log(
    settings: Settings,
    context: Context,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The file's contents, not only its path: a driver's error may echo the password.
    served, _ = _with_password_file(settings, tmp_path)
    app = create_app(served, context)

    @app.get("/test/respaldo")
    def respaldo_error() -> None:
        raise ConnectionFailed(f'invalid input syntax for type integer: "{PASSWORD}"')

    @app.get("/test/unexpected")
    def unexpected() -> None:
        raise RuntimeError(f"S3 echoed {PASSWORD}")

    with TestClient(app, raise_server_exceptions=False) as client:
        known = client.get("/test/respaldo")
        with caplog.at_level(logging.ERROR, logger="respaldo.api.problems"):
            crash = client.get("/test/unexpected")
    assert known.json()["detail"] == 'invalid input syntax for type integer: "<secret>"'
    assert crash.status_code == 500
    logged = caplog.text
    assert "RuntimeError: S3 echoed <secret>" in logged
    assert PASSWORD not in known.text and PASSWORD not in logged


def test_a_password_file_rotated_while_the_api_runs_is_scrubbed(
    settings: Settings, context: Context, tmp_path: Path
) -> None:
    served, password_file = _with_password_file(settings, tmp_path)
    app = create_app(served, context)
    echoed = [PASSWORD]

    @app.get("/test/respaldo")
    def respaldo_error() -> None:
        raise ConnectionFailed(f'password authentication failed: "{echoed[0]}"')

    with TestClient(app, raise_server_exceptions=False) as client:
        assert PASSWORD not in client.get("/test/respaldo").text
        rotated = tmp_path / "erp.password.new"
        rotated.write_text("the rotated erp password\n")
        rotated.chmod(0o600)
        rotated.replace(password_file)  # rotated while the service runs
        echoed[0] = "the rotated erp password"
        answer = client.get("/test/respaldo")
        echoed[0] = PASSWORD  # the old one is still scrubbed (a process may still use it)
        again = client.get("/test/respaldo")
    assert answer.json()["detail"] == 'password authentication failed: "<secret>"'
    assert again.json()["detail"] == 'password authentication failed: "<secret>"'
