"""``respaldo serve``'s HTTP server logs through uvicorn's own loggers, which do not pass
records to the root logger where the service's scrubber is first installed: the text of
an unexpected exception in a request must reach the log without a loaded secret."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from respaldo.cli.serve_cmd import http_server
from respaldo.config import Settings

pytestmark = pytest.mark.unit

SECRET = "db p@ss read from its password_file"


@pytest.fixture
def uvicorn_loggers() -> Iterator[None]:
    """uvicorn's loggers as the test found them (its Config replaces their handlers)."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    before = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level) for n in names}
    yield
    for name, (handlers, level) in before.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("uvicorn_loggers")
def test_an_unexpected_exceptions_text_reaches_uvicorns_log_without_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    password = tmp_path / "db.password"
    password.write_text(SECRET + "\n")
    password.chmod(0o600)
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        cache_dir=tmp_path / "cache",
        databases=[{"name": "erp", "dsn": "postgresql://erp@db/erp", "password_file": password}],
    )

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("never called")

    http_server(settings, app)
    # What uvicorn logs when the application raises (its own words and logger).
    try:
        raise RuntimeError(f"connection refused: password {SECRET}")
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    written = capsys.readouterr().err
    assert "Exception in ASGI application" in written
    assert "RuntimeError: connection refused: password <secret>" in written
    assert SECRET not in written
