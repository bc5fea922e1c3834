"""``POST /auth/token``, ``/auth/refresh``, ``/auth/logout``; the login limits; the
JWT secret's checks at start-up; what the audit log records of logins."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.catalog.models import AuthSession
from respaldo.config import Settings
from respaldo.domain import AuditAction, AuditOutcome, Role
from respaldo.errors import ConfigError
from respaldo.operations import audit, users
from respaldo.operations.auth import RACE_WINDOW, Authenticator, load_secret
from respaldo.operations.context import Context

from .conftest import PASSWORD, SECRET, Clock, add_user, bearer, login, write_secret

pytestmark = pytest.mark.unit


def test_a_login_issues_a_short_lived_access_token_and_a_refresh_token(
    context: Context, client: TestClient
) -> None:
    add_user(context, "alice", Role.OPERATOR)
    body = login(client, "alice")
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"], issuer="respaldo")
    assert claims["sub"] == "alice" and claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert body["refresh_token"] and body["refresh_token"] != body["access_token"]
    (entry,) = audit.entries(context, action=AuditAction.LOGIN)
    assert (entry.actor, entry.outcome, entry.address, entry.method) == (
        "alice",
        AuditOutcome.SUCCESS,
        "192.0.2.10",
        "password",
    )


@pytest.mark.parametrize(
    ("name", "password"), [("alice", "not the password!"), ("nobody", PASSWORD)]
)
def test_a_wrong_password_or_unknown_user_is_401_and_audited(
    context: Context, client: TestClient, name: str, password: str
) -> None:
    add_user(context, "alice", Role.ADMIN)
    response = client.post("/auth/token", data={"username": name, "password": password})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    # One message for both: the answer does not tell which names exist.
    assert response.json()["detail"] == "wrong user name or password"
    (entry,) = audit.entries(context, action=AuditAction.LOGIN)
    assert (entry.actor, entry.outcome, entry.address) == (
        name,
        AuditOutcome.FAILURE,
        "192.0.2.10",
    )


def test_refresh_rotates_the_refresh_token(context: Context, client: TestClient) -> None:
    add_user(context, "alice", Role.VIEWER)
    first = login(client, "alice")
    response = client.post("/auth/refresh", data={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200, response.text
    second = response.json()
    assert client.get("/probe/read", headers=bearer(second["access_token"])).status_code == 200
    again = client.post("/auth/refresh", data={"refresh_token": first["refresh_token"]})
    assert again.status_code == 401
    assert again.headers["WWW-Authenticate"] == "Bearer"
    (failed,) = audit.entries(context, action=AuditAction.REFRESH)
    assert failed.outcome == AuditOutcome.FAILURE


def test_a_refresh_token_used_again_after_its_renewal_ends_the_session(
    context: Context, client: TestClient
) -> None:
    # A stolen refresh token renewed first by the thief: the owner's later use of the
    # same token (replaced by then) must cut the thief off too, not only fail.
    add_user(context, "alice", Role.VIEWER)
    stolen = login(client, "alice")["refresh_token"]
    thief = client.post("/auth/refresh", data={"refresh_token": stolen}).json()
    with context.catalog.begin() as db:
        (row,) = db.scalars(sa.select(AuthSession)).all()
        assert row.rotated_at is not None
        row.rotated_at -= RACE_WINDOW + timedelta(seconds=1)  # past a racing request's
    owner = client.post("/auth/refresh", data={"refresh_token": stolen})
    assert owner.status_code == 401
    assert "ended the session" in owner.json()["detail"]
    assert client.get("/probe/read", headers=bearer(thief["access_token"])).status_code == 401
    renewed = client.post("/auth/refresh", data={"refresh_token": thief["refresh_token"]})
    assert renewed.status_code == 401
    assert [(e.actor, e.outcome) for e in audit.entries(context, action=AuditAction.REFRESH)] == [
        ("alice", AuditOutcome.FAILURE),
        ("alice", AuditOutcome.FAILURE),
    ]


def test_logout_ends_the_access_and_the_refresh_token(context: Context, client: TestClient) -> None:
    add_user(context, "alice", Role.VIEWER)
    tokens = login(client, "alice")
    access = bearer(tokens["access_token"])
    assert client.get("/probe/read", headers=access).status_code == 200
    response = client.post("/auth/logout", headers=access)
    assert response.status_code == 204
    assert client.get("/probe/read", headers=access).status_code == 401
    refreshed = client.post("/auth/refresh", data={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    assert "logged out" in refreshed.json()["detail"]
    assert [e.outcome for e in audit.entries(context, action=AuditAction.LOGOUT)] == [
        AuditOutcome.SUCCESS
    ]
    # Another login of the same user is another session, untouched.
    other = login(client, "alice")
    assert client.get("/probe/read", headers=bearer(other["access_token"])).status_code == 200


def test_logout_needs_a_valid_token(client: TestClient) -> None:
    response = client.post("/auth/logout")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_password_change_ends_the_users_sessions(context: Context, client: TestClient) -> None:
    from respaldo.operations import users
    from respaldo.operations.principal import local_principal

    add_user(context, "alice", Role.VIEWER)
    access = bearer(login(client, "alice")["access_token"])
    users.set_password(context, "alice", "a new long passphrase", actor=local_principal())
    assert client.get("/probe/read", headers=access).status_code == 401
    login(client, "alice", "a new long passphrase")


def test_failed_logins_are_limited_per_user(
    context: Context, client: TestClient, clock: Clock
) -> None:
    add_user(context, "alice", Role.VIEWER)
    for _ in range(5):
        wrong = client.post("/auth/token", data={"username": "alice", "password": "guess-guess"})
        assert wrong.status_code == 401
        clock.now += 10
    # The sixth attempt is refused without looking at the password, even a right one.
    refused = client.post("/auth/token", data={"username": "alice", "password": PASSWORD})
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    # The first failure was 50 s ago; the window is 300 s.
    assert refused.headers["Retry-After"] == "250"
    assert "too many failed logins" in refused.json()["detail"]
    entries = audit.entries(context, action=AuditAction.LOGIN)
    assert entries[0].outcome == AuditOutcome.DENIED
    clock.now += 250
    login(client, "alice")


def test_failed_logins_are_limited_per_address(context: Context, app: object, clock: Clock) -> None:
    add_user(context, "alice", Role.VIEWER)
    with TestClient(app, client=("198.51.100.7", 1)) as attacker:  # type: ignore[arg-type]
        for n in range(5):
            data = {"username": f"name{n}", "password": "guess-guess"}
            assert attacker.post("/auth/token", data=data).status_code == 401
        data = {"username": "alice", "password": PASSWORD}
        assert attacker.post("/auth/token", data=data).status_code == 429
    # alice, from elsewhere, is not locked out by someone else's guesses.
    with TestClient(app, client=("192.0.2.10", 1)) as elsewhere:  # type: ignore[arg-type]
        login(elsewhere, "alice")


def test_an_ipv6_clients_addresses_count_as_one_per_64(
    context: Context, app: object, clock: Clock
) -> None:
    # One IPv6 host holds a whole /64 (2^64 addresses): counted per address, guesses
    # that each come from a new one would never be limited.
    add_user(context, "alice", Role.VIEWER)
    for n in range(5):
        with TestClient(app, client=(f"2001:db8:1:2::{n + 1:x}", 1)) as one:  # type: ignore[arg-type]
            data = {"username": f"name{n}", "password": "guess-guess"}
            assert one.post("/auth/token", data=data).status_code == 401
    with TestClient(app, client=("2001:db8:1:2:ffff::9", 1)) as same:  # type: ignore[arg-type]
        data = {"username": "alice", "password": PASSWORD}
        assert same.post("/auth/token", data=data).status_code == 429
    # Another /64 is another client.
    with TestClient(app, client=("2001:db8:1:3::1", 1)) as other:  # type: ignore[arg-type]
        login(other, "alice")


def test_passwords_and_tokens_appear_in_no_audit_entry_log_or_error(
    context: Context, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "Sup3r-Secret-Marker-Password"
    add_user(context, "alice", Role.ADMIN, marker)
    tokens = login(client, "alice", marker)
    wrong = client.post("/auth/token", data={"username": "alice", "password": marker + "x"})
    short = client.post("/auth/refresh", data={"refresh_token": tokens["refresh_token"] + "x"})
    client.post("/auth/logout", headers=bearer(tokens["access_token"]))
    after = client.get("/probe/read", headers=bearer(tokens["access_token"]))
    shown = [
        wrong.text,
        short.text,
        after.text,
        caplog.text,
        *(entry.model_dump_json() for entry in audit.entries(context, limit=1000)),
    ]
    for secret in (marker, tokens["access_token"], tokens["refresh_token"]):
        assert not any(secret in text for text in shown)


def test_the_audit_detail_never_keeps_anything_shaped_like_a_token() -> None:
    jwt_like = jwt.encode({"sub": "x"}, SECRET, algorithm="HS256")
    assert audit.scrub(f"bad token {jwt_like} and rsp_0123abcd_secret") == (
        "bad token [redacted] and [redacted]"
    )


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("short-secret-of-31-bytes-123456", "shorter than 32 bytes"),
        ("a-secret-of-exactly-32-bytes-987", None),
        ("your-256-bit-secret", "shorter than 32 bytes"),
        ("change-this-to-a-long-random-secret-of-32-bytes-or-more", "well-known default"),
        ("a" * 64, "too repetitive"),
    ],
)
def test_a_short_or_default_jwt_secret_is_refused_at_start_up(
    tmp_path: Path, secret: str, says: str | None
) -> None:
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        server={"jwt_secret_file": write_secret(tmp_path / "jwt.key", secret)},
    )
    if says is None:
        create_app(settings)  # long and varied enough: accepted
        return
    with pytest.raises(ConfigError) as raised:
        create_app(settings)
    assert "[server] jwt_secret_file" in str(raised.value) and says in str(raised.value)
    assert secret not in str(raised.value) and secret not in raised.value.hint
    assert "/dev/urandom" in raised.value.hint


def test_a_jwt_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        server={"jwt_secret_file": write_secret(tmp_path / "jwt.key", SECRET, mode=0o644)},
    )
    with pytest.raises(ConfigError, match="readable by group or others"):
        create_app(settings)


def test_without_a_secret_file_tokens_are_signed_with_a_random_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"})
    first, second = create_app(settings), create_app(settings)
    assert first.state.authenticator.secret != second.state.authenticator.secret
    assert len(first.state.authenticator.secret) >= 32
    assert "jwt_secret_file" in caplog.text


def test_the_access_token_lifetime_is_configurable(
    tmp_path: Path, settings: Settings, context: Context
) -> None:
    settings = settings.model_copy(
        update={"server": settings.server.model_copy(update={"access_token_minutes": 5})}
    )
    add_user(context, "alice", Role.VIEWER)
    with TestClient(create_app(settings, context)) as client:
        body = login(client, "alice")
    assert body["expires_in"] == 300


def test_respaldo_serve_refuses_a_short_secret_before_listening(
    tmp_path: Path, context: Context, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal

    from respaldo.cli.main import invoke

    key = write_secret(tmp_path / "short.key", "too-short")
    config = tmp_path / "respaldo.toml"
    config.write_text(
        f'[catalog]\nurl = "{settings.catalog.url}"\n'
        f'[server]\nlisten = "127.0.0.1:1"\njwt_secret_file = "{key}"\n'
    )
    handler = signal.getsignal(signal.SIGTERM)
    assert invoke(["--config", str(config), "serve"]) == 1
    err = capsys.readouterr().err
    assert "[server] jwt_secret_file" in err and "shorter than 32 bytes" in err
    assert "too-short" not in err
    assert signal.getsignal(signal.SIGTERM) is handler


def test_respaldo_serve_refuses_a_tls_key_others_can_read_before_listening(
    tmp_path: Path, context: Context, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # The private key of the HTTPS server is a secret like the JWT key: a key file group
    # or others can read is refused as that one is, before anything listens.
    import socket

    from respaldo.cli.main import invoke
    from tests.servers.tls import self_signed

    cert, key = self_signed(tmp_path)
    key.chmod(0o644)
    secret = write_secret(tmp_path / "jwt.key", SECRET)
    with socket.socket() as taken:  # were the key let through, listening fails at once
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "respaldo.toml"
        config.write_text(
            f'[catalog]\nurl = "{settings.catalog.url}"\n'
            f'[server]\nlisten = "127.0.0.1:{port}"\njwt_secret_file = "{secret}"\n'
            f'tls_certificate = "{cert}"\ntls_key = "{key}"\n'
        )
        assert invoke(["--config", str(config), "serve"]) == 1
    err = capsys.readouterr().err
    assert "[server] tls_key" in err and "readable by others" in err, err


# A server that cannot listen is an error serve reports, not a thread dying unhandled.
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.skipif(os.geteuid() != 0, reason="a root-owned key needs root")
def test_respaldo_serve_takes_a_root_owned_tls_key_its_group_can_read(
    tmp_path: Path, context: Context, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # Debian keeps server keys root:ssl-cert 0640 (PostgreSQL accepts them): serve gets
    # past the key and on to listening (which fails here: the port is taken).
    import socket

    from respaldo.cli.main import invoke
    from tests.servers.tls import self_signed

    cert, key = self_signed(tmp_path)
    os.chown(key, 0, -1)
    key.chmod(0o640)
    secret = write_secret(tmp_path / "jwt.key", SECRET)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "respaldo.toml"
        config.write_text(
            f'[catalog]\nurl = "{settings.catalog.url}"\n'
            f'[server]\nlisten = "127.0.0.1:{port}"\njwt_secret_file = "{secret}"\n'
            f'tls_certificate = "{cert}"\ntls_key = "{key}"\n'
        )
        assert invoke(["--config", str(config), "serve"]) == 1
    err = capsys.readouterr().err
    assert "tls_key" not in err, err
    assert str(port) in err, err


def test_a_disabled_user_cannot_log_in_and_their_tokens_stop(
    context: Context, client: TestClient
) -> None:
    from respaldo.operations import users
    from respaldo.operations.principal import local_principal

    add_user(context, "alice", Role.VIEWER)
    tokens = login(client, "alice")
    users.set_disabled(context, "alice", True, actor=local_principal())
    assert client.get("/probe/read", headers=bearer(tokens["access_token"])).status_code == 401
    refreshed = client.post("/auth/refresh", data={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    denied = client.post("/auth/token", data={"username": "alice", "password": PASSWORD})
    assert denied.status_code == 401
    assert denied.json()["detail"] == "wrong user name or password"
    users.set_disabled(context, "alice", False, actor=local_principal())
    login(client, "alice")
    actions = [e.action for e in audit.entries(context) if e.action.startswith("user.")]
    assert actions == ["user.enable", "user.disable", "user.add"]


def test_an_access_token_from_another_server_a_few_seconds_ahead_is_taken(
    context: Context, client: TestClient
) -> None:
    # Two servers on one catalog share the secret: the one that issued the token may
    # have a clock a few seconds ahead of the one the next request reaches.
    add_user(context, "alice", Role.VIEWER)
    claims = jwt.decode(login(client, "alice")["access_token"], SECRET, algorithms=["HS256"])
    ahead = datetime.now(UTC) + timedelta(seconds=10)
    claims.update(iat=ahead, exp=ahead + timedelta(minutes=15))
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    response = client.get("/probe/read", headers=bearer(token))
    assert response.status_code == 200, response.text


class CountingHasher(PasswordHasher):
    """The real argon2id, cheap, that notes each hash and verification it makes."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.calls: list[str] = []

    def hash(self, password: str | bytes, *args: Any, **kwargs: Any) -> str:
        self.calls.append("hash")
        return super().hash(password, *args, **kwargs)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.calls.append("verify")
        return super().verify(hash, password)


def test_the_first_login_of_an_unknown_name_costs_what_a_wrong_password_costs(
    settings: Settings, context: Context, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The answers are the same; the work must be too, or the time taken tells which
    # names exist. The first unknown name of a process must not pay for making the
    # stand-in hash that unknown names are checked against.
    add_user(context, "alice", Role.ADMIN)
    counting = CountingHasher()
    monkeypatch.setattr(users, "HASHER", counting)
    users._dummy_hash.cache_clear()  # a server just started
    authenticator = Authenticator(settings, load_secret(settings), clock=clock)
    work: list[list[str]] = []
    with TestClient(create_app(settings, context, authenticator=authenticator)) as client:
        for name, password in [("nobody", PASSWORD), ("alice", "not the password!")] * 2:
            counting.calls.clear()
            answer = client.post("/auth/token", data={"username": name, "password": password})
            assert (answer.status_code, answer.json()["detail"]) == (
                401,
                "wrong user name or password",
            )
            work.append(list(counting.calls))
    assert work == [["verify"]] * 4
