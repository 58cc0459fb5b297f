"""Bearer JWTs: HS256 with a shared secret or RS256 with a public key; ``exp`` enforced;
forged, tampered, algorithm-swapped and role-less tokens refused."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from flowledger.http.app import create_app
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.conftest import TEST_ENVIRONMENT
from tests.support.http import ApiClient
from tests.support.security import JWT_SECRET, bearer, token

pytestmark = pytest.mark.e2e

AGENTS = "/api/v1/agents"
WHOAMI = "/api/v1/whoami"


def client(settings: Settings, runtime: Runtime, **env: str) -> ApiClient:
    configured = settings.with_overrides(extra={**TEST_ENVIRONMENT, **env})
    return ApiClient(create_app(configured, runtime=runtime, workers=("projections",)))


@pytest.fixture
def hs256(settings: Settings, runtime: Runtime) -> Iterator[ApiClient]:
    with client(settings, runtime, FLOWLEDGER_JWT_SECRET=JWT_SECRET) as api:
        yield api


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[Any, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public_pem


@pytest.fixture
def rs256(settings: Settings, runtime: Runtime, rsa_keys: tuple[Any, str]) -> Iterator[ApiClient]:
    with client(settings, runtime, FLOWLEDGER_JWT_PUBLIC_KEY=rsa_keys[1]) as api:
        yield api


def test_a_valid_hs256_token_authenticates_its_subject_in_its_role(hs256: ApiClient) -> None:
    with hs256.as_key(None):
        me = hs256.get(WHOAMI, headers=bearer(token("alice", "operator"))).json()
        assert me["actor"] == "jwt:alice" and me["role"] == "operator"
        assert me["credential"] == "jwt" and me["subject"] == "alice"
        refused = hs256.post(
            AGENTS, json={"name": "a", "url": "http://a"}, headers=bearer(token("alice"))
        )
        assert refused.status_code == 403
        editor = bearer(token("bob", ["viewer", "editor"]))
        created = hs256.post(AGENTS, json={"name": "a", "url": "http://a"}, headers=editor)
        assert created.status_code == 201
    audit = hs256.get("/api/v1/audit", params={"entity_id": created.json()["id"]}).json()
    assert [e["actor"] for e in audit["items"]] == ["jwt:bob"]


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: token(expires_in=-60), "expired"),
        (lambda: token(key="another-secret-" * 3), "Signature verification failed"),
        (lambda: token(role=None), "'role' claim must name a role"),
        (lambda: token(role="superuser"), "'role' claim must name a role"),
        (lambda: token(subject=""), "sub must be a string"),
        (lambda: jwt.encode({"sub": "alice", "role": "admin"}, JWT_SECRET), "exp"),
        (lambda: jwt.encode({"sub": "a", "role": "admin", "exp": 9999999999}, None,
                            algorithm="none"), "algorithm must be HS256"),
        (lambda: token(key=JWT_SECRET, algorithm="HS512"), "algorithm must be HS256"),
        (lambda: "not-a-jwt", "not valid"),
    ],
    ids=["expired", "forged", "no-role", "unknown-role", "empty-sub", "no-exp", "alg-none",
         "other-alg", "garbage"],
)  # fmt: skip
def test_expired_forged_and_malformed_tokens_are_refused(
    hs256: ApiClient, make: Callable[[], str], fragment: str
) -> None:
    """(Tokens are made when the test runs: they would expire if made at collection.)"""
    with hs256.as_key(None):
        response = hs256.get(AGENTS, headers=bearer(make()))
    assert response.status_code == 401
    assert fragment in response.json()["detail"]


def test_a_tampered_token_is_refused(hs256: ApiClient) -> None:
    header, _viewer, signature = token("alice", "viewer").split(".")
    admin = jwt.utils.base64url_encode(b'{"sub":"alice","role":"admin","exp":9999999999}')
    with hs256.as_key(None):
        response = hs256.get(AGENTS, headers=bearer(f"{header}.{admin.decode()}.{signature}"))
    assert response.status_code == 401


def test_other_authorization_schemes_are_refused(hs256: ApiClient) -> None:
    with hs256.as_key(None):
        response = hs256.get(AGENTS, headers={"Authorization": "Basic YWxpY2U6cHc="})
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]


def test_bearer_tokens_are_refused_when_no_key_is_configured(api: ApiClient) -> None:
    with api.as_key(None):
        response = api.get(AGENTS, headers=bearer(token()))
    assert response.status_code == 401
    assert response.json()["detail"] == "Bearer tokens are not accepted by this server."


def hmac_signed(secret: bytes) -> str:
    """An HS256 token signed by hand (PyJWT refuses to sign with a PEM key as secret)."""
    encode = jwt.utils.base64url_encode
    header = encode(b'{"alg":"HS256","typ":"JWT"}')
    payload = encode(b'{"sub":"mallory","role":"admin","exp":9999999999}')
    signature = hmac.new(secret, header + b"." + payload, hashlib.sha256).digest()
    return b".".join([header, payload, encode(signature)]).decode()


def test_rs256_tokens_are_checked_with_the_public_key(
    rs256: ApiClient, rsa_keys: tuple[Any, str]
) -> None:
    private, public_pem = rsa_keys
    with rs256.as_key(None):
        good = rs256.get(WHOAMI, headers=bearer(token("carol", "viewer", key=private,
                                                       algorithm="RS256")))  # fmt: skip
        assert good.status_code == 200 and good.json()["actor"] == "jwt:carol"
        # The public key used as an HMAC secret (algorithm confusion) must not pass.
        confused = rs256.get(AGENTS, headers=bearer(hmac_signed(public_pem.encode())))
        assert confused.status_code == 401
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = rs256.get(AGENTS, headers=bearer(token(key=other, algorithm="RS256")))
        assert forged.status_code == 401
    spec = rs256.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["BearerJWT"]["scheme"] == "bearer"
    operation = spec["paths"][AGENTS]["get"]
    assert operation["security"] == [{"ApiKey": []}, {"OAuth2Password": []}, {"BearerJWT": []}]
