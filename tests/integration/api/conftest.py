"""The API around a real respaldo installation (``tests/integration/logical``'s
``respaldo`` fixture: real PostgreSQL cluster, SQLite catalog, local repository).

``api`` is the application as ``respaldo serve`` builds it, its own context and job
workers started by the client's lifespan, called with an admin's API token; jobs run in
worker threads as in the service, and a test waits for one with :func:`finished` (on
the job's thread, not on time).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import Role
from respaldo.operations.api_tokens import create_token
from respaldo.operations.context import Context
from respaldo.operations.principal import local_principal
from tests.integration.logical.conftest import Respaldo, respaldo

__all__ = ["respaldo"]


def token(settings: Settings, name: str, role: Role) -> dict[str, str]:
    """The Authorization header of a new API token (its principal is ``token:NAME``)."""
    with Context.open(settings) as context:
        secret = create_token(context, name, role, actor=local_principal()).token
    return {"Authorization": f"Bearer {secret}"}


@contextmanager
def client(
    settings: Settings, role: Role = Role.ADMIN, name: str = "admin"
) -> Iterator[TestClient]:
    """A client of the app for ``settings``, with a token of ``role``."""
    headers = token(settings, name, role)
    app = create_app(settings)
    with TestClient(app, headers=headers, raise_server_exceptions=False) as opened:
        yield opened


@pytest.fixture
def api(respaldo: Respaldo) -> Iterator[TestClient]:
    with client(respaldo.settings()) as opened:
        yield opened


def finished(client: TestClient, job_id: int) -> dict[str, Any]:
    """Wait until job ``job_id`` ended in the app's workers; return the job."""
    client.app.state.workers.wait(job_id)  # type: ignore[attr-defined]
    answer = client.get(f"/admin/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job
