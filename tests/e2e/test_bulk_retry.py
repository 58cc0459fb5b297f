"""Retries previewed, then done: the real app with projections and the executor in-process, the
sample agents as real A2A servers. A retry plan must be what ``/retry`` then redoes, and a bulk
retry must leave room for new runs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from flowledger.commands.runs import pin_agents
from flowledger.domain.workflows import Workflow
from flowledger.eventlog.store import EventMetadata
from flowledger.http.app import create_app
from flowledger.projections.tables import runs
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.conftest import TEST_ENVIRONMENT, make_settings
from tests.support.agents import get_stats, reset_stats, running_all
from tests.support.http import ApiClient
from tests.support.polling import eventually
from tests.support.runs import run_in_state

pytestmark = pytest.mark.e2e
CEILING = 3
SLOW_RUNS = 30


@pytest.fixture(scope="module")
def agent_urls() -> Iterator[dict[str, str]]:
    with running_all() as urls:
        yield urls


@pytest.fixture
def settings(database: Database) -> Settings:
    return make_settings(
        database,
        extra={
            **TEST_ENVIRONMENT,
            "FLOWLEDGER_BULK_RATE": "1000",
            "FLOWLEDGER_BULK_MAX_ACTIVE_RUNS": str(CEILING),
        },
    )


@pytest.fixture
def api(settings: Settings, runtime: Runtime, agent_urls: dict[str, str]) -> Iterator[ApiClient]:
    app = create_app(settings, runtime=runtime, workers=("projections", "executor"))
    with ApiClient(app) as client:
        for name, url in agent_urls.items():
            reset_stats(url, **({"fail_first": 0} if name == "flaky" else {}))
            retry = {"max_retries": 0} if name == "flaky" else {"max_retries": 2}
            response = client.post(
                "/api/v1/agents",
                json={"name": name, "url": url, "retry_config": {**retry, "initial_delay_ms": 100}},
            )
            assert response.status_code == 201, response.text
        yield client


def wait_for_run(api: ApiClient, run_id: str) -> dict[str, Any]:
    return eventually(  # type: ignore[no-any-return]
        lambda: api.get(f"/api/v1/runs/{run_id}").json(),
        lambda run: run["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"),
        what=f"run {run_id} to finish",
    )


def attempts_by_step(api: ApiClient, run_id: str) -> dict[str, int]:
    return {s["step_id"]: s["attempts"] for s in api.get(f"/api/v1/runs/{run_id}/steps").json()}


def test_the_retry_plan_is_what_retry_then_redoes(
    api: ApiClient, agent_urls: dict[str, str]
) -> None:
    created = api.post(
        "/api/v1/workflows",
        json={
            "name": "deliver-news",
            "start_step": "shape",
            "steps": {
                "shape": {"agent_name": "transform", "next_step": "deliver",
                          "input_mapping": {"text": "$.input.text"}},
                "deliver": {"agent_name": "flaky", "next_step": "report",
                            "input_mapping": {"text": "$.steps.shape.output.text"}},
                "report": {"agent_name": "echo",
                           "input_mapping": {"loud": "$.steps.deliver.output.text"}},
            },
        },
    )  # fmt: skip
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    reset_stats(agent_urls["flaky"], fail_first=1)
    run_id = api.post(
        f"/api/v1/workflows/{workflow_id}/execute", json={"input_data": {"text": "news"}}
    ).json()["run_id"]
    assert wait_for_run(api, run_id)["status"] == "FAILED"
    # A new version meanwhile: the retry keeps the pinned one.
    api.put(f"/api/v1/workflows/{workflow_id}", json={"variables": {"unused": 1}})
    before = attempts_by_step(api, run_id)
    calls = {name: get_stats(url)["calls"] for name, url in agent_urls.items()}

    plan = api.get(f"/api/v1/runs/{run_id}/retry-plan").json()
    assert (plan["retryable"], plan["refusal"], plan["retry_number"]) == (True, None, 1)
    assert plan["workflow_version"] == 1
    assert [(s["step_id"], s["status"]) for s in plan["rerun_steps"]] == [
        ("deliver", "FAILED"),
        ("report", "SKIPPED"),
    ]
    assert [s["step_id"] for s in plan["reused_steps"]] == ["shape"]
    assert plan["reused_steps"][0]["output_data"]["text"] == "NEWS"
    assert [(a["agent_name"], a["url"], a["current_status"]) for a in plan["agents"]] == [
        ("flaky", agent_urls["flaky"], "active"),
        ("echo", agent_urls["echo"], "active"),
    ]
    assert plan["warnings"] == []
    dry = api.post("/api/v1/runs/bulk/retry", json={"run_ids": [run_id], "dry_run": True}).json()
    assert dry["runs"]["items"][0]["retry_plan"] == plan, "the bulk preview plans the same"

    retried = api.post(f"/api/v1/runs/{run_id}/retry")
    assert retried.status_code == 202, retried.text
    run = wait_for_run(api, run_id)
    assert (run["status"], run["workflow_version"]) == ("SUCCEEDED", 1)
    after = attempts_by_step(api, run_id)
    redone = {step for step in after if after[step] > before[step]}
    assert redone == {s["step_id"] for s in plan["rerun_steps"]}
    called = {name: get_stats(url)["calls"] - calls[name] for name, url in agent_urls.items()}
    assert called == {"transform": 0, "flaky": 1, "echo": 1, "slow": 0}

    again = api.get(f"/api/v1/runs/{run_id}/retry-plan").json()
    assert again["retryable"] is False
    assert "is SUCCEEDED; only FAILED or CANCELLED runs retry" in again["refusal"]
    assert api.post(f"/api/v1/runs/{run_id}/retry").json()["detail"] == again["refusal"]


def test_new_runs_keep_flowing_while_a_bulk_retry_works_through_its_runs(
    api: ApiClient, runtime: Runtime
) -> None:
    slowpoke = api.post(
        "/api/v1/workflows",
        json={
            "name": "slowpoke",
            "steps": {
                "warm": {"agent_name": "echo", "input_mapping": {"n": "$.input.n"}},
                "nap": {"agent_name": "slow", "depends_on": ["warm"],
                        "input_mapping": {"delay_s": 0.5}},
            },
        },
    ).json()  # fmt: skip
    quick = api.post(
        "/api/v1/workflows",
        json={"name": "quick", "steps": {"only": {"agent_name": "echo"}}},
    ).json()
    workflow = runtime.store.get(Workflow, uuid.UUID(slowpoke["id"]))
    plan = workflow.plan_of(1)
    agents = {name: b.to_dict() for name, b in pin_agents(runtime.store, plan).items()}
    for n in range(SLOW_RUNS):  # failed at their slow step (recorded in that state at once)
        run = run_in_state(
            "FAILED", workflow_id=workflow.id, plan=plan, agents=agents, input_data={"n": n}
        )
        runtime.store.record(run, metadata=EventMetadata.system("seeder"))
    eventually(
        lambda: api.get("/api/v1/runs", params={"workflow_id": slowpoke["id"]}).json()["total"],
        lambda total: total == SLOW_RUNS,
        what="the failed runs in the runs list",
    )

    busiest = 0
    watching = threading.Event()

    def watch() -> None:
        nonlocal busiest
        active = select(func.count()).where(
            runs.c.workflow_id == workflow.id, runs.c.status.in_(["PENDING", "RUNNING"])
        )
        while not watching.wait(0.02):
            with runtime.engine.connect() as conn:
                busiest = max(busiest, conn.execute(active).scalar_one())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        accepted = api.post(
            "/api/v1/runs/bulk/retry", json={"workflow_id": slowpoke["id"], "status": "FAILED"}
        )
        assert accepted.status_code == 202, accepted.text
        operation_id = accepted.json()["id"]
        for n in range(2):
            run_id = api.post(
                f"/api/v1/workflows/{quick['id']}/execute", json={"input_data": {"n": n}}
            ).json()["run_id"]
            assert wait_for_run(api, run_id)["status"] == "SUCCEEDED"
        meanwhile = api.get(f"/api/v1/runs/bulk/{operation_id}").json()
        assert meanwhile["status"] == "RUNNING" and meanwhile["pending"] > 0, (
            "the new runs finished while the bulk retry was still working through its runs"
        )
        operation = eventually(
            lambda: api.get(f"/api/v1/runs/bulk/{operation_id}").json(),
            lambda op: op["status"] == "COMPLETED",
            what="the bulk retry to complete",
            timeout_s=90,
        )
    finally:
        watching.set()
        watcher.join()
    assert (operation["done"], operation["skipped"], operation["failed"]) == (SLOW_RUNS, 0, 0)
    assert 0 < busiest <= CEILING, f"at most {CEILING} retried runs waited or ran at once"
    eventually(
        lambda: api.get(
            "/api/v1/runs", params={"workflow_id": slowpoke["id"], "status": "SUCCEEDED"}
        ).json()["total"],
        lambda total: total == SLOW_RUNS,
        what="every retried run to succeed",
        timeout_s=60,
    )
