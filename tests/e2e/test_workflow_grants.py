"""Per-workflow grants over HTTP (ADR 0010): with ``FLOWLEDGER_WORKFLOW_GRANTS=on`` a workflow
is its owner's; others need ``can_view`` / ``can_execute`` grants (the role stays the
ceiling); revoking takes effect on the next request; lists show only what the caller may view.
With the setting off (the default), the role alone decides."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flowledger.http.app import create_app
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.conftest import TEST_ENVIRONMENT, make_settings
from tests.support.http import ApiClient
from tests.support.security import JWT_SECRET, IssuedKey, bearer, issue_key, token

pytestmark = pytest.mark.e2e

WORKFLOWS = "/api/v1/workflows"
RUNS = "/api/v1/runs"
DEFINITION = {
    "steps": {"only": {"agent_name": "echo", "input_mapping": {"text": "$.input.text"}}},
    "input_schema": {"type": "object"},
}


@pytest.fixture
def settings(database: Database) -> Settings:
    grants_on = {"FLOWLEDGER_WORKFLOW_GRANTS": "on", "FLOWLEDGER_JWT_SECRET": JWT_SECRET}
    return make_settings(database, extra={**TEST_ENVIRONMENT, **grants_on})


@pytest.fixture
def keys(api: ApiClient) -> dict[str, IssuedKey]:
    assert api.post("/api/v1/agents", json={"name": "echo", "url": "http://127.0.0.1:9"}).is_success
    return {
        name: issue_key(api, role)
        for name, role in [
            ("alice", "editor"),
            ("bob", "editor"),
            ("olga", "operator"),
            ("vic", "viewer"),
        ]
    }


def create(api: ApiClient, name: str) -> dict[str, Any]:
    response = api.post(WORKFLOWS, json={"name": name, "definition": DEFINITION})
    assert response.status_code == 201, response.text
    return dict(response.json())


def execute(api: ApiClient, workflow_id: str) -> Any:
    return api.post(f"{WORKFLOWS}/{workflow_id}/execute", json={"input_data": {"text": "hi"}})


def agent_steps(api: ApiClient) -> dict[str, int]:
    """Each agent's steps in the runs analytics (of the last week) the caller is shown."""
    response = api.get("/api/v1/analytics/agents")
    assert response.status_code == 200, response.text
    return {agent["agent_name"]: agent["steps"] for agent in response.json()["agents"]}


def names(page: Any) -> list[str]:
    return sorted(item["name"] for item in page.json()["items"])


def test_a_workflow_is_its_owners_and_others_need_a_grant(
    api: ApiClient, keys: dict[str, IssuedKey]
) -> None:
    alice, bob, olga = keys["alice"], keys["bob"], keys["olga"]
    with api.as_key(alice.key):
        mine = create(api, "alices")
        assert mine["owner"] == alice.actor
        run = execute(api, mine["id"])
        assert run.status_code == 202, run.text
        run_id = run.json()["run_id"]
        assert api.put(f"{WORKFLOWS}/{mine['id']}", json={"description": "v2"}).is_success
    url = f"{WORKFLOWS}/{mine['id']}"
    with api.as_key(bob.key):  # an editor, but not the owner and without a grant
        for method, path, body in [
            ("GET", url, None),
            ("GET", f"{url}/versions", None),
            ("POST", f"{url}/execute", {"input_data": {}}),
            ("POST", f"{url}/test", {"input_data": {}}),
            ("PUT", url, {"description": "mine now"}),
            ("DELETE", url, None),
            ("GET", f"{RUNS}/{run_id}", None),
            ("GET", f"{RUNS}/{run_id}/steps", None),
            ("POST", f"{RUNS}/{run_id}/cancel", None),
            ("GET", f"{url}/grants", None),
        ]:
            refused = api.request(method, path, json=body)
            assert refused.status_code == 403, (method, path, refused.text)
        refused_read = api.get(url).json()
        assert refused_read == {"detail": f"No can_view permission on workflow {mine['id']}."}
        assert api.put(url, json={"description": "x"}).json() == {
            "detail": f"Only the owner of workflow {mine['id']} or an admin may change it."
        }
    with api.as_key(alice.key):
        both = {"can_view": True, "can_execute": True}
        granted = api.put(f"{url}/grants/{olga.actor}", json=both)
        assert granted.status_code == 200, granted.text
        assert granted.json()["principal"] == olga.actor
        assert granted.json()["granted_by"] == alice.actor
    with api.as_key(olga.key):  # an operator with a grant: view and execute, never change
        assert api.get(url).status_code == 200
        assert execute(api, mine["id"]).status_code == 202
        assert api.get(f"{RUNS}/{run_id}").status_code == 200
        assert api.put(url, json={"description": "x"}).status_code == 403  # role ceiling
    with api.as_key(bob.key):
        assert api.get(url).status_code == 403  # olga's grant is olga's alone
    assert api.get(url).status_code == 200  # admins may do everything


