"""Signing in with a password, as OAuth2 clients do: the whole token lifecycle (sign in,
use, refresh, reuse detection, sign out, sign out everywhere), revocation on the very next
request of every API process, the limit on failed sign-ins, and no password or token in
events, logs or the audit log."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import jwt
import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from flowledger.http.app import create_app
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from flowledger.security.sign_in_settings import SignInSettings
from flowledger.security.tokens import SessionTokens
from tests.conftest import TEST_ENVIRONMENT
from tests.support.http import ApiClient
from tests.support.security import issue_key
from tests.support.users import (
    LOGOUT,
    LOGOUT_ALL,
    PASSWORD,
    TOKEN,
    USERS,
    Tokens,
    create_user,
    refresh,
    sign_in,
    token_request,
)

pytestmark = pytest.mark.e2e

WHOAMI = "/api/v1/whoami"
AGENTS = "/api/v1/agents"


@pytest.fixture
def elsewhere(settings: Settings, database: Database) -> Iterator[ApiClient]:
    """Another API process on the same database: its own app and connections, no workers."""
    other_runtime = Runtime.open(settings, database=database, migrate=False)
    try:
        with ApiClient(create_app(settings, runtime=other_runtime), api_key=None) as client:
            yield client
    finally:
        other_runtime.close_sync()


def whoami(api: ApiClient, tokens: Tokens) -> Any:
    return api.get(WHOAMI, headers=tokens.bearer)


def test_the_whole_token_lifecycle(api: ApiClient) -> None:
    user = create_user(api, "Ada@Example.com", role="editor")
    signed_in = token_request(
        api, {"grant_type": "password", "username": "ada@example.COM", "password": PASSWORD}
    )
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.headers["Cache-Control"] == "no-store"
    body = signed_in.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 900
    assert body["refresh_token_expires_in"] > 29 * 24 * 3600
    first = Tokens(body["access_token"], body["refresh_token"], body)
    claims = jwt.decode(first.access, options={"verify_signature": False})
    assert claims["sub"] == user["id"] and claims["role"] == "editor"

    me = whoami(api, first).json()
    assert me["actor"] == f"user:{user['id']}" and me["credential"] == "session"
    assert me["role"] == "editor" and me["session_id"] == claims["sid"]
    created = api.post(AGENTS, json={"name": "a", "url": "http://a"}, headers=first.bearer)
    assert created.status_code == 201
    assert api.get(f"{USERS}/me", headers=first.bearer).json()["email"] == "Ada@Example.com"

    # Refresh: new tokens for the same session; the refresh token sent is used up.
    refreshed = refresh(api, first.refresh)
    assert refreshed.status_code == 200, refreshed.text
    second = Tokens(refreshed.json()["access_token"], refreshed.json()["refresh_token"], {})
    assert second.refresh != first.refresh
    assert whoami(api, second).json()["session_id"] == claims["sid"]
    assert whoami(api, first).status_code == 200  # access tokens live until they expire

    # A refresh token used twice (a stolen copy, say) ends the session for everyone.
    reused = refresh(api, first.refresh)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert "used before" in reused.json()["error_description"]
    assert whoami(api, second).status_code == 401
    assert refresh(api, second.refresh).json()["error"] == "invalid_grant"

    # Sign out: the refresh token and the session's access tokens at once.
    third = sign_in(api, "ada@example.com")
    assert whoami(api, third).status_code == 200
    assert api.post(LOGOUT, headers=third.bearer).status_code == 204
    refused = whoami(api, third)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "The session has ended; sign in again."
    assert refresh(api, third.refresh).json()["error"] == "invalid_grant"

    audit = api.get("/api/v1/audit", params={"entity_id": claims["sid"], "order": "asc"}).json()
    assert [(e["action"], e["actor"]) for e in audit["items"]] == [
        ("started", f"user:{user['id']}"),
        ("refreshed", f"user:{user['id']}"),
        ("ended", f"user:{user['id']}"),
    ]


def test_sign_out_everywhere_ends_every_session_but_not_the_users_api_keys(
    api: ApiClient,
) -> None:
    user = create_user(api, "grace@example.com", role="operator")
    laptop, phone = sign_in(api, "grace@example.com"), sign_in(api, "grace@example.com")
    key = issue_key(api, "operator", user_id=user["id"])
    assert api.post(LOGOUT_ALL, headers=phone.bearer).status_code == 204
    for tokens in (laptop, phone):
        assert whoami(api, tokens).status_code == 401
        assert refresh(api, tokens.refresh).json()["error"] == "invalid_grant"
    with api.as_key(key.key):
        assert api.get(WHOAMI).json()["actor"] == f"user:{user['id']}"
    again = sign_in(api, "grace@example.com")  # a new sign-in starts a new session
    assert whoami(api, again).status_code == 200
    with api.as_key(key.key):  # an API key has no session to sign out of
        assert api.post(LOGOUT).status_code == 404


def test_revocation_takes_effect_on_the_next_request_in_every_api_process(
    api: ApiClient, elsewhere: ApiClient
) -> None:
    user = create_user(api, "alan@example.com", role="operator")
    tokens = sign_in(api, "alan@example.com")
    key = issue_key(api, "operator", user_id=user["id"])
    assert whoami(elsewhere, tokens).status_code == 200

    # Signing out in one process refuses the token in the other on its next request.
    assert api.post(LOGOUT, headers=tokens.bearer).status_code == 204
    assert whoami(elsewhere, tokens).status_code == 401

    # Disabling the user: its sessions and its API keys.
    tokens = sign_in(api, "alan@example.com")
    assert elsewhere.get(WHOAMI, headers={"X-API-Key": key.key}).status_code == 200
    disabled = api.put(f"{USERS}/{user['id']}", json={"status": "disabled"})
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    assert whoami(elsewhere, tokens).status_code == 401
    refused_key = elsewhere.get(WHOAMI, headers={"X-API-Key": key.key})
    assert refused_key.status_code == 401
    assert refused_key.json()["detail"] == "The API key's user is disabled."
    assert token_request(
        api, {"grant_type": "password", "username": "alan@example.com", "password": PASSWORD}
    ).json() == {
        "detail": "The user is disabled.",
        "error": "invalid_grant",
        "error_description": "The user is disabled.",
    }

    # Enabled again, the key works and the user signs in; an admin signs them out everywhere.
    assert api.put(f"{USERS}/{user['id']}", json={"status": "active"}).status_code == 200
    assert elsewhere.get(WHOAMI, headers={"X-API-Key": key.key}).status_code == 200
    assert whoami(elsewhere, tokens).status_code == 401  # disabling ended that session
    tokens = sign_in(api, "alan@example.com")
    assert api.delete(f"{USERS}/{user['id']}/sessions").status_code == 204
    assert whoami(elsewhere, tokens).status_code == 401

    # Deleting the user: refused at once, and its keys are revoked.
    tokens = sign_in(api, "alan@example.com")
    assert api.delete(f"{USERS}/{user['id']}").status_code == 204
    assert whoami(elsewhere, tokens).status_code == 401
    assert elsewhere.get(WHOAMI, headers={"X-API-Key": key.key}).json() == {
        "detail": "The API key has been revoked."
    }
    assert api.get(f"/api/v1/api-keys/{key.id}").json()["status"] == "revoked"


def test_an_expired_or_forged_access_token_is_refused(api: ApiClient, runtime: Runtime) -> None:
    user = create_user(api, "barbara@example.com")
    tokens = sign_in(api, "barbara@example.com")
    claims = jwt.decode(tokens.access, options={"verify_signature": False})
    issuer = SessionTokens(SignInSettings.from_settings(api.app.state.runtime.settings))
    past = datetime.now(UTC) - timedelta(hours=1)

    async def expired() -> str:
        made = await issuer.issue(
            runtime.async_engine,
            user_id=UUID(user["id"]),
            session_id=UUID(claims["sid"]),
            role="operator",
            session_expires_at=past + timedelta(days=1),
            now=past,
        )
        return made.token

    import anyio  # noqa: PLC0415

    stale = anyio.run(expired)
    answer = api.get(WHOAMI, headers={"Authorization": f"Bearer {stale}"})
    assert answer.status_code == 401
    assert answer.json()["detail"] == "The access token has expired; refresh it."
    forged = jwt.encode(
        {**claims, "role": "admin"}, "not-the-key", headers={"kid": "flowledger-session"}
    )
    assert api.get(WHOAMI, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert api.get(WHOAMI, headers=tokens.bearer).status_code == 200


@pytest.fixture
def limited(settings: Settings, runtime: Runtime) -> Iterator[ApiClient]:
    strict = settings.with_overrides(
        extra={
            **TEST_ENVIRONMENT,
            "FLOWLEDGER_SIGN_IN_MAX_FAILURES": "3",
            "FLOWLEDGER_SIGN_IN_MAX_FAILURES_PER_ADDRESS": "5",
        }
    )
    with ApiClient(create_app(strict, runtime=runtime, workers=("projections",))) as client:
        yield client


def password_grant(api: ApiClient, email: str, password: str) -> Any:
    return token_request(api, {"grant_type": "password", "username": email, "password": password})


def test_failed_sign_ins_are_limited_per_account_and_per_address_and_logged(
    limited: ApiClient,
) -> None:
    create_user(limited, "eve@example.com")
    create_user(limited, "mallory@example.com")
    with capture_logs() as logs:
        wrong = [password_grant(limited, "eve@example.com", "wrong password") for _ in range(3)]
        assert [r.status_code for r in wrong] == [400, 400, 400]
        assert wrong[0].json()["error"] == "invalid_grant"
        # Locked: even the right password is refused until the window ends.
        locked = password_grant(limited, "EVE@example.com", PASSWORD)
        assert locked.status_code == 429
        assert 850 <= int(locked.headers["Retry-After"]) <= 900
        assert locked.json()["error"] == "temporarily_unavailable"
        # Another account from the same address: the address has two failures left.
        assert password_grant(limited, "nobody@example.com", "guess").status_code == 400
        assert password_grant(limited, "mallory@example.com", "guess").status_code == 400
        assert password_grant(limited, "mallory@example.com", PASSWORD).status_code == 429

    auth = [e for e in logs if e.get("category") == "AUTH" and e.get("result") == "FAILURE"]
    reasons = [(e["username"], e["reason"], e["log_level"]) for e in auth]
    assert reasons == [
        ("eve@example.com", "wrong_password", "warning"),
        ("eve@example.com", "wrong_password", "warning"),
        ("eve@example.com", "wrong_password", "warning"),
        ("EVE@example.com", "rate_limited", "warning"),
        ("nobody@example.com", "unknown_user", "warning"),
        ("mallory@example.com", "wrong_password", "warning"),
        ("mallory@example.com", "rate_limited", "warning"),
    ]
    assert all(e["client"] for e in auth)
    assert PASSWORD not in repr(logs) and "wrong password" not in repr(logs)


def test_a_successful_sign_in_clears_the_accounts_failures(limited: ApiClient) -> None:
    create_user(limited, "carol@example.com")
    for _ in range(2):
        assert password_grant(limited, "carol@example.com", "nope nope").status_code == 400
    assert password_grant(limited, "carol@example.com", PASSWORD).status_code == 200
    for _ in range(2):
        assert password_grant(limited, "carol@example.com", "nope nope").status_code == 400
    assert password_grant(limited, "carol@example.com", PASSWORD).status_code == 200


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({}, "invalid_request"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "password", "username": "x@y.z"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "flr_nope"}, "invalid_grant"),
        ({"grant_type": "refresh_token"}, "invalid_grant"),
    ],
)
def test_malformed_token_requests_get_oauth2_errors(
    api: ApiClient, form: dict[str, str], error: str
) -> None:
    response = token_request(api, form)
    assert response.status_code == 400
    assert response.json()["error"] == error and response.json()["detail"]


def test_swaggers_authorize_dialog_signs_in(api: ApiClient) -> None:
    """The document offers OAuth2's password flow at the token endpoint on every protected
    operation, and the endpoint takes what Swagger UI sends (an empty client in Basic auth)."""
    spec = api.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["OAuth2Password"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == TOKEN
    assert scheme["flows"]["password"]["refreshUrl"] == TOKEN
    operations = spec["paths"]["/api/v1/agents"]
    assert {"OAuth2Password": []} in operations["get"]["security"]
    assert "security" not in spec["paths"][TOKEN]["post"]
    form = spec["paths"][TOKEN]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in form

    create_user(api, "swagger@example.com")
    basic = base64.b64encode(b":").decode()
    with api.as_key(None):
        answer = api.post(
            TOKEN,
            content="grant_type=password&username=swagger%40example.com"
            "&password=correct+horse+battery+staple&scope=",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": f"Basic {basic}",
                "Accept": "application/json",
            },
        )
    assert answer.status_code == 200, answer.text
    tokens = Tokens(answer.json()["access_token"], answer.json()["refresh_token"], {})
    assert api.get(AGENTS, headers=tokens.bearer).status_code == 200

    # Older Swagger UIs send the user's own credentials as Basic auth, and only the grant type.
    user_basic = base64.b64encode(b"swagger@example.com:" + PASSWORD.encode()).decode()
    with api.as_key(None):
        older = api.post(
            TOKEN,
            data={"grant_type": "password", "scope": ""},
            headers={"Authorization": f"Basic {user_basic}"},
        )
    assert older.status_code == 200, older.text


def test_no_password_or_token_is_in_events_logs_or_the_audit_log(
    api: ApiClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = ["first password 123", "second password 456", "admin set password 789"]
    seen: list[str] = list(secrets)
    with capture_logs() as logs, caplog.at_level(logging.DEBUG):
        user = create_user(api, "hedy@example.com", password=secrets[0])
        tokens = sign_in(api, "hedy@example.com", secrets[0])
        refreshed = refresh(api, tokens.refresh).json()
        seen += [tokens.access, tokens.refresh, refreshed["access_token"]]
        seen.append(refreshed["refresh_token"])
        changed = api.put(
            f"{USERS}/me/password",
            json={"current_password": secrets[0], "new_password": secrets[1]},
            headers={"Authorization": f"Bearer {refreshed['access_token']}"},
        )
        assert changed.status_code == 204
        assert refresh(api, refreshed["refresh_token"]).status_code == 400  # every session ended
        key = api.post(
            "/api/v1/api-keys", json={"name": "hedy", "role": "viewer", "user_id": user["id"]}
        ).json()["key"]
        seen.append(key)
        reset = api.put(f"{USERS}/{user['id']}", json={"password": secrets[2]})
        assert reset.status_code == 200
        again = sign_in(api, "hedy@example.com", secrets[2])
        seen += [again.access, again.refresh]
        password_grant(api, "hedy@example.com", "a wrong guess 000")
        seen.append("a wrong guess 000")
        api.post(LOGOUT, headers=again.bearer)
        time.sleep(0)  # everything above waited for its projection

    with runtime.engine.connect() as conn:
        events = conn.execute(text("SELECT topic, state FROM flowledger_events")).all()
        audit = conn.execute(text("SELECT row_to_json(a)::text FROM audit_log a")).scalars().all()
        hashes = conn.execute(text("SELECT password_hash FROM users")).scalars().all()
    stored = "\n".join(bytes(row.state).decode("utf-8", "replace") for row in events)
    assert "flowledger.domain.users:User.PasswordChanged" in {row.topic for row in events}
    logged = repr(logs) + "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    audited = "\n".join(audit)
    assert '"password_changed"' in audited
    for secret in seen:
        assert secret not in stored, "a password or token is in the event store"
        assert secret not in audited, "a password or token is in the audit log"
        assert secret not in logged, "a password or token is in the logs"
    for password_hash in hashes:  # the hashes are in events (the truth), masked elsewhere
        assert password_hash in stored
        assert password_hash not in audited and password_hash not in logged
    streamed = api.get("/api/v1/events/stream", params={"from_position": 0, "follow": "false"})
    assert streamed.status_code == 200
    for secret in [*seen, *hashes]:
        assert secret not in streamed.text
