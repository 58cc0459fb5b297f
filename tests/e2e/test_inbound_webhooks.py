"""Inbound webhooks end to end: the real app, calls to ``/hooks/{path}`` with each kind of
authentication, and every refusal with its status code."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from flowledger.webhooks.signing import signature_header
from tests.support.http import ApiClient

pytestmark = pytest.mark.e2e
SECRET = "a-shared-secret-of-some-length"
INPUT_SCHEMA = {
    "type": "object",
    "required": ["order"],
    "properties": {"order": {"type": "integer"}},
}


def make_workflow(api: ApiClient, name: str, *triggers: dict[str, Any]) -> dict[str, Any]:
    if api.get("/api/v1/agents", params={"name": "hook-target"}).json()["total"] == 0:
        created = api.post(
            "/api/v1/agents", json={"name": "hook-target", "url": "http://127.0.0.1:9"}
        )
        assert created.status_code == 201, created.text
    response = api.post(
        "/api/v1/workflows",
        json={
            "name": name,
            "steps": {"only": {"agent_name": "hook-target", "input_mapping": {"o": "$.input"}}},
            "input_schema": INPUT_SCHEMA,
            "triggers": list(triggers),
        },
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def trigger_of(api: ApiClient, workflow_id: str) -> dict[str, Any]:
    listed = api.get("/api/v1/triggers", params={"workflow_id": workflow_id}).json()
    assert listed["total"] == 1, listed
    return listed["items"][0]  # type: ignore[no-any-return]


def run_of(api: ApiClient, run_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_call_starts_a_run_with_the_body_and_the_mapped_headers_and_query(
    api: ApiClient,
) -> None:
    workflow = make_workflow(
        api,
        "orders",
        {
            "type": "webhook",
            "path": "orders",
            "headers": {"X-Shop": "shop"},
            "query": {"src": "source"},
            "event_type": "order.created",
        },
    )
    trigger = trigger_of(api, workflow["id"])
    assert (trigger["url_path"], trigger["method"], trigger["status"]) == (
        "/hooks/orders",
        "POST",
        "active",
    )
    with api.as_key(None):
        accepted = api.post("/hooks/orders?src=web", json={"order": 7}, headers={"X-Shop": "eu"})
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert (body["trigger_id"], body["workflow_id"], body["replayed"]) == (
        trigger["id"],
        workflow["id"],
        False,
    )
    run = run_of(api, body["run_id"])
    assert run["input_data"] == {
        "order": 7,
        "shop": "eu",
        "source": "web",
        "event_type": "order.created",
    }
    assert run["triggered_by"] == f"trigger:{trigger['id']}"
    shown = api.get(f"/api/v1/triggers/{trigger['id']}").json()
    assert shown["fired_count"] == 1
    assert [f["run_id"] for f in shown["last_runs"]] == [body["run_id"]]


def test_a_token_must_come_in_the_triggers_header(api: ApiClient) -> None:
    make_workflow(
        api,
        "tokened",
        {"type": "webhook", "path": "tokened", "auth": {"type": "token", "token": SECRET}},
    )
    with api.as_key(None), capture_logs() as logs:
        missing = api.post("/hooks/tokened", json={"order": 1})
        wrong = api.post("/hooks/tokened", json={"order": 1}, headers={"X-Webhook-Token": "no"})
        right = api.post("/hooks/tokened", json={"order": 1}, headers={"X-Webhook-Token": SECRET})
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 202)
    refused = [e for e in logs if e.get("category") == "AUTH" and e.get("result") == "FAILURE"]
    assert [e["reason"] for e in refused] == ["token header missing", "wrong token"]
    assert all(e["path"] == "/hooks/tokened" for e in refused)


def signed(body: bytes, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = int(time.time() if at is None else at)
    return {"X-Webhook-Signature": signature_header(secret, stamp, body), "content-type": "json"}


def test_an_hmac_signature_is_checked_and_a_replay_is_refused(api: ApiClient) -> None:
    make_workflow(
        api,
        "signed",
        {"type": "webhook", "path": "signed", "auth": {"type": "hmac", "secret": SECRET}},
    )
    body = json.dumps({"order": 3}).encode()
    headers = signed(body)
    with api.as_key(None):
        first = api.post("/hooks/signed", content=body, headers=headers)
        replay = api.post("/hooks/signed", content=body, headers=headers)
        stale = api.post("/hooks/signed", content=body, headers=signed(body, time.time() - 600))
        forged = api.post("/hooks/signed", content=body, headers=signed(body, secret="x" * 20))
        tampered = api.post("/hooks/signed", content=b'{"order": 4}', headers=signed(body))
        unsigned = api.post("/hooks/signed", content=body)
    assert first.status_code == 202, first.text
    assert [r.status_code for r in (replay, stale, forged, tampered, unsigned)] == [401] * 5
    assert "received before" in replay.json()["detail"]


def test_basic_auth_is_checked_and_a_refusal_asks_for_it(api: ApiClient) -> None:
    auth = {"type": "basic", "username": "ci", "password": "hunter2-hunter2"}
    make_workflow(api, "basic", {"type": "webhook", "path": "basic", "auth": auth})

    def credentials(user: str, password: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    with api.as_key(None):
        wrong = api.post("/hooks/basic", json={"order": 1}, headers=credentials("ci", "x"))
        right = api.post(
            "/hooks/basic", json={"order": 1}, headers=credentials("ci", "hunter2-hunter2")
        )
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert right.status_code == 202, right.text


def test_each_refusal_has_its_status(api: ApiClient) -> None:
    workflow = make_workflow(api, "strict", {"type": "webhook", "path": "strict"})
    trigger = trigger_of(api, workflow["id"])
    with api.as_key(None):
        assert api.post("/hooks/nowhere", json={}).status_code == 404
        wrong_method = api.put("/hooks/strict", json={"order": 1})
        assert (wrong_method.status_code, wrong_method.headers["Allow"]) == (405, "POST")
        assert api.post("/hooks/strict", content=b"{not json").status_code == 400
        assert api.post("/hooks/strict", json=[1, 2]).status_code == 422
        breaking = api.post("/hooks/strict", json={"order": "seven"})
    assert breaking.status_code == 422
    assert breaking.json()["errors"][0]["field"] == "input_data.order"

    paused = api.post(f"/api/v1/triggers/{trigger['id']}/pause")
    assert (paused.status_code, paused.json()["status"]) == (200, "paused")
    with api.as_key(None):
        assert api.post("/hooks/strict", json={"order": 1}).status_code == 409
    assert api.get(f"/api/v1/workflows/{workflow['id']}").json()["version"] == 1
    assert api.post(f"/api/v1/triggers/{trigger['id']}/resume").json()["status"] == "active"
    with api.as_key(None):
        assert api.post("/hooks/strict", json={"order": 1}).status_code == 202

    api.put(f"/api/v1/workflows/{workflow['id']}", json={"status": "inactive"})
    with api.as_key(None):
        assert api.post("/hooks/strict", json={"order": 1}).status_code == 409


def test_an_idempotency_key_answers_a_retry_with_the_first_run(api: ApiClient) -> None:
    make_workflow(api, "retried", {"type": "webhook", "path": "retried"})
    headers = {"Idempotency-Key": "delivery-42"}
    with api.as_key(None):
        first = api.post("/hooks/retried", json={"order": 1}, headers=headers).json()
        again = api.post("/hooks/retried", json={"order": 1}, headers=headers).json()
    assert again["run_id"] == first["run_id"] and again["replayed"] is True


def test_paths_are_unique_across_workflows_until_released(api: ApiClient) -> None:
    first = make_workflow(api, "first", {"type": "webhook", "path": "shared"})
    clash = api.post(
        "/api/v1/workflows",
        json={
            "name": "second",
            "steps": {"only": {"agent_name": "hook-target"}},
            "triggers": [{"type": "webhook", "path": "shared"}],
        },
    )
    assert clash.status_code == 409, clash.text
    assert clash.json()["detail"] == "webhook path 'shared' is used by another workflow"
    api.put(f"/api/v1/workflows/{first['id']}", json={"triggers": []})
    removed = api.get("/api/v1/triggers", params={"status": "removed"}).json()
    assert [t["key"] for t in removed["items"]] == ["shared"]
    with api.as_key(None):
        assert api.post("/hooks/shared", json={"order": 1}).status_code == 404
    make_workflow(api, "second", {"type": "webhook", "path": "shared"})


def test_the_spec_003_form_adds_a_webhook_trigger_whose_secrets_are_never_shown(
    api: ApiClient,
) -> None:
    workflow = make_workflow(api, "spec003")
    created = api.post(
        "/api/v1/inbound-webhooks",
        json={
            "workflow_id": workflow["id"],
            "event_type": "invoice.paid",
            "url_path": "invoices",
            "authentication": {"type": "token", "token": SECRET},
        },
    )
    assert created.status_code == 201, created.text
    trigger = created.json()
    assert trigger["url_path"] == "/hooks/invoices"
    assert trigger["config"]["auth"] == {"type": "token", "token": "********"}
    shown = api.get(f"/api/v1/workflows/{workflow['id']}").json()
    assert shown["version"] == 2
    assert shown["triggers"][0]["auth"]["token"] == "********"
    audit = api.get("/api/v1/audit", params={"entity_id": trigger["id"]}).json()["items"]
    assert audit and SECRET not in json.dumps(audit)
    with api.as_key(None):
        accepted = api.post(
            "/hooks/invoices", json={"order": 9}, headers={"X-Webhook-Token": SECRET}
        )
    assert accepted.status_code == 202, accepted.text
    assert run_of(api, accepted.json()["run_id"])["input_data"]["event_type"] == "invoice.paid"


def test_firings_and_refusals_are_counted_in_metrics(api: ApiClient) -> None:
    make_workflow(api, "counted", {"type": "webhook", "path": "counted"})
    with api.as_key(None):
        api.post("/hooks/counted", json={"order": 1})
        api.post("/hooks/counted", json={"order": "x"})
    text = api.get("/metrics").text
    assert 'flowledger_trigger_firings_total{outcome="fired",type="webhook"} 1.0' in text
    assert 'flowledger_inbound_webhook_refused_total{reason="input"}' in text
