"""Fixtures for integration tests: a real PostgreSQL cluster, and sample ERP databases in it.

``pg`` is one throwaway cluster per test session, so one per pytest-xdist worker (each
worker is its own session, on its own free port and directory), and per PostgreSQL major
version: ``pg_major`` (the system's by default) is parametrized indirectly by the tests
that run on PostgreSQL 18 as well (tests/integration/majors.py). It is made with initdb,
run by the ``postgres`` OS user when we are root, reachable on 127.0.0.1 with
scram-sha-256 password authentication, and stopped and removed at the end. A cluster
that cannot be created or started is an error of the tests that need it, never a skip:
integration tests that silently skip prove nothing.

``erp_db`` is a fresh database per test holding the sample ERP schema, its roles and a
small amount of deterministic data (``ERP_SCALE``), copied from a template database
that is loaded once per session, so each test gets its own copy in well under a second.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sample
from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.majors import SYSTEM, server_bindir

ERP_SCALE = 0.001
"""About 3 MB of rows: enough for several pipe buffers of dump, small enough to be quick."""
ERP_SEED = 20250630
ERP_TEMPLATE = "erp_template"


@pytest.fixture(scope="session")
def pg_major(request: pytest.FixtureRequest) -> int | None:
    """The PostgreSQL major of the clusters of this test: None for the system's newest, or
    the ``param`` of an indirect parametrization (tests/integration/majors.py)."""
    major: int | None = getattr(request, "param", SYSTEM)
    return major


@pytest.fixture(scope="session")
def pg(pg_major: int | None) -> Iterator[TempCluster]:
    """A running PostgreSQL cluster for this session (worker); see the module docstring."""
    cluster = TempCluster.create(bindir=server_bindir(pg_major))
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def erp_template(pg: TempCluster) -> str:
    """A database with the sample ERP loaded, used only as a template for ``erp_db``."""
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(ERP_TEMPLATE)))
    sample.load(pg.conninfo_kwargs(ERP_TEMPLATE), ERP_SCALE, ERP_SEED)
    return ERP_TEMPLATE


@contextmanager
def erp_copy(pg: TempCluster, erp_template: str) -> Iterator[str]:
    """The name of a fresh copy of the sample ERP database, dropped after the ``with``."""
    name = f"erp_{uuid.uuid4().hex[:12]}"
    pg.execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(erp_template)
        )
    )
    try:
        yield name
    finally:
        pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def erp_db(pg: TempCluster, erp_template: str) -> Iterator[str]:
    """The name of a fresh sample ERP database, dropped after the test."""
    with erp_copy(pg, erp_template) as name:
        yield name


@pytest.fixture
def new_dbname(pg: TempCluster) -> Iterator[str]:
    """A database name not yet in use; whatever the test creates under it is dropped after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
