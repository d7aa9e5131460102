"""crm_common.auth: hashed API keys with scopes, and customer JWTs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Annotated, Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI, Request

from crm_common.auth import (
    DEV_JWT_SECRET,
    ApiKeyPrincipal,
    Authenticator,
    ConfigurationError,
    CurrentCustomer,
    CustomerPrincipal,
    current_customer,
    generate_api_key,
    hash_api_key,
    require_scopes,
)
from crm_common.errors import Unauthorized, install_error_handlers
from crm_common.settings import AuthSettings
from crm_common.testing import asgi_client, mint_customer_token

READ_KEY, READ_DIGEST = "key-read-1", hash_api_key("key-read-1")
WRITE_KEY, WRITE_DIGEST = "key-write-1", hash_api_key("key-write-1")
NEW_WRITE_KEY, NEW_WRITE_DIGEST = "key-write-2", hash_api_key("key-write-2")
ADMIN_KEY = "key-admin-1"
STAR_KEY = "key-star-1"
SECRET = "a-real-secret-long-enough-for-hs512-" + "0123456789" * 3


def _pem_private(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_public(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "cust-42",
        "iss": "shop",
        "aud": "crm",
        "iat": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def auth_settings(**overrides: Any) -> AuthSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "admin_api_key": ADMIN_KEY,
        "jwt_secret": SECRET,
        "jwt_public_keys": [_pem_public(RSA_KEY), _pem_public(EC_KEY)],
        "api_keys": [
            {"name": "reader", "sha256": READ_DIGEST, "scopes": ["profile:read"]},
            {"name": "writer", "sha256": WRITE_DIGEST, "scopes": ["profile:write"]},
            {"name": "writer-next", "sha256": NEW_WRITE_DIGEST, "scopes": ["profile:write"]},
            {"name": "star", "sha256": hash_api_key(STAR_KEY), "scopes": ["segment:*"]},
        ],
    }
    values.update(overrides)
    return AuthSettings(**values)


def authenticator(**overrides: Any) -> Authenticator:
    return Authenticator.from_settings(auth_settings(**overrides))


def hs256_with_raw_key(payload: dict[str, Any], key: bytes) -> str:
    """An HS256 token signed by hand (PyJWT refuses to use a PEM key as an HMAC secret)."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    signature = b64(hmac.new(key, header + b"." + body, hashlib.sha256).digest())
    return (header + b"." + body + b"." + signature).decode()


ReadKey = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:read"))]
WriteKey = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:write"))]
ReadProfileWriteSegmentKey = Annotated[
    ApiKeyPrincipal, Depends(require_scopes("profile:read", "segment:write"))
]


def make_app(auth: Authenticator | None = None) -> FastAPI:
    app = FastAPI()
    app.state.authenticator = auth or authenticator()

    @app.get("/read")
    async def read_route(request: Request, principal: ReadKey) -> dict[str, Any]:
        assert request.state.principal is principal
        return {"name": principal.name}

    @app.post("/write")
    async def write_route(principal: WriteKey) -> dict[str, Any]:
        return {"name": principal.name}

    @app.get("/both")
    async def both_route(principal: ReadProfileWriteSegmentKey) -> dict[str, Any]:
        return {"name": principal.name}

    @app.get("/v1/me")
    async def me(request: Request, customer: CurrentCustomer) -> dict[str, Any]:
        assert request.state.principal is customer
        return {"external_id": customer.external_id, "tier": customer.claims.get("tier")}

    install_error_handlers(app)
    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TestHashApiKey:
    def test_sha256_hex(self) -> None:
        assert hash_api_key("abc") == (
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )


class TestGenerateApiKey:
    def test_key_and_digest(self) -> None:
        key, digest = generate_api_key()
        assert key.startswith("crm_")
        assert len(key) > 40
        assert digest == hash_api_key(key)

    def test_keys_are_random(self) -> None:
        assert len({generate_api_key()[0] for _ in range(20)}) == 20


