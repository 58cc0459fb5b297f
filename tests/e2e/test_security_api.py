"""Authentication and authorisation over HTTP: every protected route refuses anonymous
callers, each role gets exactly its permissions, keys can be revoked and expire, JWTs are
checked, and the rate limit answers 429."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.exceptions import ImproperlyConfiguredException
from structlog.testing import capture_logs

from flowledger.commands.api_keys import new_api_key
from flowledger.domain.access import Permission, Role, role_allows
from flowledger.domain.api_keys import ApiKey, hash_api_key, visible_prefix
from flowledger.eventlog.store import EventMetadata
from flowledger.http.app import create_app
from flowledger.http.auth import ApiSecurity
from flowledger.http.consistency import MIN_POSITION_HEADER
from flowledger.http.permissions import requires
from flowledger.observability.logs import AAA_LOGGER
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.support.http import ADMIN_API_KEY, ApiClient
from tests.support.security import (
    API_KEYS,
    bearer,
    issue_key,
    route_calls,
)

pytestmark = pytest.mark.e2e

AGENTS = "/api/v1/agents"
TOKEN = "/api/v1/auth/token"
"""The one API route open to anyone: where users exchange a password for a token."""
PUBLIC = {
    "/health",
    "/health/ready",
    "/metrics",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/asyncapi.json",
}
SELF_AUTHENTICATED = {"/hooks/{path:str}"}
"""Inbound webhooks check their trigger's own credentials, never API keys (ADR 0017; their
refusals are tested in tests/e2e/test_inbound_webhooks.py)."""
DASHBOARD = {"/", "/ui", "/ui/{path:path}"}
"""The dashboard's files (ADR 0022): public like the docs, they hold no data
(``tests/e2e/test_dashboard_serving.py`` checks them)."""


@pytest.fixture
def app(settings: Settings, runtime: Runtime) -> Litestar:
    return create_app(settings, runtime=runtime, workers=("projections",))


def test_every_protected_route_refuses_calls_without_valid_credentials(api: ApiClient) -> None:
    calls = [
        c
        for c in route_calls(api.app)
        if c.path not in PUBLIC | SELF_AUTHENTICATED | {TOKEN} | DASHBOARD
    ]
    assert {c.path for c in calls} >= {AGENTS, API_KEYS, "/api/v1/audit"}
    with api.as_key(None):
        for call in calls:
            for headers in ({}, {"X-API-Key": "flk_00000000_nope"}, bearer("not.a.jwt")):
                response = api.request(call.method, call.url, headers=headers)
                assert response.status_code == 401, (call.method, call.url, headers)
                assert response.json()["detail"]
                assert "X-API-Key" in response.headers["WWW-Authenticate"]


def test_public_routes_answer_without_credentials(api: ApiClient) -> None:
    with api.as_key(None):
        for path in PUBLIC:
            assert api.get(path).status_code == 200, path


def test_the_app_refuses_to_start_with_an_api_route_that_declares_no_permission(
    settings: Settings,
) -> None:
    @get("/api/v1/forgotten", sync_to_thread=False)
    def forgotten() -> str:
        return "open"

    @get("/api/v1/declared", sync_to_thread=False, opt=requires(Permission.READ))
    def declared() -> str:
        return "guarded"

    security = ApiSecurity(settings)
    security.secure(Litestar(route_handlers=[declared]))
    with pytest.raises(ImproperlyConfiguredException, match="GET /api/v1/forgotten"):
        security.secure(Litestar(route_handlers=[declared, forgotten]))


def test_every_api_route_of_the_app_declares_a_permission(api: ApiClient) -> None:
    open_to_anyone = []
    for call in route_calls(api.app):
        if call.path.startswith("/api/") and call.handler.opt.get("exclude_from_auth"):
            open_to_anyone.append((call.method, call.path))
        elif call.path.startswith("/api/"):
            assert isinstance(call.permission, Permission), (call.method, call.path)
    assert open_to_anyone == [("POST", TOKEN)]


@pytest.mark.parametrize("role", list(Role))
def test_each_role_may_use_exactly_the_routes_its_permissions_allow(
    api: ApiClient, role: Role
) -> None:
    issued = issue_key(api, role.value)
    with api.as_key(issued.key):
        for call in route_calls(api.app):
            if call.permission is None:
                continue
            body = {"json": {}} if call.method in ("POST", "PUT", "PATCH") else {}
            status = api.request(call.method, call.url, **body).status_code
            allowed = role_allows(role, call.permission)
            assert status != 401, (role, call.method, call.url)
            assert (status == 403) == (not allowed), (role, call.method, call.url, status)


def test_an_operator_can_read_but_not_change_agents_and_its_changes_name_it(
    api: ApiClient,
) -> None:
    created = api.post(AGENTS, json={"name": "echo", "url": "http://127.0.0.1:9101"}).json()
    operator = issue_key(api, "operator")
    editor = issue_key(api, "editor")
    with api.as_key(operator.key):
        assert api.get(f"{AGENTS}/{created['id']}").status_code == 200
        refused = api.put(f"{AGENTS}/{created['id']}", json={"timeout_ms": 5000})
        assert refused.status_code == 403
        assert refused.json() == {"detail": "Role operator does not have the manage permission."}
        assert api.post(AGENTS, json={"name": "x", "url": "http://a"}).status_code == 403
        assert api.get(API_KEYS).status_code == 403
    with api.as_key(editor.key):
        assert api.put(f"{AGENTS}/{created['id']}", json={"timeout_ms": 5000}).status_code == 200
    audit = api.get("/api/v1/audit", params={"entity_id": created["id"], "order": "asc"}).json()
    assert [(e["action"], e["actor"]) for e in audit["items"]] == [
        ("create", "admin-env"),
        ("update", editor.actor),
    ]


def test_an_api_key_is_shown_once_and_only_its_prefix_is_listed(api: ApiClient) -> None:
    issued = issue_key(api, "viewer", expires_at="2099-01-01T00:00:00Z")
    assert issued.key.startswith(issued.body["prefix"] + "_")
    assert issued.body["status"] == "active" and issued.body["created_by"] == "admin-env"
    listed = api.get(API_KEYS).json()
    assert listed["total"] == 1
    shown = listed["items"][0]
    assert "key" not in shown and issued.key not in api.get(API_KEYS).text
    assert shown["prefix"] == issued.body["prefix"]
    assert shown["expires_at"] == "2099-01-01T00:00:00Z"
    assert api.get(f"{API_KEYS}/{issued.id}").json() == shown
    with api.as_key(issued.key):
        me = api.get("/api/v1/whoami").json()
    assert me["actor"] == issued.actor and me["role"] == "viewer"
    assert me["permissions"] == ["read"] and me["key_id"] == issued.id


def test_a_revoked_key_is_refused_on_its_next_request_by_every_api_process(
    api: ApiClient, settings: Settings, database: Any
) -> None:
    issued = issue_key(api, "operator")
    other_runtime = Runtime.open(settings, database=database, migrate=False)
    try:
        other = create_app(settings, runtime=other_runtime)  # another API process, no workers
        with ApiClient(other, api_key=issued.key) as elsewhere:
            assert elsewhere.get(AGENTS).status_code == 200
            assert api.delete(f"{API_KEYS}/{issued.id}").status_code == 204
            refused = elsewhere.get(AGENTS)
            assert refused.status_code == 401
            assert refused.json() == {"detail": "The API key has been revoked."}
    finally:
        other_runtime.close_sync()
    with api.as_key(issued.key):
        assert api.get(AGENTS).status_code == 401
    assert api.get(f"{API_KEYS}/{issued.id}").json()["status"] == "revoked"
    assert api.delete(f"{API_KEYS}/{issued.id}").status_code == 204  # again: no change
    assert api.get(API_KEYS, params={"status": "revoked"}).json()["total"] == 1


def test_an_expired_key_is_refused(api: ApiClient, runtime: Runtime) -> None:
    key = new_api_key()
    issued_on = datetime.now(UTC) - timedelta(days=2)
    expired = ApiKey.issue(
        name="old",
        role="admin",
        prefix=visible_prefix(key),
        key_hash=hash_api_key(key),
        expires_at=issued_on + timedelta(days=1),
        now=issued_on,
    )
    position = runtime.store.record(expired, metadata=EventMetadata.system())
    listed = api.get(API_KEYS, headers={MIN_POSITION_HEADER: str(position)}).json()
    assert [k["status"] for k in listed["items"]] == ["expired"]
    with api.as_key(key):
        refused = api.get(AGENTS)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "The API key has expired."}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2099-01-01T00:00:00"}, "expires_at"),
        ({"role": "root"}, "role"),
        ({"name": ""}, "name"),
        ({"key": "chosen"}, "key"),
    ],
)
def test_invalid_api_keys_are_refused_field_by_field(
    api: ApiClient, fields: dict[str, Any], field: str
) -> None:
    response = api.post(API_KEYS, json={"name": "k", "role": "viewer", **fields})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


def test_both_credentials_at_once_are_refused(api: ApiClient) -> None:
    response = api.get(AGENTS, headers={"X-API-Key": ADMIN_API_KEY, **bearer("x.y.z")})
    assert response.status_code == 401
    assert "not both" in response.json()["detail"]


@pytest.fixture
def limited(settings: Settings, runtime: Runtime) -> Iterator[ApiClient]:
    slow = settings.with_overrides(extra={"FLOWLEDGER_RATE_LIMIT": "4/minute"})
    with ApiClient(create_app(slow, runtime=runtime, workers=("projections",))) as client:
        yield client


def test_the_rate_limit_counts_per_credential_and_answers_429_with_retry_after(
    limited: ApiClient,
) -> None:
    viewer = issue_key(limited, "viewer")
    statuses = [limited.get(AGENTS).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = limited.get(AGENTS)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["detail"].startswith("Too many requests")
    with limited.as_key(viewer.key):
        assert limited.get(AGENTS).status_code == 200  # another credential, its own budget
    with limited.as_key(None):
        assert limited.get("/health").status_code == 200  # public routes are not limited


def test_authentication_authorisation_and_changes_are_logged_by_category(
    api: ApiClient,
) -> None:
    viewer = issue_key(api, "viewer")
    with capture_logs() as logs:
        with api.as_key(None):
            api.get(AGENTS)
        with api.as_key(viewer.key):
            api.post(AGENTS, json={"name": "x", "url": "http://a"})
        api.post(AGENTS, json={"name": "x", "url": "http://a"})

    def logged(category: str, result: str) -> dict[str, Any]:
        found = [e for e in logs if e.get("category") == category and e["result"] == result]
        assert len(found) == 1, (category, result, logs)
        return found[0]

    refused = logged("AUTH", "FAILURE")
    assert (refused["reason"], refused["log_level"]) == ("missing", "warning")
    denied = logged("AUTHZ", "DENIED")
    assert (denied["actor"], denied["permission"]) == (viewer.actor, "manage")
    done = logged("AUDIT", "SUCCESS")
    assert (done["action"], done["actor"]) == ("register_agent", "admin-env")
    assert done["correlation_id"] and done["entity_type"] == "agent"


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO])
def test_granted_requests_are_logged_only_when_the_aaa_logger_writes_debug(
    api: ApiClient, level: int
) -> None:
    """A granted request's AUTH and AUTHZ lines are DEBUG lines: they are made (their fields
    bound) only when they will be written."""
    aaa = logging.getLogger(AAA_LOGGER)
    before = aaa.level
    aaa.setLevel(level)
    try:
        with capture_logs() as logs:
            assert api.get(AGENTS).status_code == 200
    finally:
        aaa.setLevel(before)
    granted = [
        (e["category"], e["result"])
        for e in logs
        if e.get("category") in ("AUTH", "AUTHZ") and e.get("log_level") == "debug"
    ]
    expected = [("AUTH", "SUCCESS"), ("AUTHZ", "ALLOWED")] if level == logging.DEBUG else []
    assert granted == expected


def test_the_openapi_document_declares_security_on_protected_operations(
    api: ApiClient,
) -> None:
    spec = api.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "name": "X-API-Key",
        "in": "header",
        "description": schemes["ApiKey"]["description"],
    }
    assert schemes["OAuth2Password"]["flows"]["password"]["tokenUrl"] == TOKEN
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path in PUBLIC | {TOKEN}:
                assert "security" not in operation, (method, path)
            elif path in {p.replace(":str", "") for p in SELF_AUTHENTICATED}:
                assert operation.get("security", []) == [], (method, path)  # no API key
                assert "401" in operation["responses"], (method, path)  # its trigger's own
            else:
                assert operation["security"] == [{"ApiKey": []}, {"OAuth2Password": []}], (
                    method,
                    path,
                )
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
