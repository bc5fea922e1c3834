"""JWTs issued by the ERP ([server.erp_jwt]): verified with its public key (a PEM file,
or a JWKS served here on loopback), issuer, audience, expiry and the permissions claim.
The key pairs are made by the tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm

from respaldo.api import create_app
from respaldo.config import Settings, load_settings
from respaldo.domain import AuditOutcome
from respaldo.errors import ConfigError
from respaldo.operations import audit
from respaldo.operations.context import Context

from .conftest import bearer, probe

pytestmark = pytest.mark.unit

ISSUER = "https://erp.example/auth"
AUDIENCE = "respaldo"


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def erp_key() -> rsa.RSAPrivateKey:
    return _rsa()


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def erp_token(key: Any, algorithm: str = "RS256", kid: str | None = None, **changes: Any) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "maria@erp",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "permissions": ["admin:read"],
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def _client(settings: Settings, context: Context, erp: dict[str, Any]) -> TestClient:
    settings = Settings.model_validate(
        {**settings.model_dump(), "server": {**settings.server.model_dump(), "erp_jwt": erp}}
    )
    app = create_app(settings, context)
    app.include_router(probe)
    return TestClient(app)


@pytest.fixture
def with_key_file(
    tmp_path: Path, settings: Settings, context: Context, erp_key: rsa.RSAPrivateKey
) -> Iterator[TestClient]:
    path = tmp_path / "erp.pub"
    path.write_bytes(_pem(erp_key))
    erp = {"issuer": ISSUER, "audience": AUDIENCE, "public_key_file": str(path)}
    with _client(settings, context, erp) as client:
        yield client


def test_an_erp_token_gets_the_permissions_of_its_claim(
    with_key_file: TestClient, erp_key: rsa.RSAPrivateKey
) -> None:
    token = erp_token(erp_key)
    response = with_key_file.get("/probe/read", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json() == {"name": "maria@erp", "method": "erp_jwt"}
    assert with_key_file.get("/probe/create", headers=bearer(token)).status_code == 403
    # OAuth2's scope form: one string, separated by spaces; unknown ones are ignored.
    scoped = erp_token(erp_key, permissions="admin:read admin:create erp:sales")
    assert with_key_file.get("/probe/create", headers=bearer(scoped)).status_code == 200
    assert with_key_file.get("/probe/approve", headers=bearer(scoped)).status_code == 403


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"aud": "another-app"}, "Audience"),
        ({"iss": "https://evil.example"}, ""),  # not the ERP's: checked as ours, fails
        ({"permissions": None}, "no 'permissions' claim"),
        ({"sub": None}, "no 'sub' claim"),
        (
            {
                "iat": datetime.now(UTC) - timedelta(hours=1),
                "exp": datetime.now(UTC) - timedelta(minutes=1),
            },
            "expired",
        ),
        ({"exp": None}, "exp"),
    ],
)
def test_a_wrong_erp_token_is_401(
    with_key_file: TestClient, erp_key: rsa.RSAPrivateKey, changes: dict[str, Any], says: str
) -> None:
    response = with_key_file.get("/probe/read", headers=bearer(erp_token(erp_key, **changes)))
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert says in response.json()["detail"]


@pytest.mark.parametrize("name", ["token:ci", "schedule:restore_test:erp", " ana", ""])
def test_an_erp_user_name_that_is_no_user_name_is_401_and_audited(
    with_key_file: TestClient, erp_key: rsa.RSAPrivateKey, context: Context, name: str
) -> None:
    # "token:ci" would pass for an API token in the audit log and the jobs' requested_by,
    # "schedule:..." for the scheduler: the ERP's names must be user names.
    token = erp_token(erp_key, sub=name, permissions=["admin:approve"])
    response = with_key_file.get("/probe/read", headers=bearer(token))
    assert response.status_code == 401, response.text
    if not name:
        assert "no 'sub' claim" in response.json()["detail"]
        assert audit.entries(context) == []  # nothing of a user there
        return
    said = f"the ERP token's 'sub' claim, {name!r}, is not a valid user name"
    assert said in response.json()["detail"]
    ((actor, action, target, outcome, detail, address),) = [
        (e.actor, e.action, e.target, e.outcome, e.detail, e.address)
        for e in audit.entries(context)
    ]
    assert (actor, action, target, outcome) == ("-", "login", None, AuditOutcome.FAILURE)
    assert detail is not None and said in detail and address == "testclient"


def test_an_erp_token_signed_with_another_key_or_algorithm_is_401(
    with_key_file: TestClient, erp_key: rsa.RSAPrivateKey
) -> None:
    other = erp_token(_rsa())
    assert with_key_file.get("/probe/read", headers=bearer(other)).status_code == 401
    # The public key used as an HMAC secret: the classic confusion, refused.
    forged = jwt.encode(
        {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "mallory",
            "exp": datetime.now(UTC) + timedelta(minutes=5),
            "permissions": ["admin:approve"],
        },
        _pem(erp_key).decode().replace("PUBLIC", "PUBLIQUE"),  # PyJWT refuses a real PEM
        algorithm="HS256",
    )
    assert with_key_file.get("/probe/approve", headers=bearer(forged)).status_code == 401
    ec_key = ec.generate_private_key(ec.SECP256R1())
    assert (
        with_key_file.get("/probe/read", headers=bearer(erp_token(ec_key, "ES256"))).status_code
        == 401
    )


class _Jwks:
    """A JWKS endpoint on loopback, serving whatever keys the test puts in it."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, key: rsa.RSAPrivateKey, kid: str) -> None:
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        self.keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})


