"""Runs over HTTP, end to end: the real app with projections and the executor in-process, and
the sample agents as real A2A servers in their own process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from flowledger.commands.workflows import UpdateWorkflow, update_workflow
from flowledger.eventlog.settings import EventStoreSettings
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.http.app import create_app
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.support.agents import get_stats, reset_stats, running_all
from tests.support.http import ApiClient
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


@pytest.fixture(scope="module")
def agent_urls() -> Iterator[dict[str, str]]:
    with running_all() as urls:
        yield urls


@pytest.fixture
def api(settings: Settings, runtime: Runtime, agent_urls: dict[str, str]) -> Iterator[ApiClient]:
    app = create_app(settings, runtime=runtime, workers=("projections", "executor"))
    with ApiClient(app) as client:
        for name, url in agent_urls.items():
            reset_stats(url, **({"fail_first": 0} if name == "flaky" else {}))
            response = client.post(
                "/api/v1/agents",
                json={
                    "name": name,
                    "url": url,
                    "retry_config": {"max_retries": 2, "initial_delay_ms": 100},
                },
            )
            assert response.status_code == 201, response.text
        yield client


def create_workflow(api: ApiClient, name: str = "pipeline", **definition: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "start_step": "shape",
        "steps": {
            "shape": {
                "agent_name": "transform",
                "next_step": "deliver",
                "input_mapping": {"text": "$.input.text"},
            },
            "deliver": {
                "agent_name": "echo",
                "input_mapping": {"shout": "$.steps.shape.output.text", "tag": "$.vars.tag"},
            },
        },
        "variables": {"tag": "v1"},
        "input_schema": {
            "type": "object",
            "required": ["text"],
            "properties": {"text": {"type": "string"}},
        },
        **definition,
    }
    response = api.post("/api/v1/workflows", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def execute(api: ApiClient, workflow_id: str, **body: Any) -> Any:
    return api.post(f"/api/v1/workflows/{workflow_id}/execute", json=body)


def wait_for_run(
    api: ApiClient, run_id: str, until: set[str] = TERMINAL, timeout: float = 30
) -> dict[str, Any]:
    run: dict[str, Any] = eventually(
        lambda: api.get(f"/api/v1/runs/{run_id}").json(),
        lambda run: run.get("status") in until,
        what=f"run {run_id} to be {sorted(until)}",
        timeout_s=timeout,
        describe=lambda run: f"status {run.get('status')}",
    )
    return run


def totals_by_status(api: ApiClient, workflow_id: str) -> dict[str, int]:
    """A workflow's list totals by status, as counted (``run_counts``, kept by the runs
    projection), after checking them against a count of the rows themselves (``triggered_by``
    makes the list count its rows)."""
    totals = {}
    for status in ("PENDING", "RUNNING", *sorted(TERMINAL)):
        params = {"workflow_id": workflow_id, "status": status}
        counted = api.get("/api/v1/runs", params=params).json()["total"]
        rows = api.get("/api/v1/runs", params={**params, "triggered_by": "admin-env"}).json()
        assert counted == rows["total"], status
        totals[status] = counted
    return totals


def test_execute_answers_at_once_and_the_run_can_be_followed_step_by_step(api: ApiClient) -> None:
    workflow = create_workflow(api)
    accepted = execute(api, workflow["id"], input_data={"text": "hello world"})
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert (
        body["status"] == "PENDING" and body["workflow_version"] == 1 and body["replayed"] is False
    )
    assert accepted.headers["Location"] == f"/api/v1/runs/{body['run_id']}"

    run = wait_for_run(api, body["run_id"])
    assert run["status"] == "SUCCEEDED", run
    assert run["output_data"] == {"shout": "HELLO WORLD", "tag": "v1"}
    assert run["triggered_by"] == "admin-env"
    assert run["duration_ms"] is not None and run["completed_at"] >= run["started_at"]

    steps = api.get(f"/api/v1/runs/{body['run_id']}/steps").json()
    assert [(s["step_id"], s["status"], s["attempts"]) for s in steps] == [
        ("shape", "SUCCEEDED", 1),
        ("deliver", "SUCCEEDED", 1),
    ]
    assert steps[0]["input_data"] == {"text": "hello world"}
    assert steps[1]["attempt_history"][0]["output_data"] == {"shout": "HELLO WORLD", "tag": "v1"}

    logs = api.get(f"/api/v1/runs/{body['run_id']}/logs").json()["items"]
    assert logs[0]["message"].startswith("Run requested by admin-env")
    assert logs[-1]["message"] == "Run succeeded"
    assert [e["id"] for e in logs] == sorted(e["id"] for e in logs)

    detail = api.get(f"/api/v1/workflows/executions/{body['run_id']}").json()
    assert detail["status"] == "SUCCEEDED" and [s["step_id"] for s in detail["steps"]] == [
        "shape",
        "deliver",
    ]
    executions = api.get(f"/api/v1/workflows/{workflow['id']}/executions").json()
    assert [r["id"] for r in executions["items"]] == [body["run_id"]]


def test_input_that_breaks_the_input_schema_is_a_422_naming_the_field(api: ApiClient) -> None:
    workflow = create_workflow(api)
    response = execute(api, workflow["id"], input_data={"text": 42})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "input_data.text"
    missing = execute(api, workflow["id"], input_data={})
    assert missing.status_code == 422 and "'text' is a required property" in missing.text
    unknown_var = execute(api, workflow["id"], input_data={"text": "x"}, variables={"nope": 1})
    assert (
        unknown_var.status_code == 422
        and unknown_var.json()["errors"][0]["field"] == "variables.nope"
    )
    assert execute(api, workflow["id"], input_data={"text": "x"}, version=7).status_code == 404
    assert execute(api, workflow["id"], extra=1).status_code == 422


def test_the_same_idempotency_key_returns_the_same_run(api: ApiClient) -> None:
    workflow = create_workflow(api)
    headers = {"Idempotency-Key": "order-1234"}
    first = api.post(
        f"/api/v1/workflows/{workflow['id']}/execute",
        json={"input_data": {"text": "a"}},
        headers=headers,
    )
    again = api.post(
        f"/api/v1/workflows/{workflow['id']}/execute",
        json={"input_data": {"text": "a"}},
        headers=headers,
    )
    assert first.status_code == again.status_code == 202
    assert again.json()["run_id"] == first.json()["run_id"]
    assert again.json()["replayed"] is True and again.headers["Idempotent-Replayed"] == "true"
    other = api.post(
        f"/api/v1/workflows/{workflow['id']}/execute",
        json={"input_data": {"text": "a"}},
        headers={"Idempotency-Key": "order-9"},
    )
    assert other.json()["run_id"] != first.json()["run_id"]
    wait_for_run(api, first.json()["run_id"])
    assert api.get("/api/v1/runs", params={"workflow_id": workflow["id"]}).json()["total"] == 2


def test_an_inactive_workflow_or_an_inactive_agent_cannot_run(api: ApiClient) -> None:
    workflow = create_workflow(api)
    api.put(f"/api/v1/workflows/{workflow['id']}", json={"status": "inactive"})
    refused = execute(api, workflow["id"], input_data={"text": "x"})
    assert refused.status_code == 409 and "inactive" in refused.json()["detail"]
    api.put(f"/api/v1/workflows/{workflow['id']}", json={"status": "active"})
    echo = next(a for a in api.get("/api/v1/agents").json()["items"] if a["name"] == "echo")
    api.put(f"/api/v1/agents/{echo['id']}", json={"status": "inactive"})
    refused = execute(api, workflow["id"], input_data={"text": "x"})
    assert refused.status_code == 409 and "agent 'echo' is inactive" in refused.json()["detail"]
    api.delete(f"/api/v1/workflows/{workflow['id']}")
    assert execute(api, workflow["id"], input_data={"text": "x"}).status_code == 409


def test_an_execute_on_a_workflow_another_process_deactivated_is_refused(
    api: ApiClient, database: Database
) -> None:
    """The API decides a run request from its cache on the event loop; what it read is
    checked when the run is recorded, so a change made by another API process is seen (409),
    and the run request is decided again once it is undone (202)."""
    workflow = create_workflow(api)
    assert execute(api, workflow["id"], input_data={"text": "x"}).status_code == 202  # cached
    other = EventStore(database, pool_size=2, settings=EventStoreSettings())
    meta = EventMetadata.system("other-process")
    try:
        inactive = UpdateWorkflow(workflow_id=UUID(workflow["id"]), changes={}, status="inactive")
        update_workflow(other, inactive, meta)

        refused = execute(api, workflow["id"], input_data={"text": "x"})
        assert refused.status_code == 409 and "inactive" in refused.json()["detail"]

        active = UpdateWorkflow(workflow_id=UUID(workflow["id"]), changes={}, status="active")
        update_workflow(other, active, meta)
    finally:
        other.close()
    assert execute(api, workflow["id"], input_data={"text": "x"}).status_code == 202
    assert api.get("/api/v1/runs", params={"workflow_id": workflow["id"]}).json()["total"] == 2


def test_cancelling_a_slow_run_and_then_cancelling_it_again(
    api: ApiClient, agent_urls: dict[str, str]
) -> None:
    workflow = create_workflow(
        api,
        name="slow-one",
        start_step="wait",
        steps={"wait": {"agent_name": "slow", "input_mapping": {"delay_s": 30}}},
        input_schema=None,
        variables=None,
    )
    run_id = execute(api, workflow["id"]).json()["run_id"]
    wait_for_run(api, run_id, until={"RUNNING"})
    eventually(
        lambda: get_stats(agent_urls["slow"]),
        lambda stats: stats["in_flight"] >= 1,
        what="the slow agent to be working on the step",
        timeout_s=10,
    )
    cancelled = api.post(f"/api/v1/runs/{run_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert cancelled.json()["cancelled_by"] == "admin-env"
    again = api.post(f"/api/v1/workflows/executions/{run_id}/cancel")
    assert again.status_code == 409 and "already CANCELLED" in again.json()["detail"]
    eventually(
        lambda: get_stats(agent_urls["slow"]),
        lambda stats: stats["canceled"] >= 1,
        what="the agent's task to be cancelled",
        timeout_s=20,
    )
    steps = api.get(f"/api/v1/runs/{run_id}/steps").json()
    assert steps[0]["status"] == "CANCELLED"
    assert totals_by_status(api, workflow["id"]) == {
        "PENDING": 0, "RUNNING": 0, "CANCELLED": 1, "FAILED": 0, "SUCCEEDED": 0,
    }  # fmt: skip


def test_a_failed_run_retried_over_http_resumes_from_the_failed_step(
    api: ApiClient, agent_urls: dict[str, str]
) -> None:
    reset_stats(agent_urls["flaky"], fail_first=50)
    workflow = create_workflow(
        api,
        name="flaky-one",
        steps={
            "shape": {
                "agent_name": "transform",
                "next_step": "deliver",
                "input_mapping": {"text": "$.input.text"},
            },
            "deliver": {
                "agent_name": "flaky",
                "input_mapping": {"shout": "$.steps.shape.output.text"},
            },
        },
    )
    run_id = execute(api, workflow["id"], input_data={"text": "again"}).json()["run_id"]
    failed = wait_for_run(api, run_id)
    assert failed["status"] == "FAILED" and failed["failed_step"] == "deliver"
    assert totals_by_status(api, workflow["id"])["FAILED"] == 1
    assert api.post(f"/api/v1/runs/{run_id}/retry").status_code == 202
    reset_stats(agent_urls["flaky"], fail_first=0)
    transform_calls = get_stats(agent_urls["transform"])["calls"]
    run = wait_for_run(api, run_id)
    assert run["status"] == "SUCCEEDED" and run["retry_count"] == 1
    assert totals_by_status(api, workflow["id"]) == {
        "PENDING": 0, "RUNNING": 0, "CANCELLED": 0, "FAILED": 0, "SUCCEEDED": 1,
    }  # fmt: skip
    assert get_stats(agent_urls["transform"])["calls"] == transform_calls
    retry_again = api.post(f"/api/v1/runs/{run_id}/retry")
    assert (
        retry_again.status_code == 409
        and "only FAILED or CANCELLED" in retry_again.json()["detail"]
    )
    logs = api.get(
        f"/api/v1/runs/{run_id}/logs", params={"level": "WARNING", "step_id": "deliver"}
    ).json()
    assert logs["total"] >= 1 and {e["level"] for e in logs["items"]} <= {"WARNING", "ERROR"}


def test_a_dry_run_traces_the_steps_with_mocks_and_records_nothing(
    api: ApiClient, runtime: Runtime, agent_urls: dict[str, str]
) -> None:
    workflow = create_workflow(api)
    head = runtime.store.head()
    calls = get_stats(agent_urls["transform"])["calls"]
    response = api.post(
        f"/api/v1/workflows/{workflow['id']}/test",
        json={"input_data": {"text": "dry"}, "mock_outputs": {"shape": {"text": "MOCKED"}}},
    )
    assert response.status_code == 200, response.text
    trace = response.json()
    assert trace["status"] == "SUCCEEDED"
    assert [(s["order"], s["step_id"], s["output_source"]) for s in trace["steps"]] == [
        (1, "shape", "mock"),
        (2, "deliver", "echo"),
    ]
    assert trace["steps"][1]["input_data"] == {"shout": "MOCKED", "tag": "v1"}
    assert trace["output_data"] == {"shout": "MOCKED", "tag": "v1"}
    assert runtime.store.head() == head, "a dry run records nothing"
    assert get_stats(agent_urls["transform"])["calls"] == calls, "a dry run calls no agent"
    bad = api.post(f"/api/v1/workflows/{workflow['id']}/test", json={"input_data": {}})
    assert bad.status_code == 422


def test_runs_list_filters_sorts_and_paginates(api: ApiClient) -> None:
    first = create_workflow(api, name="one")
    second = create_workflow(api, name="two")
    ids = [
        execute(api, wf["id"], input_data={"text": str(n)}).json()["run_id"]
        for n, wf in enumerate([first, second, first])
    ]
    for run_id in ids:
        wait_for_run(api, run_id)
    everything = api.get("/api/v1/runs").json()
    assert [r["id"] for r in everything["items"]] == list(reversed(ids)), "newest first"
    assert api.get("/api/v1/runs", params={"workflow_id": first["id"]}).json()["total"] == 2
    assert (
        api.get("/api/v1/runs", params={"status": "SUCCEEDED", "triggered_by": "admin-env"}).json()[
            "total"
        ]
        == 3
    )
    assert api.get("/api/v1/runs", params={"status": "FAILED"}).json()["total"] == 0
    assert api.get("/api/v1/runs", params={"status": "SUCCEEDED"}).json()["total"] == 3
    assert everything["total"] == 3 and everything["total_pages"] == 1
    assert totals_by_status(api, first["id"])["SUCCEEDED"] == 2
    created = everything["items"][1]["created_at"]
    window = api.get("/api/v1/runs", params={"created_from": created, "created_to": created}).json()
    assert window["total"] == 0, "created_to is exclusive"
    since = api.get("/api/v1/runs", params={"created_from": created}).json()
    assert since["total"] == 2
    page = api.get(
        "/api/v1/runs", params={"sort": "workflow_name", "order": "asc", "page": 2, "page_size": 2}
    ).json()
    assert page["total_pages"] == 2 and [r["workflow_name"] for r in page["items"]] == ["two"]
    for params in (
        {"status": "DONE"},
        {"created_from": "yesterday"},
        {"sort": "nope"},
        {"workflow_id": "x"},
    ):
        assert api.get("/api/v1/runs", params=params).status_code == 422, params
    assert api.get("/api/v1/runs/00000000-0000-0000-0000-000000000000").status_code == 404
    assert api.get("/api/v1/runs/00000000-0000-0000-0000-000000000000/steps").status_code == 404
    assert api.post("/api/v1/runs/00000000-0000-0000-0000-000000000000/cancel").status_code == 404
