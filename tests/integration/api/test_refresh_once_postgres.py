"""A refresh token is used once, even by two requests at the same moment on a
PostgreSQL catalog (two servers, or two threads of one): the session's row is taken by
one of them; the other is refused, as a token already used is."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.config import Settings
from respaldo.domain import Role
from respaldo.errors import AuthenticationFailed
from respaldo.operations import users
from respaldo.operations.auth import Authenticator, TokenPair, load_secret
from respaldo.operations.context import Context
from respaldo.operations.principal import local_principal
from tests.unit.access.conftest import CHEAP_HASHER, PASSWORD, SECRET, write_secret
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def catalog(pg: TempCluster) -> Iterator[str]:
    """A catalog database of its own on ``pg``."""
    name = f"cat_{uuid.uuid4().hex[:10]}"
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_two_refreshes_with_one_token_at_once_give_one_session(
    pg: TempCluster, catalog: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(users, "HASHER", CHEAP_HASHER)
    users._dummy_hash.cache_clear()
    secret = pg.password.get_secret_value()
    settings = Settings(
        catalog={"url": f"postgresql://{pg.superuser}:{secret}@{pg.host}:{pg.port}/{catalog}"},
        cache_dir=tmp_path / "cache",
        server={"jwt_secret_file": write_secret(tmp_path / "jwt.key", SECRET)},
    )
    with Context.open(settings, create=True) as ctx:
        users.add_user(ctx, "alice", Role.VIEWER, PASSWORD, actor=local_principal())
        authenticator = Authenticator(settings, load_secret(settings))
        pair = authenticator.login(ctx, "alice", PASSWORD, "192.0.2.10")
        answers: list[TokenPair | AuthenticationFailed] = []

        def refresh() -> None:
            try:
                answers.append(authenticator.refresh(ctx, pair.refresh_token, "192.0.2.10"))
            except AuthenticationFailed as exc:
                answers.append(exc)

        # Both requests read the session before either writes it: the session's row is
        # held until both wait for it (what two requests racing do, made certain).
        with pg.connect(catalog, autocommit=False) as holder:
            holder.execute("SELECT 1 FROM auth_sessions WHERE user_name = 'alice' FOR UPDATE")
            threads = [threading.Thread(target=refresh) for _ in range(2)]
            for thread in threads:
                thread.start()
            wait_for("both refreshes to wait for the session", lambda: _waiting(pg, catalog) == 2)
            holder.rollback()
        for thread in threads:
            thread.join()
    refused = [a for a in answers if isinstance(a, AuthenticationFailed)]
    renewed = [a for a in answers if isinstance(a, TokenPair)]
    assert (len(renewed), len(refused)) == (1, 1), answers


def _waiting(pg: TempCluster, catalog: str) -> int:
    with pg.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            (catalog,),
        ).fetchone()
    return int(row[0]) if row else 0
