"""kill -9 of the executor in the middle of a map and of a wait, end to end: the API in-process,
the executor as `flowledger worker executor` in its own process, the sample agents as real A2A
servers. A new executor resumes the run: the items that succeeded are not called again, the
wait keeps the time it was given when it began."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from flowledger.domain.runs import Run
from flowledger.http.app import create_app
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
    app = create_app(settings, runtime=runtime, workers=("projections",))
    with ApiClient(app) as client:
        for name, url in agent_urls.items():
            reset_stats(url, **({"fail_first": 0} if name == "flaky" else {}))
            body = {"name": name, "url": url, "retry_config": {"max_retries": 0}}
            assert client.post("/api/v1/agents", json=body).status_code == 201
        yield client


def executor_process(runtime: Runtime, **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "DATABASE_URL": runtime.database.libpq_url,
        "FLOWLEDGER_LOG_LEVEL": "WARNING",
        "FLOWLEDGER_EXECUTOR_SWEEP_INTERVAL": "0.5",
        "FLOWLEDGER_FOLLOWER_IDLE_WAIT": "0.1",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flowledger", "worker", "executor"], env=environment
    )


def kill_9(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def start(api: ApiClient, steps: dict[str, Any], **input_data: Any) -> str:
    created = api.post("/api/v1/workflows", json={"name": "recover", "steps": steps})
    assert created.status_code == 201, created.text
    accepted = api.post(
        f"/api/v1/workflows/{created.json()['id']}/execute", json={"input_data": input_data}
    )
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["run_id"])


def steps_of(api: ApiClient, run_id: str) -> dict[str, dict[str, Any]]:
    return {s["step_id"]: s for s in api.get(f"/api/v1/runs/{run_id}/steps").json()}


def finished(api: ApiClient, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = eventually(
        lambda: api.get(f"/api/v1/runs/{run_id}").json(),
        lambda run: run["status"] in TERMINAL,
        what=f"run {run_id} to finish",
        timeout_s=60,
        describe=lambda run: f"status {run['status']}",
    )
    return run


def test_kill_9_in_the_middle_of_a_map_resumes_without_calling_finished_items_again(
    api: ApiClient, runtime: Runtime, agent_urls: dict[str, str]
) -> None:
    run_id = start(
        api,
        {
            "each": {
                "type": "foreach",
                "items": "input.items",
                "max_parallel": 2,
                "steps": {
                    "nap": {"agent_name": "slow", "input_mapping": {"delay_s": 1, "n": "$.item"}}
                },
            }
        },
        items=list(range(6)),
    )
    first = executor_process(runtime)
    try:
        done_before = eventually(
            lambda: {k for k, s in steps_of(api, run_id).items() if s["status"] == "SUCCEEDED"},
            lambda done: len(done) >= 2,
            what="two items to succeed",
            timeout_s=30,
        )
    finally:
        kill_9(first)
    assert len(done_before) < 6, "killed in the middle of the map"
    second = executor_process(runtime)
    try:
        run = finished(api, run_id)
    finally:
        second.terminate()
        second.wait(timeout=20)
    assert run["status"] == "SUCCEEDED", run
    assert [item["n"] for item in run["output_data"]] == list(range(6))
    stored = runtime.store.get(Run, run_id)  # type: ignore[arg-type]
    for key in done_before:
        assert [a.outcome for a in stored.steps[key].attempts] == ["succeeded"], key
    items = [stored.steps[f"each[{i}].nap"] for i in range(6)]
    assert all(sum(a.outcome == "succeeded" for a in s.attempts) == 1 for s in items)
    interrupted = sum(a.outcome == "interrupted" for s in items for a in s.attempts)
    assert interrupted <= 2, "only the calls in flight at the kill"
    assert get_stats(agent_urls["slow"])["calls"] == 6 + interrupted


@pytest.mark.parametrize(
    "park_after", [pytest.param("0.3", id="parked"), pytest.param("60", id="held by its driver")]
)
def test_kill_9_in_the_middle_of_a_wait_keeps_the_time_it_was_given(
    api: ApiClient, runtime: Runtime, agent_urls: dict[str, str], park_after: str
) -> None:
    run_id = start(
        api,
        {
            "first": {"agent_name": "echo", "input_mapping": {"x": 1}},
            "rest": {"type": "wait", "depends_on": ["first"], "duration_ms": 3000},
            "then": {"agent_name": "echo", "depends_on": ["rest"], "input_mapping": {"x": 2}},
        },
    )
    first = executor_process(runtime, FLOWLEDGER_EXECUTOR_PARK_AFTER=park_after)
    try:
        waiting = eventually(
            lambda: steps_of(api, run_id)["rest"],
            lambda step: step["status"] == "WAITING",
            what="the wait to begin",
            timeout_s=30,
        )
        if park_after != "60":
            eventually(
                lambda: api.get(f"/api/v1/runs/{run_id}").json()["status"],
                lambda status: status == "WAITING",
                what="the run to be parked",
            )
    finally:
        kill_9(first)
    second = executor_process(runtime, FLOWLEDGER_EXECUTOR_PARK_AFTER=park_after)
    try:
        run = finished(api, run_id)
    finally:
        second.terminate()
        second.wait(timeout=20)
    assert run["status"] == "SUCCEEDED", run
    rest = steps_of(api, run_id)["rest"]
    assert rest["input_data"] == {"until": waiting["waiting_until"].replace("Z", "+00:00")}
    assert rest["completed_at"] >= waiting["waiting_until"]
    began = [e for e in runtime.store.events.get(run["id"]) if isinstance(e, Run.WaitStarted)]
    assert len(began) == 1, "the restart did not begin the wait again"
    assert get_stats(agent_urls["echo"])["calls"] == 2
