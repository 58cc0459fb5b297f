"""Users over HTTP: admins create, list, change and delete them; each user reads itself,
changes its password and makes API keys that act as it, never above its role; a password
never comes back."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.http import ApiClient
from tests.support.security import API_KEYS, issue_key
from tests.support.users import PASSWORD, USERS, create_user, sign_in, token_request

pytestmark = pytest.mark.e2e

AGENTS = "/api/v1/agents"


def test_an_admin_creates_lists_reads_and_changes_users(api: ApiClient) -> None:
    ada = create_user(api, "ada@example.com", role="editor", name="Ada")
    assert ada["email"] == "ada@example.com" and ada["role"] == "editor"
    assert ada["status"] == "active" and ada["created_by"] == "admin-env"
    assert "password" not in str(ada) and PASSWORD not in str(ada)
    create_user(api, "grace@example.com", role="viewer")

    listed = api.get(USERS, params={"sort": "email", "order": "desc"}).json()
    assert [u["email"] for u in listed["items"]] == ["grace@example.com", "ada@example.com"]
    assert api.get(USERS, params={"email": "GRACE"}).json()["total"] == 1
    assert api.get(USERS, params={"role": "editor"}).json()["items"] == [
        api.get(f"{USERS}/{ada['id']}").json()
    ]

    changed = api.put(f"{USERS}/{ada['id']}", json={"name": "Ada L.", "role": "operator"})
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["role"]) == ("Ada L.", "operator")
    tokens = sign_in(api, "ada@example.com")
    assert api.get("/api/v1/whoami", headers=tokens.bearer).json()["role"] == "operator"

    assert api.delete(f"{USERS}/{ada['id']}").status_code == 204
    assert api.get(USERS).json()["total"] == 1
    assert api.get(USERS, params={"status": "deleted"}).json()["items"][0]["id"] == ada["id"]
    assert api.delete(f"{USERS}/{ada['id']}").status_code == 204  # again: no change
    again = create_user(api, "ADA@example.com")  # the email is free again
    assert again["id"] != ada["id"]
    audit = api.get("/api/v1/audit", params={"entity_id": ada["id"], "order": "asc"}).json()
    assert [e["action"] for e in audit["items"]] == [
        "create",
        "renamed",
        "role_changed",
        "signed_out_everywhere",
        "delete",
    ]
    assert "password_hash" not in str(audit)


def test_emails_are_unique_without_regard_to_case(api: ApiClient) -> None:
    create_user(api, "Linus@Example.com")
    taken = api.post(
        USERS,
        json={"email": "linus@example.COM", "name": "L", "role": "viewer", "password": PASSWORD},
    )
    assert taken.status_code == 409
    assert "already taken" in taken.json()["detail"]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"password": "short"}, "password", "length >= 8"),
        ({"password": "x@example.com"}, "password", "not be the email"),
        ({"role": "developer"}, "role", "spec 003's 'developer' is 'editor'"),
        ({"role": "user"}, "role", "spec 003's 'user' is 'operator'"),
        ({"email": "not-an-email"}, "email", "email address"),
        ({"name": " padded "}, "name", "outer whitespace"),
        ({"admin": True}, "admin", "not a known field"),
    ],
)
def test_invalid_users_are_refused_field_by_field(
    api: ApiClient, fields: dict[str, Any], field: str, message: str
) -> None:
    body = {"email": "x@example.com", "name": "X", "role": "viewer", "password": PASSWORD}
    response = api.post(USERS, json={**body, **fields})
    assert response.status_code == 422, response.text
    first = response.json()["errors"][0]
    assert first["field"] == field and message in first["message"]


def test_only_admins_manage_users_and_anyone_reads_itself(api: ApiClient) -> None:
    user = create_user(api, "ken@example.com", role="editor")
    editor = issue_key(api, "editor")
    with api.as_key(editor.key):
        assert api.get(USERS).status_code == 403
        assert api.put(f"{USERS}/{user['id']}", json={"role": "admin"}).status_code == 403
        not_a_user = api.get(f"{USERS}/me")
        assert not_a_user.status_code == 404
        assert editor.actor in not_a_user.json()["detail"]
    tokens = sign_in(api, "ken@example.com")
    me = api.get(f"{USERS}/me", headers=tokens.bearer).json()
    assert (me["id"], me["role"]) == (user["id"], "editor")


def test_a_user_changes_its_password_and_signs_in_again(api: ApiClient) -> None:
    create_user(api, "dennis@example.com")
    tokens = sign_in(api, "dennis@example.com")
    wrong = api.put(
        f"{USERS}/me/password",
        json={"current_password": "not it at all", "new_password": "a brand new one"},
        headers=tokens.bearer,
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "current_password"
    changed = api.put(
        f"{USERS}/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new one"},
        headers=tokens.bearer,
    )
    assert changed.status_code == 204
    assert api.get("/api/v1/whoami", headers=tokens.bearer).status_code == 401
    old = token_request(
        api, {"grant_type": "password", "username": "dennis@example.com", "password": PASSWORD}
    )
    assert old.status_code == 400
    assert sign_in(api, "dennis@example.com", "a brand new one").access


def test_a_users_api_key_acts_as_the_user_never_above_its_role(api: ApiClient) -> None:
    user = create_user(api, "barbara@example.com", role="editor")
    too_high = api.post(API_KEYS, json={"name": "k", "role": "admin", "user_id": user["id"]})
    assert too_high.status_code == 422
    assert too_high.json()["errors"][0]["field"] == "role"
    key = issue_key(api, "editor", user_id=user["id"])
    assert key.body["user_id"] == user["id"]
    with api.as_key(key.key):
        me = api.get("/api/v1/whoami").json()
        assert (me["actor"], me["user_id"], me["role"]) == (
            f"user:{user['id']}",
            user["id"],
            "editor",
        )
        created = api.post(AGENTS, json={"name": "b", "url": "http://b"})
        assert created.status_code == 201
    audit = api.get("/api/v1/audit", params={"entity_id": created.json()["id"]}).json()
    assert audit["items"][0]["actor"] == f"user:{user['id']}"

    # Lowering the user's role lowers its keys' at once.
    assert api.put(f"{USERS}/{user['id']}", json={"role": "viewer"}).status_code == 200
    with api.as_key(key.key):
        assert api.get("/api/v1/whoami").json()["role"] == "viewer"
        assert api.post(AGENTS, json={"name": "c", "url": "http://c"}).status_code == 403
    assert api.get(API_KEYS, params={"user_id": user["id"]}).json()["total"] == 1


def test_a_key_limited_to_some_permissions_may_use_only_those(api: ApiClient) -> None:
    reader = issue_key(api, "operator", permissions=["read"])
    assert reader.body["permissions"] == ["read"]
    with api.as_key(reader.key):
        assert api.get(AGENTS).status_code == 200
        assert api.get("/api/v1/whoami").json()["permissions"] == ["read"]
        refused = api.post("/api/v1/workflows/00000000-0000-4000-8000-000000000000/execute")
        assert refused.status_code == 403
        assert refused.json()["detail"] == (
            "This API key is limited to read: not the execute permission."
        )
    beyond = api.post(API_KEYS, json={"name": "k", "role": "viewer", "permissions": ["manage"]})
    assert beyond.status_code == 422
    assert "role viewer does not have manage" in beyond.json()["errors"][0]["message"]


def test_a_user_makes_and_revokes_its_own_keys(api: ApiClient) -> None:
    user = create_user(api, "margaret@example.com", role="operator")
    tokens = sign_in(api, "margaret@example.com")
    made = api.post(
        f"{USERS}/me/api-keys",
        json={"name": "laptop", "permissions": ["read"]},
        headers=tokens.bearer,
    )
    assert made.status_code == 201, made.text
    key = made.json()
    assert (key["user_id"], key["role"], key["permissions"]) == (user["id"], "operator", ["read"])
    above = api.post(
        f"{USERS}/me/api-keys", json={"name": "x", "role": "admin"}, headers=tokens.bearer
    )
    assert above.status_code == 422
    mine = api.get(f"{USERS}/me/api-keys", headers=tokens.bearer).json()
    assert [k["id"] for k in mine["items"]] == [key["id"]]
    with api.as_key(key["key"]):
        assert api.get(AGENTS).status_code == 200
    other = issue_key(api, "viewer")
    not_mine = api.delete(f"{USERS}/me/api-keys/{other.id}", headers=tokens.bearer)
    assert not_mine.status_code == 404
    revoked = api.delete(f"{USERS}/me/api-keys/{key['id']}", headers=tokens.bearer)
    assert revoked.status_code == 204
    with api.as_key(key["key"]):
        assert api.get(AGENTS).status_code == 401


def test_workflows_a_user_creates_are_its_own_and_may_be_granted_to_a_user(
    api: ApiClient,
) -> None:
    owner = create_user(api, "alan@example.com", role="editor")
    other = create_user(api, "joan@example.com", role="operator")
    tokens = sign_in(api, "alan@example.com")
    assert api.post(AGENTS, json={"name": "echo", "url": "http://e"}).status_code == 201
    workflow = api.post(
        "/api/v1/workflows",
        json={"name": "w", "start_step": "s", "steps": {"s": {"agent_name": "echo"}}},
        headers=tokens.bearer,
    ).json()
    assert workflow["owner"] == f"user:{owner['id']}"
    principal = f"user:{other['id']}"
    granted = api.put(
        f"/api/v1/workflows/{workflow['id']}/grants/{principal}",
        json={"can_view": True, "can_execute": True},
        headers=tokens.bearer,
    )
    assert granted.status_code in (200, 201), granted.text
    nobody = api.put(
        f"/api/v1/workflows/{workflow['id']}/grants/user:00000000-0000-4000-8000-000000000000",
        json={"can_view": True},
    )
    assert nobody.status_code == 422
    assert "no user has the id" in nobody.json()["errors"][0]["message"]
