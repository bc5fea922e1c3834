"""JWTs issued by the ERP ([server.erp_jwt]): its users call the API without a second login.

The token must be signed with the ERP's private key (checked with its public key file,
or with the key its JWKS URL publishes under the token's ``kid``), by one of the
configured public-key algorithms, and carry the configured issuer and audience and an
expiry. The permissions are read from ``permissions_claim``: a list of permission
strings, or one string of them separated by spaces (OAuth2's ``scope``); those respaldo
does not know are ignored. A token without that claim, or without ``user_claim``, is
refused (401): it was not made for respaldo. Nothing of it is stored.

The user's name must be a valid local user name (:func:`~respaldo.operations.users.
validate_user_name`): the audit log and the jobs table name their actor by that name
alone, and a name with a colon (``token:ci``, ``schedule:restore_test:erp``) would read
as an API token or a schedule there. Such a token is refused (401) with
:class:`ErpUserRefused`, which the authenticator audits.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

import jwt
from jwt import PyJWKClient

from respaldo.config import ErpJwtSettings
from respaldo.domain import AuthMethod, Permission
from respaldo.errors import AuthenticationFailed, ConfigError, InvalidInput
from respaldo.operations.principal import Principal
from respaldo.operations.users import validate_user_name

_JWKS_TIMEOUT_SECONDS = 10

CLOCK_LEEWAY: Final = timedelta(seconds=30)
"""How far the clock that issued a token (another respaldo server's on the catalog, or
the ERP's) may be from ours. A token made a moment ago by a clock a few seconds ahead
carries an ``iat`` in our future, which PyJWT refuses without leeway: the ERP's page
posts to ``/login/token`` the token it has just made. The price: a token is taken up to
this long past its ``exp`` (an access token's session is still checked at each request)."""


class ErpUserRefused(AuthenticationFailed):
    """A token of the ERP, verified, whose user name respaldo cannot take (see the module
    doc): not a mistake of the caller's, but of the ERP's or its administrator's, or an
    attempt to pass for something else; audited."""

    hint = (
        "the ERP's user names must be 1-64 letters, digits, '.', '_', '@' or '-', starting "
        "with a letter or digit: have the ERP put such a name in [server.erp_jwt] user_claim"
    )


class ErpVerifier:
    """Verifies the ERP's tokens; built at start-up (a bad key file fails then)."""

    def __init__(self, settings: ErpJwtSettings) -> None:
        self.settings = settings
        self.issuer = settings.issuer
        self._key: Any = None
        self._jwks: PyJWKClient | None = None
        if settings.public_key_file is not None:
            path = settings.public_key_file
            try:
                self._key = _load_pem(path.read_bytes())
            except OSError as exc:
                raise ConfigError(
                    f"[server.erp_jwt] public_key_file {path}: {exc.strerror}"
                ) from None
            except ValueError:
                raise ConfigError(
                    f"[server.erp_jwt] public_key_file {path} is not a PEM public key",
                    hint="export the ERP's signing key as a PEM 'PUBLIC KEY'",
                ) from None
        else:
            assert settings.jwks_url is not None  # the settings' validator sees to it
            self._jwks = PyJWKClient(
                settings.jwks_url,
                cache_keys=True,
                lifespan=max(1, int(settings.jwks_cache_seconds)),
                timeout=_JWKS_TIMEOUT_SECONDS,
                cooldown_duration=settings.jwks_refetch_seconds,
            )

    def verify(self, token: str, address: str | None) -> Principal:
        """The principal of an ERP token; AuthenticationFailed if it does not verify."""
        s = self.settings
        try:
            key = self._key
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
            # Only the configured algorithms that fit the key: PyJWT fails with a
            # TypeError, not an invalid token, when an ES256 token meets an RSA key.
            algorithms = [a for a in s.algorithms if a in _fitting(key)]
            if jwt.get_unverified_header(token).get("alg") not in algorithms:
                raise AuthenticationFailed(
                    "the ERP token is signed with an algorithm its key does not use, or "
                    "that [server.erp_jwt] algorithms does not allow"
                )
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=s.audience,
                issuer=s.issuer,
                leeway=CLOCK_LEEWAY,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWKClientConnectionError:
            raise AuthenticationFailed(
                "cannot fetch the ERP's signing keys from [server.erp_jwt] jwks_url",
                hint="check that the ERP's JWKS URL answers from this host",
            ) from None
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("the ERP token has expired") from None
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as exc:
            raise AuthenticationFailed(f"the ERP token is not valid: {exc}") from None
        name = claims.get(s.user_claim)
        if not isinstance(name, str) or not name:
            raise AuthenticationFailed(f"the ERP token has no {s.user_claim!r} claim")
        try:
            validate_user_name(name)
        except InvalidInput:
            raise ErpUserRefused(
                f"the ERP token's {s.user_claim!r} claim, {name[:80]!r}, is not a valid user name"
            ) from None
        if s.permissions_claim not in claims:
            raise AuthenticationFailed(
                f"the ERP token has no {s.permissions_claim!r} claim",
                hint="configure the ERP to put the user's permissions there, or set "
                "[server.erp_jwt] permissions_claim",
            )
        return Principal(
            name=name,
            permissions=_permissions(claims[s.permissions_claim]),
            method=AuthMethod.ERP_JWT,
            address=address,
        )


def _fitting(key: Any) -> frozenset[str]:
    """The signature algorithms a public key can verify."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key, rsa.RSAPublicKey):
        return frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
    if isinstance(key, ec.EllipticCurvePublicKey):
        return frozenset({"ES256", "ES384", "ES512"})
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    return frozenset()


def _load_pem(data: bytes) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(data)


def _permissions(value: Any) -> frozenset[Permission]:
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list):
        return frozenset()
    known = {p.value for p in Permission}
    return frozenset(Permission(item) for item in items if isinstance(item, str) and item in known)
