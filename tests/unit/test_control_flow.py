"""Branches, maps, loops, waits, signals, sub-workflows, pauses and limits, as given/when/then
specifications of the Run aggregate (no executor: the tests play it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowledger.domain.errors import Conflict, InvalidInput, NotFound
from flowledger.domain.runs import Run, child_run_id
from tests.support.domain import given, history, names, replay, when
from tests.support.runs import LIMITS, call, drive, plan_of, requested, started_run

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def echo(**fields: Any) -> dict[str, Any]:
    return {"agent_name": "echo", **fields}


def statuses(run: Run, *keys: str) -> dict[str, str]:
    return {key: run.steps[key].status for key in keys}


def advanced(run: Run, now: datetime = NOW) -> list[str]:
    return names(when(run, lambda r: r.advance(now)))


# ---------------------------------------------------------------------------- branches

BRANCHING = {
    "steps": {
        "measure": echo(input_mapping={"n": "$.input.n"}),
        "route": {
            "type": "if",
            "depends_on": ["measure"],
            "condition": "steps.measure.output.n > `10`",
            "then": "big",
            "else": ["small"],
        },
        "big": echo(input_mapping={"n": "$.steps.measure.output.n"}),
        "wrap_big": echo(depends_on=["big"]),
        "small": echo(),
        "join": echo(
            depends_on=["wrap_big", "small"],
            input_mapping={"size": {"$expr": "steps.wrap_big.output && 'big' || 'small'"}},
        ),
    }
}


def test_an_if_takes_then_when_its_condition_holds_and_skips_the_other_path() -> None:
    run = started_run(BRANCHING, {"n": 42})
    call(run, "measure")
    history(run)
    assert advanced(run) == ["Run.BranchChosen", "Run.StepsSkipped"]
    assert run.steps["route"].output == {"case": "then", "value": True}
    assert statuses(run, "route", "small") == {"route": "SUCCEEDED", "small": "SKIPPED"}
    assert run.ready_calls() == ["big"]


def test_fan_in_after_a_branch_waits_only_for_the_path_taken() -> None:
    run = started_run(BRANCHING, {"n": 3})
    calls = drive(run, NOW)
    assert run.status == "SUCCEEDED"
    assert calls == {"measure": 1, "small": 1, "join": 1}
    assert statuses(run, "big", "wrap_big") == {"big": "SKIPPED", "wrap_big": "SKIPPED"}
    assert run.steps["join"].output == {"size": "small"}


def test_everything_only_a_path_not_taken_leads_to_is_skipped_in_one_event() -> None:
    run = started_run(BRANCHING, {"n": 3})
    call(run, "measure")
    history(run)
    run.advance(NOW)
    skipped = [e for e in history(run) if isinstance(e, Run.StepsSkipped)]
    assert [(e.step_ids, e.by_branch) for e in skipped] == [(["big", "wrap_big"], True)]


@pytest.mark.parametrize(
    ("region", "taken"), [("eu", "eu_store"), (3, "three"), ("mars", "elsewhere")]
)
def test_a_switch_follows_the_case_its_value_names_or_its_default(region: Any, taken: str) -> None:
    definition = {
        "steps": {
            "route": {
                "type": "switch",
                "expression": "input.region",
                "cases": {"eu": "eu_store", "3": ["three"]},
                "default": "elsewhere",
            },
            "eu_store": echo(),
            "three": echo(),
            "elsewhere": echo(),
        }
    }
    run = started_run(definition, {"region": region})
    assert drive(run, NOW) == {taken: 1}
    assert run.status == "SUCCEEDED"
    assert run.output == {}  # the one step that ran was given no input


def test_a_condition_that_cannot_be_evaluated_fails_the_branch_and_the_run() -> None:
    definition = {
        "steps": {
            "check": {"type": "if", "condition": "abs(input.word)", "then": "a"},
            "a": echo(),
        }
    }
    run = started_run(definition, {"word": "not a number"})
    assert advanced(run) == ["Run.StepFailed", "Run.Failed"]
    assert run.failed_step == "check"
    assert "if failed" in (run.error or "")


# ---------------------------------------------------------------------------- maps

MAP = {
    "steps": {
        "each": {
            "type": "foreach",
            "items": "input.orders",
            "max_parallel": 2,
            "steps": {
                "price": echo(input_mapping={"order": "$.item", "at": "$.index"}),
                "tax": echo(
                    depends_on=["price"],
                    input_mapping={"total": {"$expr": "steps.price.output.order.total"}},
                ),
            },
        },
        "report": echo(input_mapping={"all": "$.steps.each.output"}),
    }
}
MAP["steps"]["report"]["depends_on"] = ["each"]


def orders(count: int) -> dict[str, Any]:
    return {"orders": [{"total": n} for n in range(count)]}


def test_a_map_evaluates_its_items_once_and_runs_its_body_per_item() -> None:
    run = started_run(MAP, orders(3))
    events = when(run, lambda r: r.advance(NOW))
    assert names(events) == ["Run.MapStarted"]
    assert events[0].items == [{"total": 0}, {"total": 1}, {"total": 2}]  # type: ignore[attr-defined]
    assert run.ready_calls() == ["each[0].price", "each[1].price"], "max_parallel 2"
    call(run, "each[0].price")
    assert run.context("each[0].tax").outputs["price"] == {"order": {"total": 0}, "at": 0}
    assert run.ready_calls() == ["each[0].tax", "each[1].price"]


def test_a_map_outputs_its_items_results_in_order_whatever_order_they_finish_in() -> None:
    run = started_run(MAP, orders(3))
    run.advance(NOW)
    for key in ("each[1].price", "each[0].price", "each[1].tax", "each[0].tax"):
        call(run, key, {"done": key})
    run.advance(NOW)
    call(run, "each[2].price")
    call(run, "each[2].tax", {"done": "each[2].tax"})
    run.advance(NOW)
    assert run.steps["each"].output == [{"done": f"each[{i}].tax"} for i in range(3)]
    assert run.ready_calls() == ["report"]


def test_a_map_never_has_more_items_begun_than_its_max_parallel() -> None:
    run = started_run(MAP, orders(5))
    run.advance(NOW)
    call(run, "each[0].price")
    call(run, "each[1].price")
    assert run.ready_calls() == ["each[0].tax", "each[1].tax"], "items 0 and 1 are not done"
    call(run, "each[0].tax")
    run.advance(NOW)
    assert run.ready_calls() == ["each[1].tax", "each[2].price"]


def test_a_failed_item_fails_the_map_and_the_run_naming_the_step_that_failed() -> None:
    run = started_run(MAP, orders(2))
    run.advance(NOW)
    run.fail_attempt("each[1].price", run.start_step("each[1].price", {}), "no price", None)
    history(run)
    assert advanced(run) == ["Run.StepFailed", "Run.Failed"]
    assert run.steps["each"].status == "FAILED"
    assert (run.failed_step, run.error) == (
        "each[1].price",
        "step 'each[1].price' failed: no price",
    )


def test_a_map_that_continues_on_errors_outputs_the_error_of_a_failed_item() -> None:
    definition = {
        "steps": {
            "each": {
                "type": "foreach",
                "items": "`[1, 2]`",
                "continue_on_error": True,
                "steps": {"one": echo(), "two": echo(depends_on=["one"])},
            }
        }
    }
    run = started_run(definition)
    run.advance(NOW)
    run.fail_attempt("each[0].one", run.start_step("each[0].one", {}), "boom", None)
    history(run)
    assert advanced(run) == ["Run.StepsSkipped"]
    assert run.steps["each[0].two"].status == "SKIPPED"
    drive(run, NOW)
    assert run.status == "SUCCEEDED"
    assert run.output == [{"error": "boom"}, {}]


def test_a_map_over_nothing_outputs_an_empty_list() -> None:
    run = started_run(MAP, {"orders": []})
    assert advanced(run) == ["Run.MapStarted", "Run.StepCompleted"]
    assert run.steps["each"].output == []


def test_items_that_are_not_a_list_fail_the_map() -> None:
    run = started_run(MAP, {"orders": {"total": 1}})
    run.advance(NOW)
    assert run.status == "FAILED"
    assert run.error == "step 'each' failed: items must be a list, got an object"


# ---------------------------------------------------------------------------- loops


def loop(condition: dict[str, str], **body: Any) -> dict[str, Any]:
    return {
        "steps": {
            "poll": {
                "type": "do_while",
                **condition,
                "steps": body or {"check": echo(input_mapping={"n": "$.iteration"})},
            }
        }
    }


def test_a_loop_runs_its_body_again_while_its_condition_holds() -> None:
    run = started_run(loop({"while": "iteration < `3`"}))
    assert drive(run, NOW) == {"check": 3}
    assert run.status == "SUCCEEDED"
    assert [run.steps[f"poll[{i}].check"].output for i in range(3)] == [
        {"n": 1},
        {"n": 2},
        {"n": 3},
    ]
    assert run.output == {"n": 3}, "a loop outputs its last iteration's output"


def test_until_stops_a_loop_when_it_holds_and_previous_is_the_iteration_before() -> None:
    body = {"page": echo(input_mapping={"after": {"$expr": "previous.next || `0`"}})}
    run = started_run(loop({"until": "steps.page.output.next == `30`"}, **body))
    answers = iter([{"next": 10}, {"next": 20}, {"next": 30}])
    for _ in range(3):
        run.advance(NOW)
        (key,) = run.ready_calls()
        step_input = run.context(key)
        assert step_input.locals["previous"] == (
            None if key == "poll[0].page" else run.steps[f"poll[{int(key[5]) - 1}].page"].output
        )
        attempt = run.start_step(key, {})
        run.succeed_step(key, attempt, next(answers))
    run.advance(NOW)
    assert run.status == "SUCCEEDED"
    assert run.composites["poll"].started == 3


def test_a_loop_past_max_loop_iterations_fails_the_run_naming_the_limit() -> None:
    run = started_run(loop({"while": "`true`"}), max_loop_iterations=4)
    assert drive(run, NOW) == {"check": 4}
    assert run.status == "FAILED"
    assert run.error == ("MAX_LOOP_ITERATIONS (4) exceeded: loop 'poll' would start iteration 5")


def test_a_failed_step_fails_its_loop() -> None:
    run = started_run(loop({"while": "`true`"}))
    run.advance(NOW)
    run.fail_attempt("poll[0].check", run.start_step("poll[0].check", {}), "down", None)
    run.advance(NOW)
    assert statuses(run, "poll", "poll[0].check") == {"poll": "FAILED", "poll[0].check": "FAILED"}
    assert run.failed_step == "poll[0].check"


# ---------------------------------------------------------------------------- limits


def test_a_map_of_more_items_than_the_operations_left_fails_the_run_at_once() -> None:
    run = started_run(MAP, orders(20), max_total_operations=10)
    assert advanced(run) == ["Run.Failed"]
    assert run.error == (
        "MAX_TOTAL_OPERATIONS (10) exceeded: map 'each' over 20 items would run more steps "
        "than the run may"
    )


def test_the_run_fails_when_the_next_step_would_pass_max_total_operations() -> None:
    run = started_run(loop({"while": "`true`"}), max_total_operations=4)
    drive(run, NOW)
    assert run.status == "FAILED"
    assert run.operations == 4
    assert run.error is not None and run.error.startswith("MAX_TOTAL_OPERATIONS (4) exceeded")


def test_maps_and_loops_nested_deeper_than_max_loop_depth_fail_the_run() -> None:
    inner = loop({"while": "`false`"})["steps"]
    definition = {"steps": {"outer": {"type": "foreach", "items": "`[1]`", "steps": inner}}}
    run = started_run(definition, max_loop_depth=1)
    drive(run, NOW)
    assert run.status == "FAILED"
    assert run.error == "MAX_LOOP_DEPTH (1) exceeded: do_while 'outer[0].poll' would nest 2 deep"


# ---------------------------------------------------------------------------- waits

WAIT = {
    "steps": {
        "first": echo(),
        "cool_down": {"type": "wait", "depends_on": ["first"], "duration_ms": 1500},
        "then": echo(depends_on=["cool_down"]),
    }
}


def test_a_wait_records_when_it_ends_and_ends_then_not_before() -> None:
    run = started_run(WAIT)
    call(run, "first")
    history(run)
    events = when(run, lambda r: r.advance(NOW))
    assert names(events) == ["Run.WaitStarted"]
    assert run.steps["cool_down"].status == "WAITING"
    assert run.next_wake() == NOW + timedelta(milliseconds=1500)
    assert advanced(run, NOW + timedelta(milliseconds=1499)) == []
    assert advanced(run, NOW + timedelta(milliseconds=1500)) == ["Run.StepCompleted"]
    assert run.ready_calls() == ["then"]


def test_the_end_of_a_wait_is_kept_by_replay_so_a_restart_does_not_reset_it() -> None:
    run = requested(plan_of(WAIT), limits=LIMITS)
    events = history(run)
    run.start()
    call(run, "first")
    run.advance(NOW)
    events += history(run)
    restarted = replay(events)  # an executor that starts later loads the run like this
    later = NOW + timedelta(seconds=1)
    assert restarted.steps["cool_down"].wake_at == NOW + timedelta(milliseconds=1500)
    assert advanced(restarted, later) == [], "the wait did not start again from `later`"
    assert advanced(restarted, NOW + timedelta(milliseconds=1500)) == ["Run.StepCompleted"]


def test_a_wait_until_a_time_taken_from_the_input() -> None:
    definition = {"steps": {"until": {"type": "wait", "until": "input.at"}}}
    run = started_run(definition, {"at": "2026-12-01T10:00:00Z"})
    run.advance(NOW)
    assert run.steps["until"].wake_at == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------- signals

APPROVAL = {
    "steps": {
        "approve": {
            "type": "signal",
            "signal": "approval",
            "schema": {"type": "object", "required": ["approved"]},
        },
        "decide": {
            "type": "if",
            "depends_on": ["approve"],
            "condition": "steps.approve.output.approved",
            "then": "ship",
            "else": "refund",
        },
        "ship": echo(input_mapping={"by": "$.steps.approve.output.by"}),
        "refund": echo(),
    }
}


def test_a_signal_step_waits_until_a_signal_delivers_its_data_to_later_steps() -> None:
    run = started_run(APPROVAL)
    assert advanced(run) == ["Run.SignalAwaited"]
    assert run.steps["approve"].status == "WAITING"
    events = when(run, lambda r: r.receive_signal("approval", {"approved": True, "by": "ann"}))
    assert names(events) == ["Run.SignalReceived"]
    assert drive(run, NOW) == {"ship": 1}
    assert run.steps["ship"].output == {"by": "ann"}


def test_a_signal_the_run_does_not_know_or_no_step_waits_for_is_refused() -> None:
    run = started_run(APPROVAL)
    with pytest.raises(NotFound, match="no signal named 'nope'"):
        run.receive_signal("nope", {})
    with pytest.raises(Conflict, match="waiting for signal 'approval'"):
        run.receive_signal("approval", {"approved": True})
    run.advance(NOW)
    with pytest.raises(InvalidInput) as refused:
        run.receive_signal("approval", {"by": "ann"})
    assert [p.field for p in refused.value.problems] == ["data"]
    assert run.steps["approve"].status == "WAITING"


@pytest.mark.parametrize(
    ("default", "expected"),
    [({"approved": False}, ("SUCCEEDED", None)), (None, ("FAILED", "no signal 'approval'"))],
)
def test_a_signal_that_does_not_come_in_time_takes_its_default_or_fails(
    default: Any, expected: tuple[str, str | None]
) -> None:
    step: dict[str, Any] = {"type": "signal", "signal": "approval", "timeout_ms": 60_000}
    if default is not None:
        step["default"] = default
    run = started_run({"steps": {"approve": step}})
    run.advance(NOW)
    history(run)
    assert run.steps["approve"].wake_at == NOW + timedelta(minutes=1)
    assert advanced(run, NOW + timedelta(seconds=59)) == []
    assert advanced(run, NOW + timedelta(minutes=1))[0] == "Run.SignalTimedOut"
    status, error = expected
    assert run.status == status
    if error is None:
        assert run.output == default
    else:
        assert error in (run.error or "")


# ---------------------------------------------------------------------------- sub-workflows

CHILD = {
    "steps": {
        "sub": {"type": "workflow", "workflow_name": "child", "input_mapping": {"x": "$.input.x"}}
    }
}


def test_a_workflow_step_follows_its_child_run_and_takes_its_output() -> None:
    run = started_run(CHILD, {"x": 1})
    assert run.ready_calls() == ["sub"]
    attempt = run.start_step("sub", {"x": 1})
    history(run)
    child = child_run_id(run.id, "sub")
    events = when(run, lambda r: r.follow_child("sub", attempt, child))
    assert names(events) == ["Run.ChildRunStarted"]
    assert run.children_in_flight() == {"sub": child}
    run.succeed_step("sub", attempt, {"child": "output"})
    run.advance(NOW)
    assert (run.status, run.output) == ("SUCCEEDED", {"child": "output"})


def test_a_child_run_is_the_same_for_every_attempt_of_a_step_instance() -> None:
    run = started_run(CHILD)
    assert child_run_id(run.id, "sub") == child_run_id(run.id, "sub")
    assert child_run_id(run.id, "sub") != child_run_id(run.id, "each[0].sub")
    assert run.retry_policy("sub").max_retries == 0, "a child run is retried only on request"


# ---------------------------------------------------------------------------- pause, wait


def test_a_paused_run_starts_nothing_but_records_the_calls_already_in_flight() -> None:
    run = started_run(WAIT)
    attempt = run.start_step("first", {})
    history(run)
    assert names(when(run, lambda r: r.pause("maintenance"))) == ["Run.Paused"]
    assert run.ready_calls() == []
    run.succeed_step("first", attempt, {})
    history(run)
    assert advanced(run) == [], "not even a wait starts"
    with pytest.raises(Conflict, match="PAUSED"):
        run.start_step("then", {})
    assert names(when(run, Run.resume)) == ["Run.Resumed"]
    assert run.status == "RUNNING"
    assert advanced(run) == ["Run.WaitStarted"]


def test_the_time_paused_does_not_count_against_the_workflow_timeout() -> None:
    run = requested(plan_of(WAIT), limits=LIMITS)
    run.start()
    run = given(history(run))
    began = run.round_started_at
    assert began is not None
    paused = when(run, lambda r: r.pause())
    resumed = when(run, Run.resume)
    assert run.round_started_at == began + (resumed[0].timestamp - paused[0].timestamp)


def test_a_run_with_only_waits_to_do_parks_until_its_wake_time_and_wakes_running() -> None:
    run = started_run(WAIT)
    call(run, "first")
    run.advance(NOW)
    history(run)
    with pytest.raises(Conflict, match="has work to do"):
        started_run(WAIT).suspend(None, NOW)  # its first step can start
    events = when(run, lambda r: r.suspend(run.next_wake(), NOW))
    assert names(events) == ["Run.Suspended"]
    assert (run.status, run.wake_at) == ("WAITING", NOW + timedelta(milliseconds=1500))
    assert run.ready_calls() == [] and advanced(run, NOW + timedelta(hours=1)) == []
    assert names(when(run, Run.wake)) == ["Run.Woken"]
    assert advanced(run, NOW + timedelta(seconds=2)) == ["Run.StepCompleted"]


def test_a_parked_run_still_takes_signals() -> None:
    run = started_run(APPROVAL)
    run.advance(NOW)
    run.suspend(None, NOW)
    run.receive_signal("approval", {"approved": False})
    assert run.status == "WAITING" and run.steps["approve"].status == "SUCCEEDED"
    run.wake()
    assert drive(run, NOW) == {"refund": 1}


# ---------------------------------------------------------------------------- retries


def test_a_retry_inside_a_map_runs_again_only_what_did_not_succeed() -> None:
    run = started_run(MAP, orders(3))
    run.advance(NOW)
    call(run, "each[0].price")
    call(run, "each[0].tax")
    call(run, "each[1].price")
    run.fail_attempt("each[1].tax", run.start_step("each[1].tax", {}), "down", None)
    run.advance(NOW)
    assert run.status == "FAILED"
    history(run)
    events = when(run, Run.retry)
    assert names(events) == ["Run.Retried"]
    retried = events[0]
    assert (retried.reset, retried.resumed) == (  # type: ignore[attr-defined]
        ["report", "each[1].tax"],
        ["each"],
    ), "report was skipped when the run failed"
    run.start()
    calls = drive(run, NOW)
    assert calls == {"tax": 2, "price": 1, "report": 1}, "item 2 begins; item 0 is not redone"
    assert run.status == "SUCCEEDED"
    assert [len(run.steps[f"each[{i}].price"].attempts) for i in range(3)] == [1, 1, 1]


def test_a_retry_keeps_the_path_its_branch_took() -> None:
    run = started_run(BRANCHING, {"n": 3})
    call(run, "measure")
    run.advance(NOW)
    run.fail_attempt("small", run.start_step("small", {}), "down", None)
    run.advance(NOW)
    run.retry()
    assert statuses(run, "route", "big", "small") == {
        "route": "SUCCEEDED",
        "big": "SKIPPED",
        "small": "PENDING",
    }
    run.start()
    assert drive(run, NOW) == {"small": 1, "join": 1}


def test_a_retry_inside_a_loop_goes_on_from_the_iteration_that_failed() -> None:
    run = started_run(loop({"while": "iteration < `3`"}))
    run.advance(NOW)
    call(run, "poll[0].check")
    run.advance(NOW)
    run.fail_attempt("poll[1].check", run.start_step("poll[1].check", {}), "down", None)
    run.advance(NOW)
    run.retry()
    run.start()
    assert drive(run, NOW) == {"check": 2}, "iterations 1 (again) and 2"
    assert run.status == "SUCCEEDED"
    assert len(run.steps["poll[0].check"].attempts) == 1


# ---------------------------------------------------------------------------- replay


def test_replaying_a_run_with_every_kind_of_step_rebuilds_the_same_state() -> None:
    definition = {"steps": {**MAP["steps"], **APPROVAL["steps"], **WAIT["steps"]}}
    definition["steps"]["approve"] = {**APPROVAL["steps"]["approve"], "depends_on": ["report"]}
    definition["steps"]["first"] = echo(depends_on=["ship"])
    run = requested(plan_of(definition), input_data=orders(3), limits=LIMITS)
    events = history(run)
    run.start()
    drive(run, NOW)
    run.receive_signal("approval", {"approved": True, "by": "ann"})
    drive(run, NOW + timedelta(hours=1))  # the wait begins
    drive(run, NOW + timedelta(hours=2))  # and ends
    events += history(run)
    assert run.status == "SUCCEEDED"
    rebuilt = replay(events)
    assert rebuilt.version == run.version == len(events)
    assert {k: (s.status, s.output, s.input) for k, s in rebuilt.steps.items()} == {
        k: (s.status, s.output, s.input) for k, s in run.steps.items()
    }
    assert rebuilt.composites == run.composites
    assert (rebuilt.operations, rebuilt.output) == (run.operations, run.output)


def test_runs_requested_before_control_flow_load_with_no_limits_and_no_parent() -> None:
    state: dict[str, Any] = {"workflow_id": "w"}
    Run.Requested.upcast_v1_v2(state)
    assert state == {
        "workflow_id": "w",
        "limits": None,
        "parent_run_id": None,
        "parent_step_id": None,
        "depth": 0,
    }
    retried: dict[str, Any] = {"retry_number": 1}
    Run.Retried.upcast_v1_v2(retried)
    assert retried == {"retry_number": 1, "reset": None, "resumed": None}


def test_a_map_instance_names_its_agent_before_it_begins() -> None:
    run = started_run(MAP, orders(2))
    run.advance(NOW)
    assert "each[1].price" not in run.steps, "not begun yet"
    assert run.binding("each[1].price") == run.binding("report")
