"""Authentication: service API keys with scopes, and customer JWTs for ``/v1/me/...``.

API keys are long random tokens, so they are stored as SHA-256 digests: unlike passwords they
cannot be guessed from a dictionary, and a fast digest keeps each request's check O(1) (a
password hash such as argon2 would add tens of milliseconds to every call). Several keys may
carry the same scopes, so a new key can be rolled out before the old one is removed.
"""

from __future__ import annotations

import hashlib
import secrets
import warnings
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crm_common.errors import Forbidden, Unauthorized
from crm_common.settings import AuthSettings

__all__ = [
    "DEV_JWT_SECRET",
    "ApiKeyPrincipal",
    "Authenticator",
    "ConfigurationError",
    "CurrentCustomer",
    "CustomerPrincipal",
    "current_customer",
    "generate_api_key",
    "hash_api_key",
    "require_scopes",
]

_bearer = HTTPBearer(auto_error=False, description="Service API key or customer JWT")
DEV_JWT_SECRET = "dev-jwt-secret"
_SYMMETRIC = frozenset({"HS256", "HS384", "HS512"})
_ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"})


class ConfigurationError(RuntimeError):
    """Settings that must not be used to start a service."""


def hash_api_key(key: str) -> str:
    """SHA-256 hex digest under which a key is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_api_key() -> tuple[str, str]:
    """A new random key and its digest: give the key to the client, configure the digest."""
    key = "crm_" + secrets.token_urlsafe(32)
    return key, hash_api_key(key)


def _implied(scope: str) -> set[str]:
    """Scopes granted by ``scope``: ``admin`` ⊇ ``write`` ⊇ ``read`` within a service."""
    service, _, level = scope.partition(":")
    if level == "admin":
        return {scope, f"{service}:write", f"{service}:read"}
    if level == "write":
        return {scope, f"{service}:read"}
    return {scope}


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """A backend or operator calling with a service API key."""

    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """True when one of the key's scopes grants ``scope``."""
        if "*" in self.scopes or f"{scope.partition(':')[0]}:*" in self.scopes:
            return True
        return any(scope in _implied(s) for s in self.scopes)


@dataclass(frozen=True)
class CustomerPrincipal:
    """A shopper calling with a JWT signed by the shop; ``external_id`` is its ``sub``."""

    external_id: str
    claims: dict[str, Any] = field(default_factory=dict, compare=False)


class Authenticator:
    """Checks API keys against stored digests and verifies customer JWTs."""

    def __init__(self, keys: dict[str, ApiKeyPrincipal], settings: AuthSettings) -> None:
        """Use ``keys`` (digest → principal) and the JWT settings."""
        self.keys = keys
        self.settings = settings
        self.public_keys = list(settings.jwt_public_keys)

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> Authenticator:
        """Load keys; in production refuse to start without hashed keys or with dev secrets."""
        keys: dict[str, ApiKeyPrincipal] = {}
        for index, entry in enumerate(settings.api_keys):
            try:
                digest = str(entry["sha256"]).lower()
                scopes = frozenset(str(s) for s in entry["scopes"])
            except (KeyError, TypeError) as exc:
                raise ConfigurationError(f"api_keys[{index}] needs 'sha256' and 'scopes'") from exc
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ConfigurationError(f"api_keys[{index}].sha256 is not a SHA-256 hex digest")
            keys[digest] = ApiKeyPrincipal(str(entry.get("name", f"key-{index}")), scopes)
        production = settings.environment == "production"
        if settings.admin_api_key and not production:
            keys[hash_api_key(settings.admin_api_key)] = ApiKeyPrincipal(
                "local-admin", frozenset({"*"})
            )
        if production and not keys:
            raise ConfigurationError(
                "no API keys configured: set CRM_API_KEYS (hashed) before starting in production"
            )
        if production and settings.jwt_secret == DEV_JWT_SECRET:
            raise ConfigurationError(
                "CRM_JWT_SECRET still has its local default; set a real secret or unset it"
            )
        return cls(keys, settings)

    def api_key(self, token: str) -> ApiKeyPrincipal | None:
        """The principal whose key is ``token``, or ``None``."""
        return self.keys.get(hash_api_key(token))

    def customer(self, token: str) -> CustomerPrincipal:
        """Verify a customer JWT (signature, ``exp``, issuer, audience); raise 401 otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("Malformed token") from exc
        alg = header.get("alg")
        if alg not in self.settings.jwt_algorithms:
            raise Unauthorized("Token algorithm not accepted")
        candidates: Iterable[Any]
        if alg in _SYMMETRIC:
            candidates = [self.settings.jwt_secret] if self.settings.jwt_secret else []
        elif alg in _ASYMMETRIC:
            candidates = self.public_keys
        else:
            candidates = []
        last: Exception = Unauthorized("No key to verify this token")
        for key in candidates:
            try:
                # PyJWT warns on every decode with a short HMAC secret (the local default).
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                    claims = jwt.decode(
                        token,
                        key,
                        algorithms=[alg],
                        audience=self.settings.jwt_audience,
                        issuer=self.settings.jwt_issuer,
                        leeway=self.settings.jwt_leeway_seconds,
                        options={"require": ["exp", "sub", "iss", "aud"]},
                    )
            # A key of another type (an EC key for an RS256 token) is just not this token's key.
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError) as exc:
                last = exc
                continue
            except jwt.PyJWTError as exc:
                raise Unauthorized(f"Invalid token: {exc}") from exc
            sub = claims.get("sub")
            if not isinstance(sub, str) or not sub:
                raise Unauthorized("Token has no subject")
            return CustomerPrincipal(sub, claims)
        raise Unauthorized("Invalid token signature") from last


def _authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.authenticator
    return auth


def require_scopes(*scopes: str) -> Callable[..., Awaitable[ApiKeyPrincipal]]:
    """Dependency: a valid API key (401 otherwise) holding every scope in ``scopes`` (403 otherwise)."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKeyPrincipal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'")
        principal = _authenticator(request).api_key(credentials.credentials)
        if principal is None:
            raise Unauthorized("Unknown API key")
        missing = [s for s in scopes if not principal.allows(s)]
        if missing:
            raise Forbidden(f"API key lacks scope(s): {', '.join(missing)}")
        request.state.principal = principal
        return principal

    return dependency


async def current_customer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> CustomerPrincipal:
    """Dependency for ``/v1/me/...``: the customer named by a valid JWT."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing customer token: send 'Authorization: Bearer <jwt>'")
    principal = _authenticator(request).customer(credentials.credentials)
    request.state.principal = principal
    return principal


CurrentCustomer = Annotated[CustomerPrincipal, Depends(current_customer)]