def test_a_revoked_grant_is_refused_on_the_next_request_by_every_api_process(
    api: ApiClient, keys: dict[str, IssuedKey], settings: Settings, database: Database
) -> None:
    olga = keys["olga"]
    workflow = create(api, "shared")
    url = f"{WORKFLOWS}/{workflow['id']}"
    assert api.put(f"{url}/grants/{olga.actor}", json={"can_execute": True}).is_success
    other_runtime = Runtime.open(settings, database=database, migrate=False)
    try:
        other = create_app(settings, runtime=other_runtime)  # another API process, no workers
        with ApiClient(other, api_key=olga.key) as elsewhere:
            assert execute(elsewhere, workflow["id"]).status_code == 202
            assert api.delete(f"{url}/grants/{olga.actor}").status_code == 204
            refused = execute(elsewhere, workflow["id"])
            assert refused.status_code == 403
            assert refused.json()["detail"] == (
                f"No can_execute permission on workflow {workflow['id']}."
            )
    finally:
        other_runtime.close_sync()
    assert api.get(f"{url}/grants").json()["items"] == []


def test_a_view_grant_does_not_allow_executing_and_a_role_grant_covers_every_caller_of_it(
    api: ApiClient, keys: dict[str, IssuedKey]
) -> None:
    olga, vic = keys["olga"], keys["vic"]
    workflow = create(api, "report")
    url = f"{WORKFLOWS}/{workflow['id']}"
    assert api.put(f"{url}/grants/{olga.actor}", json={"can_view": True}).is_success
    with api.as_key(olga.key):
        assert api.get(url).status_code == 200
        assert execute(api, workflow["id"]).json() == {
            "detail": f"No can_execute permission on workflow {workflow['id']}."
        }
    assert api.put(f"{url}/grants/role:viewer", json={"can_execute": True}).is_success
    with api.as_key(olga.key):  # an operator is also a viewer: the role grant applies
        assert execute(api, workflow["id"]).status_code == 202
    with api.as_key(vic.key):  # a viewer reads, but its role never executes
        assert api.get(url).status_code == 200
        refused = execute(api, workflow["id"])
        assert refused.json() == {"detail": "Role viewer does not have the execute permission."}
    jwt_user = bearer(token("carol", "operator"))
    assert api.get(url, headers=jwt_user).status_code == 200  # role:viewer covers her too


