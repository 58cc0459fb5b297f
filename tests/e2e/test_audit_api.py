"""``GET /api/v1/audit``: every change with who, when and what, filtered and paginated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.http import ApiClient
from tests.support.security import issue_key

pytestmark = pytest.mark.e2e

AGENTS = "/api/v1/agents"
AUDIT = "/api/v1/audit"


def audit(api: ApiClient, **params: Any) -> dict[str, Any]:
    response = api.get(AUDIT, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def history(api: ApiClient) -> dict[str, Any]:
    """An editor registers two agents and changes one; the admin deletes the other."""
    editor = issue_key(api, "editor")
    with api.as_key(editor.key):
        first = api.post(AGENTS, json={"name": "one", "url": "http://a"}).json()
        second = api.post(AGENTS, json={"name": "two", "url": "http://b"}).json()
        api.put(f"{AGENTS}/{first['id']}", json={"timeout_ms": 5000})
    api.delete(f"{AGENTS}/{second['id']}")
    return {"editor": editor, "first": first["id"], "second": second["id"]}


def test_the_audit_log_is_filtered_by_actor_action_entity_and_time(
    api: ApiClient, history: dict[str, Any]
) -> None:
    everything = audit(api)
    assert everything["total"] == 5  # the key, two registrations, an update, a delete
    positions = [e["position"] for e in everything["items"]]
    assert positions == sorted(positions, reverse=True)  # newest first

    by_editor = audit(api, actor=history["editor"].actor, order="asc")
    assert [e["action"] for e in by_editor["items"]] == ["create", "create", "update"]
    assert (
        audit(api, actor="admin-env", action="delete")["items"][0]["entity_id"]
        == (history["second"])
    )
    updates = audit(api, action="update")["items"]
    assert len(updates) == 1
    assert updates[0]["changes"] == {
        "changes": {"timeout_ms": 5000},
        "previous": {"timeout_ms": 30000},
    }
    assert audit(api, entity_type="api_key")["total"] == 1
    assert audit(api, entity_type="agent", entity_id=history["first"])["total"] == 2
    assert audit(api, entity_type="api_key")["items"][0]["changes"]["key_hash"] == "********"

    now = datetime.now(UTC)
    assert audit(api, since=(now - timedelta(hours=1)).isoformat())["total"] == 5
    assert audit(api, since=(now + timedelta(hours=1)).isoformat())["total"] == 0
    assert audit(api, until=(now - timedelta(hours=1)).isoformat())["total"] == 0
    middle = everything["items"][2]["occurred_at"]
    assert audit(api, until=middle)["total"] == 3
    assert audit(api, since=middle)["total"] == 3
    naive = (now + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert audit(api, until=naive)["total"] == 5  # without a zone: UTC


def test_audit_pages_are_stable_and_complete(api: ApiClient, history: dict[str, Any]) -> None:
    pages = [audit(api, page=n, page_size=2, order="asc") for n in (1, 2, 3)]
    assert [p["total_pages"] for p in pages] == [3, 3, 3]
    seen = [e["position"] for p in pages for e in p["items"]]
    assert seen == sorted(seen) and len(set(seen)) == 5


def test_every_change_carries_the_request_correlation_id(api: ApiClient) -> None:
    created = api.post(
        AGENTS, json={"name": "c", "url": "http://c"}, headers={"X-Correlation-ID": "req-7"}
    )
    assert created.headers["X-Correlation-ID"] == "req-7"
    found = audit(api, correlation_id="req-7")["items"]
    assert [(e["entity_id"], e["action"]) for e in found] == [(created.json()["id"], "create")]


@pytest.mark.parametrize("role", ["viewer", "operator", "editor"])
def test_only_admins_read_the_audit_log(api: ApiClient, role: str) -> None:
    key = issue_key(api, role)
    with api.as_key(key.key):
        assert api.get(AUDIT).status_code == 403


@pytest.mark.parametrize(
    "params",
    [{"page": 0}, {"page_size": 101}, {"order": "sideways"}, {"since": "yesterday"},
     {"entity_id": "not-a-uuid"}],
)  # fmt: skip
def test_invalid_audit_queries_are_422(api: ApiClient, params: dict[str, Any]) -> None:
    response = api.get(AUDIT, params=params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == "query"