@pytest.fixture
def jwks() -> Iterator[_Jwks]:
    served = _Jwks()
    served.thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()
        served.thread.join()


def test_erp_tokens_are_checked_with_the_keys_of_a_jwks_url(
    settings: Settings, context: Context, jwks: _Jwks, erp_key: rsa.RSAPrivateKey
) -> None:
    jwks.add(erp_key, "k1")
    erp = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks_url": jwks.url,
        "jwks_refetch_seconds": 0,  # the test's rotation follows the probe at once
    }
    with _client(settings, context, erp) as client:
        good = erp_token(erp_key, kid="k1", permissions=["admin:approve"])
        assert client.get("/probe/approve", headers=bearer(good)).status_code == 200
        unknown = erp_token(_rsa(), kid="k2")
        assert client.get("/probe/read", headers=bearer(unknown)).status_code == 401
        # The ERP rotates its key: the new kid is fetched, without a restart.
        rotated = _rsa()
        jwks.add(rotated, "k3")
        newer = erp_token(rotated, kid="k3")
        assert client.get("/probe/read", headers=bearer(newer)).status_code == 200
    assert jwks.requests >= 2


def test_an_unreachable_jwks_url_is_401_with_a_hint(
    settings: Settings, context: Context, jwks: _Jwks, erp_key: rsa.RSAPrivateKey
) -> None:
    url = jwks.url
    jwks.server.shutdown()
    jwks.server.server_close()
    erp = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": url}
    with _client(settings, context, erp) as client:
        response = client.get("/probe/read", headers=bearer(erp_token(erp_key, kid="k1")))
    assert response.status_code == 401
    assert "jwks_url" in response.json()["detail"] + response.json()["hint"]


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('public_key_file = "/k.pem"\njwks_url = "https://erp/jwks"', "exactly one of"),
        ("", "exactly one of"),
        ('jwks_url = "http://erp.example/jwks"', "https://"),
        ('jwks_url = "https://erp/jwks"\nalgorithms = ["HS256"]', "public-key algorithms"),
    ],
)
def test_erp_settings_are_checked_when_read(tmp_path: Path, table: str, says: str) -> None:
    path = tmp_path / "respaldo.toml"
    path.write_text(f'[server.erp_jwt]\nissuer = "{ISSUER}"\naudience = "x"\n{table}\n')
    with pytest.raises(ConfigError, match=says.replace("/", ".")):
        load_settings(path)


def test_a_public_key_file_that_is_no_key_is_refused_at_start_up(
    tmp_path: Path, settings: Settings, context: Context
) -> None:
    path = tmp_path / "erp.pub"
    path.write_text("not a key\n")
    erp = {"issuer": ISSUER, "audience": AUDIENCE, "public_key_file": str(path)}
    with pytest.raises(ConfigError, match="is not a PEM public key"):
        _client(settings, context, erp)


def test_an_erp_token_from_a_clock_a_few_seconds_ahead_is_taken(
    with_key_file: TestClient, erp_key: rsa.RSAPrivateKey
) -> None:
    # The ERP's page posts the token it just issued: its clock a little ahead of this
    # server's puts iat (and nbf) a few seconds in our future.
    ahead = datetime.now(UTC) + timedelta(seconds=10)
    token = erp_token(erp_key, iat=ahead, nbf=ahead)
    response = with_key_file.get("/probe/read", headers=bearer(token))
    assert response.status_code == 200, response.text
