"""What operators see of runs: one trace from the execute request to the agent calls, the run
and step metrics, and executors sharing runs through a Kafka consumer group."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowledger.http.app import create_app
from flowledger.kafka.embedded import EmbeddedBroker
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from flowledger.runtime.workers import InProcessWorkers
from tests.conftest import TEST_ENVIRONMENT, make_settings
from tests.support.agents import get_stats, reset_stats, running_all
from tests.support.http import ApiClient
from tests.support.polling import eventually
from tests.support.tracing import spans  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


@pytest.fixture(scope="module")
def agent_urls() -> Iterator[dict[str, str]]:
    with running_all() as urls:
        yield urls


def register_agents(api: ApiClient, urls: dict[str, str]) -> None:
    for name, url in urls.items():
        reset_stats(url, **({"fail_first": 0} if name == "flaky" else {}))
        body = {
            "name": name,
            "url": url,
            "retry_config": {"max_retries": 2, "initial_delay_ms": 100},
        }
        assert api.post("/api/v1/agents", json=body).status_code == 201


def create_workflow(api: ApiClient, steps: dict[str, Any], name: str = "observed") -> str:
    response = api.post(
        "/api/v1/workflows", json={"name": name, "start_step": next(iter(steps)), "steps": steps}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def run_to_end(
    api: ApiClient, workflow_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    accepted = api.post(f"/api/v1/workflows/{workflow_id}/execute", json={}, headers=headers or {})
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    run: dict[str, Any] = eventually(
        lambda: api.get(f"/api/v1/runs/{run_id}").json(),
        lambda run: run["status"] in TERMINAL,
        what=f"run {run_id} to finish",
        timeout_s=30,
        describe=lambda run: f"status {run['status']}",
    )
    return run


@pytest.fixture
def api(settings: Settings, runtime: Runtime, agent_urls: dict[str, str]) -> Iterator[ApiClient]:
    app = create_app(settings, runtime=runtime, workers=("projections", "executor"))
    with ApiClient(app) as client:
        register_agents(client, agent_urls)
        yield client


TWO_STEPS = {
    "first": {"agent_name": "echo", "next_step": "second", "input_mapping": {"x": 1}},
    "second": {"agent_name": "transform", "input_mapping": {"text": "done"}},
}


def test_one_trace_follows_a_run_from_the_execute_request_to_every_agent_call(
    api: ApiClient,
    spans: InMemorySpanExporter,  # noqa: F811  (the fixture)
) -> None:
    workflow_id = create_workflow(api, TWO_STEPS)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    run = run_to_end(
        api, workflow_id, headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    )
    assert run["status"] == "SUCCEEDED"
    finished = spans.get_finished_spans()
    calls = [s for s in finished if s.name.startswith("agent call")]
    assert sorted(s.name for s in calls) == ["agent call echo", "agent call transform"]
    assert {format(s.context.trace_id, "032x") for s in calls} == {trace_id}
    drive = [s for s in finished if s.name == "drive run"]
    assert drive and format(drive[0].context.trace_id, "032x") == trace_id
    execute = [s for s in finished if "execute" in s.name and s.kind.name == "SERVER"]
    assert execute and format(execute[0].context.trace_id, "032x") == trace_id


def test_metrics_count_runs_by_status_step_durations_agent_errors_and_retries(
    api: ApiClient, agent_urls: dict[str, str]
) -> None:
    reset_stats(agent_urls["flaky"], fail_first=1)
    workflow_id = create_workflow(
        api, {"only": {"agent_name": "flaky", "input_mapping": {"x": 1}}}, name="flaky-metrics"
    )
    assert run_to_end(api, workflow_id)["status"] == "SUCCEEDED"
    text = api.get("/metrics").text
    assert 'flowledger_runs{status="SUCCEEDED"} 1.0' in text
    assert 'flowledger_runs{status="FAILED"} 0.0' in text
    assert 'flowledger_step_duration_seconds_count{agent="flaky",status="SUCCEEDED"}' in text
    assert 'flowledger_agent_call_errors_total{agent="flaky",kind="task_failed"}' in text
    assert 'flowledger_agent_call_retries_total{agent="flaky"}' in text


def test_two_executors_in_one_kafka_group_share_runs_and_never_run_one_twice(
    database: Database, kafka_broker: EmbeddedBroker, agent_urls: dict[str, str]
) -> None:
    kafka = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "FLOWLEDGER_KAFKA_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}",
        "FLOWLEDGER_KAFKA_IDEMPOTENCE": "false",
        "FLOWLEDGER_KAFKA_FAST_GROUPS": "true",
        "FLOWLEDGER_EXECUTOR_GROUP": f"executors-{uuid.uuid4().hex[:6]}",
        "FLOWLEDGER_EXECUTOR_SWEEP_INTERVAL": "30",  # so the group, not the sweep, finds runs
    }
    settings = make_settings(
        database,
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        extra={**TEST_ENVIRONMENT, **kafka},
    )
    first = Runtime.open(settings, database=database, migrate=False)
    second = Runtime.open(settings, database=database, migrate=False)
    app = create_app(settings, runtime=first, workers=("projections", "relay", "executor"))
    other_executor = InProcessWorkers(second, ("executor",))
    other_executor.start()
    try:
        with ApiClient(app) as api:
            register_agents(api, agent_urls)
            workflow_id = create_workflow(api, TWO_STEPS, name="shared")
            time.sleep(2)  # both consumers join the group before the runs are requested
            runs = [run_to_end(api, workflow_id) for _ in range(6)]
            steps = [api.get(f"/api/v1/runs/{r['id']}/steps").json() for r in runs]
    finally:
        other_executor.stop()
        second.close_sync()
        first.close_sync()
    assert {r["status"] for r in runs} == {"SUCCEEDED"}
    assert all(s["attempts"] == 1 for run_steps in steps for s in run_steps)
    assert get_stats(agent_urls["echo"])["calls"] == 6
    assert get_stats(agent_urls["transform"])["calls"] == 6
