"""Branches, maps, loops, waits, signals, sub-workflows and pauses over HTTP, end to end: the
real app with projections and the executor in-process, the sample agents as real A2A servers
in their own process. (Killing the executor mid-map and mid-wait: test_control_flow_recovery.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flowledger.http.app import create_app
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.conftest import TEST_ENVIRONMENT
from tests.support.agents import get_stats, reset_stats, running_all
from tests.support.http import ApiClient
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
ENVIRONMENT = {
    **TEST_ENVIRONMENT,
    "FLOWLEDGER_EXECUTOR_PARK_AFTER": "0.3",
    "MAX_TOTAL_OPERATIONS": "40",
}


@pytest.fixture(scope="module")
def agent_urls() -> Iterator[dict[str, str]]:
    with running_all() as urls:
        yield urls


@pytest.fixture
def api(settings: Settings, runtime: Runtime, agent_urls: dict[str, str]) -> Iterator[ApiClient]:
    settings = settings.with_overrides(extra=ENVIRONMENT)
    app = create_app(settings, runtime=runtime, workers=("projections", "executor"))
    with ApiClient(app) as client:
        for name, url in agent_urls.items():
            reset_stats(url, **({"fail_first": 0} if name == "flaky" else {}))
            response = client.post(
                "/api/v1/agents",
                json={
                    "name": name,
                    "url": url,
                    "retry_config": {"max_retries": 0, "initial_delay_ms": 100},
                },
            )
            assert response.status_code == 201, response.text
        yield client


def create(api: ApiClient, name: str, steps: dict[str, Any], **fields: Any) -> str:
    response = api.post("/api/v1/workflows", json={"name": name, "steps": steps, **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def start(api: ApiClient, workflow_id: str, **input_data: Any) -> str:
    response = api.post(f"/api/v1/workflows/{workflow_id}/execute", json={"input_data": input_data})
    assert response.status_code == 202, response.text
    return str(response.json()["run_id"])


def run_of(api: ApiClient, run_id: str) -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/api/v1/runs/{run_id}").json()
    return body


def wait_for(
    api: ApiClient, run_id: str, until: set[str] = TERMINAL, timeout: float = 30
) -> dict[str, Any]:
    run: dict[str, Any] = eventually(
        lambda: run_of(api, run_id),
        lambda run: run.get("status") in until,
        what=f"run {run_id} to be {sorted(until)}",
        timeout_s=timeout,
        describe=lambda run: f"status {run.get('status')}, error {run.get('error_message')}",
    )
    return run


def steps_of(api: ApiClient, run_id: str) -> dict[str, dict[str, Any]]:
    return {s["step_id"]: s for s in api.get(f"/api/v1/runs/{run_id}/steps").json()}


def statuses(api: ApiClient, run_id: str) -> dict[str, str]:
    return {key: step["status"] for key, step in steps_of(api, run_id).items()}


# ---------------------------------------------------------------------------- branches


def test_a_branch_calls_the_path_its_condition_picks_and_skips_the_other(
    api: ApiClient, agent_urls: dict[str, str]
) -> None:
    workflow = create(
        api,
        "route-by-length",
        {
            "measure": {"agent_name": "transform", "input_mapping": {"text": "$.input.text"}},
            "long": {
                "type": "if",
                "depends_on": ["measure"],
                "condition": "steps.measure.output.word_count > `3`",
                "then": "summarise",
                "else": "keep",
            },
            "summarise": {
                "agent_name": "slow",
                "input_mapping": {"delay_s": 0, "n": "$.steps.measure.output.word_count"},
            },
            "keep": {
                "agent_name": "echo",
                "input_mapping": {"text": "$.steps.measure.output.text"},
            },
            "done": {
                "agent_name": "echo",
                "depends_on": ["summarise", "keep"],
                "input_mapping": {
                    "result": {"$expr": "steps.summarise.output || steps.keep.output"}
                },
            },
        },
    )
    short = wait_for(api, start(api, workflow, text="two words"))
    assert short["status"] == "SUCCEEDED", short
    assert short["output_data"] == {"result": {"text": "TWO WORDS"}}
    steps = steps_of(api, short["id"])
    assert {k: s["status"] for k, s in steps.items()} == {
        "measure": "SUCCEEDED",
        "long": "SUCCEEDED",
        "summarise": "SKIPPED",
        "keep": "SUCCEEDED",
        "done": "SUCCEEDED",
    }
    assert steps["long"]["kind"] == "if" and steps["long"]["output_data"]["case"] == "else"
    assert get_stats(agent_urls["slow"])["calls"] == 0, "the path not taken called nothing"

    longer = wait_for(api, start(api, workflow, text="one two three four five"))
    assert longer["output_data"] == {"result": {"delay_s": 0, "n": 5}}
    logs = api.get(f"/api/v1/runs/{longer['id']}/logs", params={"step_id": "long"}).json()
    assert "chose case 'then'" in logs["items"][0]["message"]


def test_a_switch_follows_the_case_its_value_names(api: ApiClient) -> None:
    workflow = create(
        api,
        "route-by-region",
        {
            "route": {
                "type": "switch",
                "expression": "input.region",
                "cases": {"eu": "eu", "us": "us"},
                "default": "elsewhere",
            },
            "eu": {"agent_name": "echo", "input_mapping": {"to": "eu"}},
            "us": {"agent_name": "echo", "input_mapping": {"to": "us"}},
            "elsewhere": {"agent_name": "echo", "input_mapping": {"to": "$.input.region"}},
        },
    )
    assert wait_for(api, start(api, workflow, region="us"))["output_data"] == {"to": "us"}
    assert wait_for(api, start(api, workflow, region="mars"))["output_data"] == {"to": "mars"}


# ---------------------------------------------------------------------------- maps


def test_a_map_calls_the_agent_once_per_item_and_outputs_the_results_in_order(
    api: ApiClient, agent_urls: dict[str, str]
) -> None:
    workflow = create(
        api,
        "shout-each",
        {
            "each": {
                "type": "foreach",
                "items": "input.words",
                "max_parallel": 2,
                "steps": {
                    "shout": {
                        "agent_name": "transform",
                        "input_mapping": {"text": "$.item", "at": "$.index"},
                    }
                },
            }
        },
    )
    run = wait_for(api, start(api, workflow, words=["a", "bb", "ccc", "dd", "e"]))
    assert run["status"] == "SUCCEEDED", run
    assert [item["text"] for item in run["output_data"]] == ["A", "BB", "CCC", "DD", "E"]
    assert [item["at"] for item in run["output_data"]] == [0, 1, 2, 3, 4]
    assert get_stats(agent_urls["transform"])["calls"] == 5
    steps = api.get(f"/api/v1/runs/{run['id']}/steps").json()
    assert [s["step_id"] for s in steps] == [
        "each",
        *sorted((f"each[{i}].shout" for i in range(5)), key=lambda k: steps_order(steps, k)),
    ]
    each = steps[0]
    assert (each["kind"], each["items"], each["status"]) == ("foreach", 5, "SUCCEEDED")
    item = next(s for s in steps if s["step_id"] == "each[3].shout")
    assert (item["parent_step_id"], item["index"], item["definition_step_id"]) == (
        "each",
        3,
        "shout",
    )


def steps_order(steps: list[dict[str, Any]], key: str) -> int:
    return [s["step_id"] for s in steps].index(key)


def test_a_map_that_continues_on_errors_keeps_going_past_a_failed_item(
    api: ApiClient, agent_urls: dict[str, str]
) -> None:
    reset_stats(agent_urls["flaky"], fail_first=1)
    workflow = create(
        api,
        "deliver-each",
        {
            "each": {
                "type": "foreach",
                "items": "input.to",
                "max_parallel": 1,
                "continue_on_error": True,
                "steps": {"deliver": {"agent_name": "flaky", "input_mapping": {"to": "$.item"}}},
            }
        },
    )
    run = wait_for(api, start(api, workflow, to=["ann", "bob", "cy"]))
    assert run["status"] == "SUCCEEDED", run
    first, *rest = run["output_data"]
    assert "simulated failure" in first["error"]
    assert rest == [{"to": "bob"}, {"to": "cy"}]
    assert statuses(api, run["id"])["each[0].deliver"] == "FAILED"


def test_a_retry_inside_a_map_calls_only_what_did_not_succeed(
    api: ApiClient, agent_urls: dict[str, str]
) -> None:
    reset_stats(agent_urls["flaky"], fail_first=1)
    workflow = create(
        api,
        "prepare-and-deliver-each",
        {
            "each": {
                "type": "foreach",
                "items": "input.to",
                "max_parallel": 1,
                "steps": {
                    "prepare": {"agent_name": "echo", "input_mapping": {"to": "$.item"}},
                    "deliver": {
                        "agent_name": "flaky",
                        "depends_on": ["prepare"],
                        "input_mapping": {"to": "$.steps.prepare.output.to"},
                    },
                },
            }
        },
    )
    run_id = start(api, workflow, to=["ann", "bob", "cy"])
    failed = wait_for(api, run_id)
    assert (failed["status"], failed["failed_step"]) == ("FAILED", "each[0].deliver")
    assert api.post(f"/api/v1/runs/{run_id}/retry").status_code == 202
    run = wait_for(api, run_id)
    assert run["status"] == "SUCCEEDED", run
    assert run["output_data"] == [{"to": "ann"}, {"to": "bob"}, {"to": "cy"}]
    assert get_stats(agent_urls["echo"])["calls"] == 3, "each[0].prepare was not called again"
    assert get_stats(agent_urls["flaky"])["calls"] == 4
    steps = steps_of(api, run_id)
    assert [a["outcome"] for a in steps["each[0].deliver"]["attempt_history"]] == [
        "failed",
        "succeeded",
    ]


# ---------------------------------------------------------------------------- loops


def test_a_loop_calls_its_body_until_its_condition_holds(
    api: ApiClient, agent_urls: dict[str, str]
) -> None:
    workflow = create(
        api,
        "count-to-three",
        {
            "count": {
                "type": "do_while",
                "until": "steps.tick.output.n >= `3`",
                "steps": {
                    "tick": {
                        "agent_name": "echo",
                        "input_mapping": {"n": "$.iteration", "before": "$.previous"},
                    }
                },
            }
        },
    )
    run = wait_for(api, start(api, workflow))
    assert run["status"] == "SUCCEEDED", run
    assert run["output_data"] == {"n": 3, "before": {"n": 2, "before": {"n": 1, "before": None}}}
    steps = steps_of(api, run["id"])
    assert [steps[f"count[{i}].tick"]["status"] for i in range(3)] == ["SUCCEEDED"] * 3
    assert steps["count"]["items"] == 3


def test_a_run_past_a_limit_fails_with_an_error_naming_it(api: ApiClient) -> None:
    workflow = create(
        api,
        "too-many",
        {
            "each": {
                "type": "foreach",
                "items": "input.items",
                "steps": {"call": {"agent_name": "echo", "input_mapping": {"x": "$.item"}}},
            }
        },
    )
    run = wait_for(api, start(api, workflow, items=list(range(60))))
    assert run["status"] == "FAILED"
    assert run["error_message"].startswith("MAX_TOTAL_OPERATIONS (40) exceeded")


# ---------------------------------------------------------------------------- waits, signals

APPROVAL = {
    "propose": {"agent_name": "transform", "input_mapping": {"text": "$.input.text"}},
    "approve": {
        "type": "signal",
        "depends_on": ["propose"],
        "signal": "approval",
        "schema": {
            "type": "object",
            "required": ["approved"],
            "properties": {"approved": {"type": "boolean"}},
        },
    },
    "decide": {
        "type": "if",
        "depends_on": ["approve"],
        "condition": "steps.approve.output.approved",
        "then": "publish",
        "else": "discard",
    },
    "publish": {
        "agent_name": "echo",
        "input_mapping": {"text": "$.steps.propose.output.text", "by": "$.steps.approve.output.by"},
    },
    "discard": {"agent_name": "echo", "input_mapping": {"discarded": True}},
}


def test_an_approval_parks_the_run_until_a_signal_delivers_the_answer(api: ApiClient) -> None:
    workflow = create(api, "needs-approval", APPROVAL)
    run_id = start(api, workflow, text="ship it")
    waiting = wait_for(api, run_id, {"WAITING"})
    assert statuses(api, run_id)["approve"] == "WAITING"
    assert steps_of(api, run_id)["approve"]["signal"] == "approval"

    signals = f"/api/v1/runs/{run_id}/signals"
    assert api.post(f"{signals}/nope", json={}).status_code == 404
    bad = api.post(f"{signals}/approval", json={"data": {"approved": "yes"}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "data.approved"
    sent = api.post(f"{signals}/approval", json={"data": {"approved": True, "by": "ann"}})
    assert sent.status_code == 202, sent.text
    assert sent.json()["step_id"] == "approve"
    again = api.post(f"{signals}/approval", json={"data": {"approved": False}})
    assert again.status_code == 409

    run = wait_for(api, run_id)
    assert run["status"] == "SUCCEEDED", run
    assert run["output_data"] == {"text": "SHIP IT", "by": "ann"}
    assert waiting["status"] == "WAITING"
    messages = [e["message"] for e in api.get(f"/api/v1/runs/{run_id}/logs").json()["items"]]
    assert "Signal 'approval' received from admin-env" in messages


def test_signalling_needs_the_signal_permission(api: ApiClient) -> None:
    workflow = create(api, "needs-approval-too", APPROVAL)
    run_id = start(api, workflow, text="x")
    wait_for(api, run_id, {"WAITING"})
    viewer = api.post("/api/v1/api-keys", json={"name": "looker", "role": "viewer"}).json()["key"]
    with api.as_key(viewer):
        refused = api.post(f"/api/v1/runs/{run_id}/signals/approval", json={"data": {}})
    assert refused.status_code == 403
    operator = api.post("/api/v1/api-keys", json={"name": "ops", "role": "operator"}).json()["key"]
    with api.as_key(operator):
        answer = {"data": {"approved": False}}
        assert api.post(f"/api/v1/runs/{run_id}/signals/approval", json=answer).status_code == 202
    assert wait_for(api, run_id)["output_data"] == {"discarded": True}


def test_a_signal_that_does_not_come_in_time_takes_its_default(api: ApiClient) -> None:
    steps = {
        **APPROVAL,
        "approve": {**APPROVAL["approve"], "timeout_ms": 1000, "default": {"approved": False}},
    }
    workflow = create(api, "approve-or-drop", steps)
    run = wait_for(api, start(api, workflow, text="late"))
    assert run["status"] == "SUCCEEDED", run
    assert run["output_data"] == {"discarded": True}
    assert statuses(api, run["id"])["publish"] == "SKIPPED"


def test_a_wait_holds_the_run_then_it_goes_on(api: ApiClient) -> None:
    workflow = create(
        api,
        "cool-down",
        {
            "first": {"agent_name": "echo", "input_mapping": {"x": 1}},
            "rest": {"type": "wait", "depends_on": ["first"], "duration_ms": 1500},
            "then": {"agent_name": "echo", "depends_on": ["rest"], "input_mapping": {"x": 2}},
        },
    )
    run_id = start(api, workflow)
    waiting = eventually(
        lambda: steps_of(api, run_id)["rest"],
        lambda step: step["status"] == "WAITING",
        what="the wait to begin",
    )
    assert waiting["waiting_until"] is not None and statuses(api, run_id)["then"] == "PENDING"
    run = wait_for(api, run_id)
    assert run["status"] == "SUCCEEDED"
    rest = steps_of(api, run_id)["rest"]
    assert rest["completed_at"] >= waiting["waiting_until"], "it did not end early"


# ---------------------------------------------------------------------------- sub-workflows


def test_a_sub_workflow_runs_as_a_child_run_linked_to_its_parent(api: ApiClient) -> None:
    create(
        api,
        "shout",
        {"loud": {"agent_name": "transform", "input_mapping": {"text": "$.input.text"}}},
    )
    parent = create(
        api,
        "call-shout",
        {
            "sub": {
                "type": "workflow",
                "workflow_name": "shout",
                "input_mapping": {"text": "$.input.text"},
            },
            "after": {
                "agent_name": "echo",
                "depends_on": ["sub"],
                "input_mapping": {"got": "$.steps.sub.output.text"},
            },
        },
    )
    run = wait_for(api, start(api, parent, text="from the parent"))
    assert run["status"] == "SUCCEEDED", run
    assert run["output_data"] == {"got": "FROM THE PARENT"}
    sub = steps_of(api, run["id"])["sub"]
    child_id = sub["child_run_id"]
    assert sub["kind"] == "workflow" and child_id is not None
    child = run_of(api, child_id)
    assert (child["parent_run_id"], child["parent_step_id"]) == (run["id"], "sub")
    assert child["workflow_name"] == "shout" and child["status"] == "SUCCEEDED"
    children = api.get("/api/v1/runs", params={"parent_run_id": run["id"]}).json()
    assert [c["id"] for c in children["items"]] == [child_id]


def test_cancelling_a_parent_cancels_its_child_and_the_childs_call(
    api: ApiClient, agent_urls: dict[str, str]
) -> None:
    create(api, "sleepy", {"nap": {"agent_name": "slow", "input_mapping": {"delay_s": 30}}})
    parent = create(api, "call-sleepy", {"sub": {"type": "workflow", "workflow_name": "sleepy"}})
    run_id = start(api, parent)
    child_id = eventually(
        lambda: steps_of(api, run_id)["sub"]["child_run_id"], what="the child run to start"
    )
    eventually(lambda: get_stats(agent_urls["slow"])["in_flight"], what="the child's call")
    assert api.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
    assert run_of(api, child_id)["status"] == "CANCELLED"
    eventually(
        lambda: get_stats(agent_urls["slow"])["canceled"],
        what="the child's agent task to be cancelled",
        timeout_s=15,
    )


# ---------------------------------------------------------------------------- pause


def test_a_paused_run_starts_no_step_until_it_is_resumed(
    api: ApiClient, agent_urls: dict[str, str]
) -> None:
    workflow = create(
        api,
        "pausable",
        {
            "slowly": {"agent_name": "slow", "input_mapping": {"delay_s": 1}},
            "next": {"agent_name": "echo", "depends_on": ["slowly"], "input_mapping": {"x": 1}},
        },
    )
    run_id = start(api, workflow)
    eventually(lambda: get_stats(agent_urls["slow"])["in_flight"], what="the first call")
    paused = api.post(f"/api/v1/runs/{run_id}/pause", json={"reason": "maintenance"})
    assert paused.status_code == 200 and paused.json()["status"] == "PAUSED"
    eventually(
        lambda: statuses(api, run_id)["slowly"],
        lambda status: status == "SUCCEEDED",
        what="the call in flight to finish while paused",
    )
    assert run_of(api, run_id)["status"] == "PAUSED"
    assert statuses(api, run_id)["next"] == "PENDING"
    assert get_stats(agent_urls["echo"])["calls"] == 0
    assert api.post(f"/api/v1/runs/{run_id}/pause").status_code == 409
    assert api.post(f"/api/v1/runs/{run_id}/resume").status_code == 202
    assert wait_for(api, run_id)["status"] == "SUCCEEDED"
    assert api.post(f"/api/v1/runs/{run_id}/resume").status_code == 409


# ---------------------------------------------------------------------------- definitions


def test_each_kinds_mistakes_are_422s_at_their_location(api: ApiClient) -> None:
    response = api.post(
        "/api/v1/workflows",
        json={
            "name": "mistaken",
            "definition": {
                "steps": {
                    "route": {"type": "if", "condition": "input.[", "then": "nowhere"},
                    "each": {
                        "type": "foreach",
                        "items": "input.x",
                        "steps": {
                            "a": {"agent_name": "echo", "input_mapping": {"i": "$.iteration"}}
                        },
                    },
                    "sub": {"type": "workflow", "workflow_name": "not-there"},
                }
            },
        },
    )
    assert response.status_code == 422
    assert {(e["field"], e["message"]) for e in response.json()["errors"]} == {
        ("definition.steps.route.then", "step 'nowhere' does not exist in this block"),
        ("definition.steps.sub.workflow_name", "no workflow named 'not-there' exists"),
        (
            "definition.steps.route.condition",
            "is not a valid expression: it ends too early at character 7",
        ),
        (
            "definition.steps.each.steps.a.input_mapping.i",
            "'iteration' is only defined inside a do_while body or its condition",
        ),
    }


def test_a_dry_run_walks_every_kind_with_mocks_and_records_nothing(
    api: ApiClient, runtime: Runtime
) -> None:
    workflow = create(api, "dry-approval", APPROVAL)
    head = runtime.store.head()
    response = api.post(
        f"/api/v1/workflows/{workflow}/test",
        json={
            "input_data": {"text": "t"},
            "mock_outputs": {"approve": {"approved": True, "by": "ann"}},
        },
    )
    assert response.status_code == 200, response.text
    trace = response.json()
    assert trace["status"] == "SUCCEEDED"
    assert [(s["step_id"], s["kind"], s["status"]) for s in trace["steps"]] == [
        ("propose", "agent", "SUCCEEDED"),
        ("approve", "signal", "SUCCEEDED"),
        ("decide", "if", "SUCCEEDED"),
        ("discard", "agent", "SKIPPED"),
        ("publish", "agent", "SUCCEEDED"),
    ]
    assert trace["steps"][2]["note"] == "chose 'then'"
    assert runtime.store.head() == head


def test_a_dry_run_of_a_map_whose_items_fail_their_mapping_answers_the_failure(
    api: ApiClient,
) -> None:
    workflow = create(
        api,
        "dry-map-mapping",
        {
            "each": {
                "type": "foreach",
                "items": "input.orders",
                "steps": {"price": {"agent_name": "echo", "input_mapping": {"id": "$.item.id"}}},
            }
        },
    )
    response = api.post(
        f"/api/v1/workflows/{workflow}/test",
        json={"input_data": {"orders": [{"sku": 1}, {"sku": 2}]}},
    )
    assert response.status_code == 200, response.text
    trace = response.json()
    assert trace["status"] == "FAILED"
    assert {s["step_id"]: s["status"] for s in trace["steps"]}["each[0].price"] == "FAILED"


def test_retrying_a_parent_retries_its_failed_child_run_and_follows_it_to_its_end(
    api: ApiClient, agent_urls: dict[str, str]
) -> None:
    """The child's failure fails the parent; retrying the parent retries the same child run
    (not a new one), which runs its failed step again, and the parent ends with it: parked
    while the child naps (it follows nothing else), woken by the retried child's end."""
    create(
        api,
        "flaky-then-slow",
        {
            "try": {"agent_name": "flaky", "input_mapping": {"text": "$.input.text"}},
            # Long enough for the parent, which looks again at least once a second, to park.
            "nap": {"agent_name": "slow", "depends_on": ["try"], "input_mapping": {"delay_s": 3}},
        },
    )
    parent = create(
        api,
        "call-flaky",
        {
            "sub": {
                "type": "workflow",
                "workflow_name": "flaky-then-slow",
                "input_mapping": {"text": "$.input.text"},
            }
        },
    )
    reset_stats(agent_urls["flaky"], fail_first=1)
    run_id = start(api, parent, text="again")
    assert wait_for(api, run_id)["status"] == "FAILED"
    child_id = steps_of(api, run_id)["sub"]["child_run_id"]
    assert run_of(api, child_id)["status"] == "FAILED"

    assert api.post(f"/api/v1/runs/{run_id}/retry").status_code == 202
    child = eventually(
        lambda: run_of(api, child_id),
        lambda child: child["retry_count"] == 1 and child["status"] in TERMINAL,
        what="the retried child run to end",
        timeout_s=15,
    )
    assert child["status"] == "SUCCEEDED", child
    assert wait_for(api, run_id, timeout=5)["status"] == "SUCCEEDED"
    assert steps_of(api, run_id)["sub"]["child_run_id"] == child_id
    logs = api.get(f"/api/v1/runs/{run_id}/logs", params={"page_size": 100}).json()["items"]
    last = [e["message"] for e in logs][-4:]
    assert last[0].startswith("Run waiting") and last[1:] == [
        "Run running again",
        "Step 'sub' succeeded (attempt 2)",
        "Run succeeded",
    ], last