class TestApiKeyPrincipalAllows:
    @pytest.mark.parametrize(
        ("scopes", "scope", "allowed"),
        [
            ({"profile:admin"}, "profile:admin", True),
            ({"profile:admin"}, "profile:write", True),
            ({"profile:admin"}, "profile:read", True),
            ({"profile:write"}, "profile:write", True),
            ({"profile:write"}, "profile:read", True),
            ({"profile:write"}, "profile:admin", False),
            ({"profile:read"}, "profile:read", True),
            ({"profile:read"}, "profile:write", False),
            ({"profile:read"}, "profile:admin", False),
            ({"profile:admin"}, "segment:read", False),
            ({"profile:read", "segment:write"}, "segment:read", True),
            ({"*"}, "anything:admin", True),
            ({"segment:*"}, "segment:admin", True),
            ({"segment:*"}, "profile:read", False),
            ({"metrics"}, "metrics", True),
            ({"metrics"}, "metrics:read", False),
            (set(), "profile:read", False),
        ],
    )
    def test_scope_implication(self, scopes: set[str], scope: str, allowed: bool) -> None:
        assert ApiKeyPrincipal("k", frozenset(scopes)).allows(scope) is allowed


class TestCustomerPrincipal:
    def test_equality_ignores_claims(self) -> None:
        assert CustomerPrincipal("c1", {"a": 1}) == CustomerPrincipal("c1", {"a": 2})
        assert CustomerPrincipal("c1") != CustomerPrincipal("c2")


class TestAuthenticatorFromSettings:
    def test_loads_hashed_keys(self) -> None:
        auth = authenticator()
        assert auth.api_key(READ_KEY) == ApiKeyPrincipal("reader", frozenset({"profile:read"}))
        assert auth.api_key("nope") is None

    def test_upper_case_digest_accepted(self) -> None:
        auth = authenticator(api_keys=[{"sha256": READ_DIGEST.upper(), "scopes": ["x:read"]}])
        principal = auth.api_key(READ_KEY)
        assert principal is not None
        assert principal.name == "key-0"

    def test_scopes_are_strings(self) -> None:
        auth = authenticator(api_keys=[{"sha256": READ_DIGEST, "scopes": [1, "x:read"]}])
        principal = auth.api_key(READ_KEY)
        assert principal is not None
        assert principal.scopes == frozenset({"1", "x:read"})

    def test_admin_key_outside_production(self) -> None:
        principal = authenticator().api_key(ADMIN_KEY)
        assert principal == ApiKeyPrincipal("local-admin", frozenset({"*"}))

    def test_no_admin_key_when_unset(self) -> None:
        assert authenticator(admin_api_key=None).api_key(ADMIN_KEY) is None

    def test_no_keys_at_all_outside_production(self) -> None:
        assert authenticator(admin_api_key=None, api_keys=[]).keys == {}

    def test_production_ignores_admin_key(self) -> None:
        auth = authenticator(environment="production")
        assert auth.api_key(ADMIN_KEY) is None
        assert auth.api_key(WRITE_KEY) is not None

    def test_production_without_hashed_keys_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="no API keys configured"):
            authenticator(environment="production", api_keys=[])

    def test_production_with_dev_jwt_secret_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="CRM_JWT_SECRET"):
            authenticator(environment="production", jwt_secret=DEV_JWT_SECRET)

    def test_production_without_jwt_secret_allowed(self) -> None:
        auth = authenticator(environment="production", jwt_secret=None)
        assert auth.settings.jwt_secret is None

    @pytest.mark.parametrize(
        ("entry", "message"),
        [
            ({"scopes": ["a:read"]}, r"api_keys\[0\] needs 'sha256' and 'scopes'"),
            ({"sha256": READ_DIGEST}, r"api_keys\[0\] needs 'sha256' and 'scopes'"),
            ({"sha256": READ_DIGEST, "scopes": None}, r"api_keys\[0\] needs"),
            ("not-an-object", r"api_keys\[0\] needs"),
            ({"sha256": "abc123", "scopes": []}, r"api_keys\[0\]\.sha256 is not a SHA-256"),
            ({"sha256": "g" * 64, "scopes": []}, r"api_keys\[0\]\.sha256 is not a SHA-256"),
            ({"sha256": READ_KEY, "scopes": []}, r"api_keys\[0\]\.sha256 is not a SHA-256"),
        ],
    )
    def test_malformed_entries(self, entry: Any, message: str) -> None:
        with pytest.raises(ConfigurationError, match=message):
            Authenticator.from_settings(AuthSettings.model_construct(api_keys=[entry]))

    def test_malformed_entry_index(self) -> None:
        settings = auth_settings()
        settings.api_keys.append({"sha256": "short", "scopes": []})
        with pytest.raises(ConfigurationError, match=r"api_keys\[4\]"):
            Authenticator.from_settings(settings)


