"""n8n end to end against a real n8n server (installed from the npm registry by the test set-up,
once per machine: ``tests/support/n8n/install.sh``): sync its workflows as agents, run a step
that calls one, re-sync after changes, and keep the API key out of every answer and the audit.

Run alone with ``pytest tests/e2e/test_n8n.py`` (the first run installs n8n: minutes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from flowledger.http.app import create_app
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.support.http import ApiClient
from tests.support.n8n import N8n, N8nUnavailable, running_n8n, set_node, then, webhook_node
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e
SYNC = "/api/v1/integrations/n8n/sync"


@pytest.fixture(scope="module")
def n8n(tmp_path_factory: pytest.TempPathFactory) -> Iterator[N8n]:
    try:
        with running_n8n(tmp_path_factory.mktemp("n8n")) as server:
            yield server
    except N8nUnavailable as why:
        pytest.skip(f"no n8n here: {why}")


@pytest.fixture
def api(settings: Settings, runtime: Runtime) -> Iterator[ApiClient]:
    app = create_app(settings, runtime=runtime, workers=("projections", "executor"))
    with ApiClient(app) as client:
        yield client


def greeter(n8n: N8n, name: str, path: str) -> str:
    workflow_id = n8n.create_workflow(
        name,
        [webhook_node(path), set_node("Greet", "greeting", "={{ 'hello ' + $json.body.name }}")],
        then("Webhook", "Greet"),
    )
    n8n.activate(workflow_id)
    return workflow_id


def agent_named(api: ApiClient, name: str) -> dict[str, Any]:
    found = api.get("/api/v1/agents", params={"name": name, "status": "all"}).json()["items"]
    matching = [a for a in found if a["name"] == name]
    assert len(matching) == 1, found
    return matching[0]  # type: ignore[no-any-return]


def test_n8n_workflows_sync_as_agents_run_as_steps_and_resync(api: ApiClient, n8n: N8n) -> None:
    greeter_id = greeter(n8n, "Greeter", "greet")
    manual_id = n8n.create_workflow("Manual", [set_node("Only", "x", "1")], {})
    getter_id = n8n.create_workflow("Getter", [webhook_node("get-me", "GET")], {})
    n8n.activate(getter_id)

    synced = api.post(SYNC, json={"n8n_url": n8n.url, "api_key": n8n.api_key})
    assert synced.status_code == 200, synced.text
    result = synced.json()
    assert result["synced_count"] == 1
    assert {e["workflow_id"]: e["reason"] for e in result["errors"]} == {
        manual_id: "it is not started by a Webhook node",
        getter_id: "its Webhook node takes GET, not POST",
    }
    agent = agent_named(api, "n8n:Greeter")
    assert (agent["kind"], agent["url"], agent["status"]) == (
        "n8n",
        f"{n8n.url}/webhook/greet",
        "active",
    )
    assert result["agents"] == {greeter_id: agent["id"]}
    health = api.get(f"/api/v1/agents/{agent['id']}/health").json()
    assert (health["reachable"], health["card_name"]) == (True, "n8n"), health

    workflow = api.post(
        "/api/v1/workflows",
        json={
            "name": "say-hello",
            "steps": {
                "greet": {"agent_name": "n8n:Greeter", "input_mapping": {"name": "$.input.who"}}
            },
        },
    )
    assert workflow.status_code == 201, workflow.text
    started = api.post(
        f"/api/v1/workflows/{workflow.json()['id']}/execute", json={"input_data": {"who": "Ada"}}
    )
    run_id = started.json()["run_id"]
    run = eventually(
        lambda: api.get(f"/api/v1/runs/{run_id}").json(),
        lambda run: run["status"] in ("SUCCEEDED", "FAILED"),
        what="the run calling n8n to finish",
    )
    assert (run["status"], run["output_data"]) == ("SUCCEEDED", {"greeting": "hello Ada"}), run

    integrations = api.get("/api/v1/integrations").json()["items"]
    assert [(i["service"], i["url"], i["status"], i["synced_count"]) for i in integrations] == [
        ("n8n", n8n.url, "active", 1)
    ]
    assert integrations[0]["last_sync"] is not None
    audit = api.get("/api/v1/audit", params={"entity_type": "integration"}).json()["items"]
    assert audit, "the sync is audited"
    everything = json.dumps([integrations, audit, result])
    assert n8n.api_key not in everything

    n8n.deactivate(greeter_id)
    resynced = api.post(SYNC, json={"n8n_url": n8n.url, "api_key": n8n.api_key}).json()
    assert resynced["synced_count"] == 0
    assert greeter_id in {e["workflow_id"] for e in resynced["errors"]}
    assert agent_named(api, "n8n:Greeter")["status"] == "inactive"

    n8n.activate(greeter_id)
    back = api.post(
        SYNC, json={"n8n_url": n8n.url, "api_key": n8n.api_key, "workflow_ids": [greeter_id]}
    ).json()
    assert (back["synced_count"], back["errors"]) == (1, [])
    assert agent_named(api, "n8n:Greeter")["status"] == "active"

    n8n.delete(greeter_id)
    gone = api.post(SYNC, json={"n8n_url": n8n.url, "api_key": n8n.api_key}).json()
    assert gone["synced_count"] == 0
    assert agent_named(api, "n8n:Greeter")["status"] == "inactive"


def test_an_instance_that_refuses_the_key_is_one_error_and_marks_the_integration(
    api: ApiClient, n8n: N8n
) -> None:
    refused = api.post(SYNC, json={"n8n_url": n8n.url, "api_key": "not-a-key"})
    assert refused.status_code == 200, refused.text
    body = refused.json()
    assert body["synced_count"] == 0
    assert len(body["errors"]) == 1 and "refused the API key" in body["errors"][0]["reason"]
    shown = api.get("/api/v1/integrations").json()["items"]
    assert [(i["status"], "refused" in (i["last_error"] or "")) for i in shown] == [("error", True)]