def test_lists_show_only_what_the_caller_may_view(
    api: ApiClient, keys: dict[str, IssuedKey]
) -> None:
    alice, bob = keys["alice"], keys["bob"]
    with api.as_key(alice.key):
        alices = create(api, "alices")
        assert execute(api, alices["id"]).status_code == 202
    with api.as_key(bob.key):
        bobs = create(api, "bobs")
        assert execute(api, bobs["id"]).status_code == 202
    admins = create(api, "admins")
    assert execute(api, admins["id"]).status_code == 202
    assert names(api.get(WORKFLOWS)) == ["admins", "alices", "bobs"]
    assert api.get(RUNS).json()["total"] == 3
    with api.as_key(alice.key):
        assert names(api.get(WORKFLOWS)) == ["alices"]
        runs = api.get(RUNS).json()
        assert [r["workflow_name"] for r in runs["items"]] == ["alices"]
        assert api.get(RUNS, params={"workflow_id": bobs["id"]}).json()["total"] == 0
    assert api.put(
        f"{WORKFLOWS}/{admins['id']}/grants/{alice.actor}", json={"can_view": True}
    ).is_success
    assert agent_steps(api) == {"echo": 3}  # every workflow: the per-agent rollups
    with api.as_key(bob.key):
        assert agent_steps(api) == {"echo": 1}
    with api.as_key(alice.key):
        assert names(api.get(WORKFLOWS)) == ["admins", "alices"]
        assert api.get(RUNS).json()["total"] == 2
        assert agent_steps(api) == {"echo": 2}
        assert api.get("/api/v1/events/stream?follow=false").status_code == 403
        assert api.get(f"{RUNS}/{runs['items'][0]['id']}/events/stream?follow=false").is_success


def test_a_bulk_operation_matches_only_the_runs_the_caller_may_execute(
    api: ApiClient, keys: dict[str, IssuedKey]
) -> None:
    alice, bob, olga = keys["alice"], keys["bob"], keys["olga"]
    with api.as_key(alice.key):
        alices = create(api, "alices")
        alices_run = execute(api, alices["id"]).json()["run_id"]
    with api.as_key(bob.key):
        bobs = create(api, "bobs")
        bobs_run = execute(api, bobs["id"]).json()["run_id"]
    assert api.put(
        f"{WORKFLOWS}/{alices['id']}/grants/{olga.actor}", json={"can_execute": True}
    ).is_success
    assert api.put(
        f"{WORKFLOWS}/{bobs['id']}/grants/{olga.actor}", json={"can_view": True}
    ).is_success
    every = {"status": "PENDING", "run_ids": [alices_run, bobs_run]}
    with api.as_key(olga.key):  # an operator: may execute alice's runs, only view bob's
        dry = api.post(f"{RUNS}/bulk/cancel", json={**every, "dry_run": True}).json()
        assert [r["run_id"] for r in dry["runs"]["items"]] == [alices_run]
        assert dry["unmatched_run_ids"] == [bobs_run]
    with api.as_key(bob.key):
        accepted = api.post(f"{RUNS}/bulk/cancel", json=every)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["matched"] == 1
    with api.as_key(keys["vic"].key):  # a viewer may follow, not act
        assert api.post(f"{RUNS}/bulk/cancel", json=every).status_code == 403
        assert api.get(f"{RUNS}/bulk/{accepted.json()['id']}").status_code == 200


def test_ownership_can_be_transferred_and_the_previous_owner_keeps_only_its_grants(
    api: ApiClient, keys: dict[str, IssuedKey]
) -> None:
    alice, bob = keys["alice"], keys["bob"]
    with api.as_key(alice.key):
        workflow = create(api, "handover")
        url = f"{WORKFLOWS}/{workflow['id']}"
        moved = api.put(f"{url}/owner", json={"owner": bob.actor})
        assert moved.status_code == 200, moved.text
        assert moved.json()["owner"] == bob.actor
        assert api.get(url).status_code == 403
    with api.as_key(bob.key):
        assert api.get(url).json()["owner"] == bob.actor
        assert api.put(f"{url}/grants/{alice.actor}", json={"can_view": True}).is_success
        listed = api.get(f"{url}/grants").json()["items"]
        assert [(g["principal"], g["can_view"], g["can_execute"]) for g in listed] == [
            (alice.actor, True, False)
        ]
    with api.as_key(alice.key):
        assert api.get(url).status_code == 200
        assert api.put(url, json={"description": "x"}).status_code == 403
    audit = api.get("/api/v1/audit", params={"entity_id": workflow["id"], "order": "asc"}).json()
    assert [(e["action"], e["actor"]) for e in audit["items"]] == [
        ("create", alice.actor),
        ("owner_changed", alice.actor),
        ("access_granted", bob.actor),
    ]


