"""The API around a real respaldo installation (``tests/integration/logical``'s
``respaldo`` fixture: real PostgreSQL cluster, SQLite catalog, local repository).

``api`` is the application as ``respaldo serve`` builds it, its own context and job
workers started by the client's lifespan, called with an admin's API token; jobs run in
worker threads as in the service, and a test waits for one with :func:`finished` (on
the job's thread, not on time).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import Role
from respaldo.operations.api_tokens import create_token
from respaldo.operations.context import Context
from respaldo.operations.principal import local_principal
from tests.integration.logical.conftest import Respaldo, respaldo

__all__ = ["respaldo"]

CATALOG_PASSWORD = "Zq8-catalog-role-pw"
"""The password of :func:`catalog_role`'s role: tests look for it in what callers see."""


@dataclass(frozen=True)
class CatalogRole:
    """A role of its own owning a catalog database of the same name, on ``pg``."""

    pg: TempCluster
    name: str

    @property
    def url(self) -> str:
        pg = self.pg
        return f"postgresql://{self.name}:{CATALOG_PASSWORD}@{pg.host}:{pg.port}/{self.name}"

    def refuse(self) -> None:
        """The role's password changes under the service (rotated, say) and its sessions
        end: the service's next connection is refused by the server."""
        self.pg.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(self.name), sql.Literal("rotated-" + CATALOG_PASSWORD)
            )
        )
        self.pg.execute(
            sql.SQL(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {}"
            ).format(sql.Literal(self.name))
        )

    @contextmanager
    def context(self, tmp_path: Path, **settings: Any) -> Iterator[Context]:
        """A context on this catalog (created), with ``settings`` and a cache of its own
        under ``tmp_path``; closed after the ``with``."""
        full = Settings(catalog={"url": self.url}, cache_dir=tmp_path / "cache", **settings)
        with Context.open(full, create=True) as context:
            yield context

    def accept(self) -> None:
        """The role's password is the service's again: its next connection is taken."""
        self.pg.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(self.name), sql.Literal(CATALOG_PASSWORD)
            )
        )


@pytest.fixture
def catalog_role(pg: TempCluster) -> Iterator[CatalogRole]:
    """A :class:`CatalogRole`, dropped with its database after the test."""
    name = f"c_{uuid.uuid4().hex[:10]}"
    pg.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(CATALOG_PASSWORD)
        )
    )
    pg.execute(
        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name))
    )
    yield CatalogRole(pg, name)
    pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


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