class TestRequireScopes:
    async def test_missing_key_is_401_with_challenge(self) -> None:
        async with asgi_client(make_app()) as client:
            response = await client.get("/read")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:crm:problem:unauthorized"
        assert "Authorization: Bearer" in response.json()["detail"]

    async def test_other_scheme_is_401(self) -> None:
        async with asgi_client(make_app()) as client:
            response = await client.get("/read", headers={"Authorization": f"Basic {READ_KEY}"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_unknown_key_is_401(self) -> None:
        async with asgi_client(make_app()) as client:
            response = await client.get("/read", headers=bearer("not-a-key"))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"] == "Unknown API key"

    async def test_missing_scope_is_403(self) -> None:
        async with asgi_client(make_app()) as client:
            response = await client.post("/write", headers=bearer(READ_KEY))
        assert response.status_code == 403
        assert "www-authenticate" not in response.headers
        body = response.json()
        assert body["type"] == "urn:crm:problem:forbidden"
        assert body["detail"] == "API key lacks scope(s): profile:write"

    async def test_every_missing_scope_named(self) -> None:
        async with asgi_client(make_app()) as client:
            response = await client.get("/both", headers=bearer(STAR_KEY))
        assert response.status_code == 403
        assert response.json()["detail"] == "API key lacks scope(s): profile:read"

    @pytest.mark.parametrize(
        ("key", "path", "method", "name"),
        [
            (READ_KEY, "/read", "GET", "reader"),
            (WRITE_KEY, "/read", "GET", "writer"),
            (WRITE_KEY, "/write", "POST", "writer"),
            (ADMIN_KEY, "/write", "POST", "local-admin"),
            (ADMIN_KEY, "/both", "GET", "local-admin"),
        ],
    )
    async def test_granted(self, key: str, path: str, method: str, name: str) -> None:
        async with asgi_client(make_app()) as client:
            response = await client.request(method, path, headers=bearer(key))
        assert response.status_code == 200
        assert response.json() == {"name": name}

    async def test_service_wildcard(self) -> None:
        auth = authenticator(
            api_keys=[{"sha256": hash_api_key(STAR_KEY), "scopes": ["profile:*", "segment:*"]}]
        )
        async with asgi_client(make_app(auth)) as client:
            response = await client.get("/both", headers=bearer(STAR_KEY))
        assert response.status_code == 200

    async def test_rotation_two_keys_same_scopes(self) -> None:
        async with asgi_client(make_app()) as client:
            old = await client.post("/write", headers=bearer(WRITE_KEY))
            new = await client.post("/write", headers=bearer(NEW_WRITE_KEY))
        assert (old.status_code, new.status_code) == (200, 200)
        assert (old.json()["name"], new.json()["name"]) == ("writer", "writer-next")

    async def test_production_has_no_admin_key(self) -> None:
        auth = authenticator(environment="production")
        async with asgi_client(make_app(auth)) as client:
            response = await client.get("/read", headers=bearer(ADMIN_KEY))
        assert response.status_code == 401


class TestAuthenticatorCustomer:
    def test_hs256(self) -> None:
        token = jwt.encode(claims(tier="gold"), SECRET, algorithm="HS256")
        principal = authenticator().customer(token)
        assert principal.external_id == "cust-42"
        assert principal.claims["tier"] == "gold"

    def test_mint_customer_token_matches_dev_settings(self) -> None:
        """The short local default secret works (warnings are errors in this suite)."""
        principal = authenticator(jwt_secret=DEV_JWT_SECRET).customer(mint_customer_token("cust-1"))
        assert principal.external_id == "cust-1"

    def test_rs256(self) -> None:
        token = jwt.encode(claims(), _pem_private(RSA_KEY), algorithm="RS256")
        assert authenticator().customer(token).external_id == "cust-42"

    def test_es256(self) -> None:
        token = jwt.encode(claims(), _pem_private(EC_KEY), algorithm="ES256")
        assert authenticator().customer(token).external_id == "cust-42"

    def test_any_configured_public_key_verifies(self) -> None:
        token = jwt.encode(claims(), _pem_private(RSA_KEY), algorithm="RS256")
        auth = authenticator(jwt_public_keys=[_pem_public(OTHER_RSA_KEY), _pem_public(RSA_KEY)])
        assert auth.customer(token).external_id == "cust-42"

    def test_keys_of_another_type_are_skipped(self) -> None:
        """RSA and EC keys side by side (a rotation): each token finds the key of its type."""
        rs = jwt.encode(claims(), _pem_private(RSA_KEY), algorithm="RS256")
        es = jwt.encode(claims(), _pem_private(EC_KEY), algorithm="ES256")
        for keys in (
            [_pem_public(EC_KEY), _pem_public(RSA_KEY)],
            [_pem_public(RSA_KEY), _pem_public(EC_KEY)],
        ):
            auth = authenticator(jwt_public_keys=keys)
            assert auth.customer(rs).external_id == "cust-42"
            assert auth.customer(es).external_id == "cust-42"

    def test_unparsable_public_key_is_skipped(self) -> None:
        token = jwt.encode(claims(), _pem_private(RSA_KEY), algorithm="RS256")
        auth = authenticator(jwt_public_keys=["not a PEM key", _pem_public(RSA_KEY)])
        assert auth.customer(token).external_id == "cust-42"
        with pytest.raises(Unauthorized, match="Invalid token signature"):
            authenticator(jwt_public_keys=["not a PEM key"]).customer(token)

    def test_unknown_signing_key(self) -> None:
        token = jwt.encode(claims(), _pem_private(OTHER_RSA_KEY), algorithm="RS256")
        with pytest.raises(Unauthorized, match="Invalid token signature"):
            authenticator().customer(token)

    def test_wrong_secret(self) -> None:
        token = jwt.encode(claims(), "x" * 64, algorithm="HS256")
        with pytest.raises(Unauthorized, match="Invalid token signature"):
            authenticator().customer(token)

    def test_no_public_keys(self) -> None:
        token = jwt.encode(claims(), _pem_private(RSA_KEY), algorithm="RS256")
        with pytest.raises(Unauthorized, match="Invalid token signature"):
            authenticator(jwt_public_keys=[]).customer(token)

    def test_no_secret_refuses_hs256(self) -> None:
        token = jwt.encode(claims(), SECRET, algorithm="HS256")
        with pytest.raises(Unauthorized, match="Invalid token signature"):
            authenticator(jwt_secret=None).customer(token)

    def test_expired(self) -> None:
        token = jwt.encode(claims(exp=int(time.time()) - 120), SECRET, algorithm="HS256")
        with pytest.raises(Unauthorized, match="Invalid token: Signature has expired"):
            authenticator().customer(token)

    def test_expiry_leeway(self) -> None:
        token = jwt.encode(claims(exp=int(time.time()) - 5), SECRET, algorithm="HS256")
        assert authenticator().customer(token).external_id == "cust-42"
        with pytest.raises(Unauthorized, match="expired"):
            authenticator(jwt_leeway_seconds=0).customer(token)

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"iss": "someone-else"}, "Invalid issuer"),
            ({"aud": "other-api"}, "Audience doesn't match"),
            ({"exp": None}, 'Token is missing the "exp" claim'),
            ({"sub": None}, 'Token is missing the "sub" claim'),
            ({"iss": None}, 'Token is missing the "iss" claim'),
            ({"aud": None}, 'Token is missing the "aud" claim'),
            ({"nbf": int(time.time()) + 3600}, "not yet valid"),
        ],
    )
    def test_invalid_claims(self, overrides: dict[str, Any], message: str) -> None:
        token = jwt.encode(claims(**overrides), SECRET, algorithm="HS256")
        with pytest.raises(Unauthorized, match=message):
            authenticator().customer(token)

    def test_empty_subject(self) -> None:
        token = jwt.encode(claims(sub=""), SECRET, algorithm="HS256")
        with pytest.raises(Unauthorized, match="Token has no subject"):
            authenticator().customer(token)

    @pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "eyJhbGciOi.x.y"])
    def test_malformed(self, token: str) -> None:
        with pytest.raises(Unauthorized, match="Malformed token"):
            authenticator().customer(token)

    def test_alg_none_refused(self) -> None:
        token = jwt.encode(claims(), None, algorithm="none")
        with pytest.raises(Unauthorized, match="Token algorithm not accepted"):
            authenticator().customer(token)

    def test_alg_none_refused_even_when_listed(self) -> None:
        token = jwt.encode(claims(), None, algorithm="none")
        with pytest.raises(Unauthorized, match="Invalid token signature"):
            authenticator(jwt_algorithms=["none", "HS256"]).customer(token)

    def test_algorithm_not_allowed(self) -> None:
        token = jwt.encode(claims(), SECRET, algorithm="HS512")
        with pytest.raises(Unauthorized, match="Token algorithm not accepted"):
            authenticator().customer(token)
        assert authenticator(jwt_algorithms=["HS512"]).customer(token).external_id == "cust-42"

    def test_rs256_refused_when_only_hs256_allowed(self) -> None:
        token = jwt.encode(claims(), _pem_private(RSA_KEY), algorithm="RS256")
        with pytest.raises(Unauthorized, match="Token algorithm not accepted"):
            authenticator(jwt_algorithms=["HS256"]).customer(token)

    def test_algorithm_confusion_refused(self) -> None:
        """An HS256 token whose HMAC key is the (public) RSA key must not verify."""
        public_pem = _pem_public(RSA_KEY)
        token = hs256_with_raw_key(claims(), public_pem.encode())
        with pytest.raises(Unauthorized, match="Invalid token signature"):
            authenticator().customer(token)
        with pytest.raises(Unauthorized, match="Invalid token signature"):
            authenticator(jwt_secret=None).customer(token)

    def test_forged_hs256_with_the_secret_verifies(self) -> None:
        """The hand-signing helper is right: with the real secret the token is accepted."""
        token = hs256_with_raw_key(claims(), SECRET.encode())
        assert authenticator().customer(token).external_id == "cust-42"


class TestCurrentCustomer:
    async def test_valid_token(self) -> None:
        token = jwt.encode(claims(tier="gold"), SECRET, algorithm="HS256")
        async with asgi_client(make_app()) as client:
            response = await client.get("/v1/me", headers=bearer(token))
        assert response.status_code == 200
        assert response.json() == {"external_id": "cust-42", "tier": "gold"}

    async def test_missing_token(self) -> None:
        async with asgi_client(make_app()) as client:
            response = await client.get("/v1/me")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "Bearer <jwt>" in response.json()["detail"]

    async def test_invalid_token(self) -> None:
        token = jwt.encode(claims(exp=int(time.time()) - 600), SECRET, algorithm="HS256")
        async with asgi_client(make_app()) as client:
            response = await client.get("/v1/me", headers=bearer(token))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["type"] == "urn:crm:problem:unauthorized"

    async def test_api_key_is_not_a_customer_token(self) -> None:
        async with asgi_client(make_app()) as client:
            response = await client.get("/v1/me", headers=bearer(ADMIN_KEY))
        assert response.status_code == 401

    def test_is_the_current_customer_dependency(self) -> None:
        assert CurrentCustomer.__metadata__[0].dependency is current_customer