@pytest.mark.parametrize(
    ("principal", "body", "field"),
    [
        ("someone", {"can_view": True}, "principal"),
        ("key:not-a-uuid", {"can_view": True}, "principal"),
        ("key:00000000-0000-4000-8000-000000000000", {"can_view": True}, "principal"),
        ("role:admin", {"can_view": True}, "principal"),
        ("role:root", {"can_view": True}, "principal"),
        ("role:operator", {"can_view": False, "can_execute": True}, "can_view"),
        ("role:operator", {"can_view": False}, "can_view"),
        ("role:operator", {"can_view": True, "extra": 1}, "extra"),
        ("role:operator", {"can_view": "yes"}, "can_view"),
    ],
)
def test_an_invalid_grant_is_refused_with_the_field_at_fault(
    api: ApiClient, principal: str, body: dict[str, Any], field: str
) -> None:
    assert api.post("/api/v1/agents", json={"name": "echo", "url": "http://127.0.0.1:9"}).is_success
    workflow = create(api, "strict")
    refused = api.put(f"{WORKFLOWS}/{workflow['id']}/grants/{principal}", json=body)
    assert refused.status_code in (400, 422), refused.text
    assert field in refused.text
    assert api.get(f"{WORKFLOWS}/{workflow['id']}/grants").json()["total"] == 0


def test_grants_of_a_missing_workflow_are_a_404(api: ApiClient) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    assert api.get(f"{WORKFLOWS}/{missing}/grants").status_code == 404
    assert api.put(f"{WORKFLOWS}/{missing}/grants/role:viewer", json={}).status_code == 404
    assert api.put(f"{WORKFLOWS}/{missing}/owner", json={"owner": "jwt:bob"}).status_code == 404


@pytest.fixture
def default_api(database: Database) -> Iterator[ApiClient]:
    settings = make_settings(database)
    runtime = Runtime.open(settings, database=database, migrate=False)
    try:
        with ApiClient(create_app(settings, runtime=runtime, workers=("projections",))) as client:
            yield client
    finally:
        runtime.close_sync()


def test_with_grants_off_the_role_alone_decides_but_grants_stay_the_owners(
    default_api: ApiClient,
) -> None:
    api = default_api
    assert api.post("/api/v1/agents", json={"name": "echo", "url": "http://127.0.0.1:9"}).is_success
    alice, olga = issue_key(api, "editor"), issue_key(api, "operator")
    with api.as_key(alice.key):
        workflow = create(api, "open")
    url = f"{WORKFLOWS}/{workflow['id']}"
    with api.as_key(olga.key):
        assert api.get(url).status_code == 200
        assert execute(api, workflow["id"]).status_code == 202
        assert api.get(f"{url}/grants").status_code == 403
    assert names(api.get(WORKFLOWS)) == ["open"]


def test_the_grant_routes_are_documented_and_their_examples_work(
    api: ApiClient, keys: dict[str, IssuedKey]
) -> None:
    spec = api.get("/openapi.json").json()
    grants = {
        operation["operationId"]
        for methods in spec["paths"].values()
        for operation in methods.values()
        if "grants" in operation.get("tags", [])
    }
    assert grants == {
        "listWorkflowGrants",
        "getWorkflowGrant",
        "grantWorkflowAccess",
        "revokeWorkflowAccess",
        "transferWorkflowOwnership",
    }
    path = spec["paths"][f"{WORKFLOWS}/{{workflow_id}}/grants/{{principal}}"]
    principal = next(p for p in path["put"]["parameters"] if p["name"] == "principal")
    assert "role:" in principal["description"]
    workflow = create(api, "documented")
    body = path["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert len(body["examples"]) == 2
    for example in body["examples"]:
        url = f"{WORKFLOWS}/{workflow['id']}/grants/role:operator"
        assert api.put(url, json=example).status_code == 200, example
    assert path["put"]["security"] and path["delete"]["security"]
