"""The Run aggregate, as given/when/then specifications."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowledger.domain.errors import Conflict
from flowledger.domain.plans import StepPlan, WorkflowPlan
from flowledger.domain.runs import Run, StaleAttempt
from tests.support.domain import given, history, names, when
from tests.support.runs import diamond, requested

pytestmark = pytest.mark.unit


def started(plan: WorkflowPlan | None = None) -> list[object]:
    run = requested(plan)
    run.start()
    return history(run)


def finish(run: Run, step_id: str, output: object = None) -> None:
    attempt = run.start_step(step_id, {"in": step_id})
    run.succeed_step(step_id, attempt, output if output is not None else {"out": step_id})


def test_a_requested_run_is_pending_with_every_step_pending() -> None:
    run = given(history(requested()))
    assert run.status == "PENDING"
    assert {s.status for s in run.steps.values()} == {"PENDING"}
    assert run.ready_steps() == []


def test_starting_a_run_makes_its_first_steps_ready() -> None:
    run = given(history(requested()))
    assert names(when(run, Run.start)) == ["Run.Started"]
    assert run.ready_steps() == ["a"]


def test_a_step_waits_for_every_dependency() -> None:
    run = given(started())
    with pytest.raises(Conflict, match="waits for a"):
        run.start_step("b", {})
    finish(run, "a")
    finish(run, "b")
    assert run.ready_steps() == ["c"]
    with pytest.raises(Conflict, match="waits for c"):
        run.start_step("d", {})


def test_every_attempt_is_recorded_with_input_output_error_and_times() -> None:
    run = given(started())
    events = when(run, lambda r: r.fail_attempt("a", r.start_step("a", {"q": 1}), "timeout", 200))
    assert names(events) == ["Run.StepStarted", "Run.StepAttemptFailed"]
    events = when(run, lambda r: r.succeed_step("a", r.start_step("a", {"q": 1}), {"a": 42}))
    assert names(events) == ["Run.StepStarted", "Run.StepSucceeded"]
    first, second = run.steps["a"].attempts
    assert (first.number, first.outcome, first.error, first.input) == (
        1,
        "failed",
        "timeout",
        {"q": 1},
    )
    assert (second.number, second.outcome, second.output) == (2, "succeeded", {"a": 42})
    assert first.started_at <= first.finished_at <= second.started_at  # type: ignore[operator]
    assert run.steps["a"].status == "SUCCEEDED"


def test_a_failed_attempt_without_retry_fails_the_step() -> None:
    run = given(started())
    events = when(run, lambda r: r.fail_attempt("a", r.start_step("a", {}), "bad input", None))
    assert names(events) == ["Run.StepStarted", "Run.StepAttemptFailed", "Run.StepFailed"]
    assert run.steps["a"].status == "FAILED"
    assert names(when(run, lambda r: r.fail("step a failed: bad input", "a"))) == ["Run.Failed"]
    assert run.status == "FAILED"
    assert {s: run.steps[s].status for s in "bcd"} == {
        "b": "SKIPPED",
        "c": "SKIPPED",
        "d": "SKIPPED",
    }


def test_succeeding_needs_every_step_and_keeps_the_final_output() -> None:
    run = given(started())
    for step in "abc":
        finish(run, step)
    with pytest.raises(Conflict, match="still has steps"):
        run.succeed()
    finish(run, "d", {"answer": 42})
    history(run)
    assert names(when(run, Run.succeed)) == ["Run.Succeeded"]
    assert run.status == "SUCCEEDED"
    assert run.output == {"answer": 42}


def test_a_run_with_several_final_steps_outputs_each_by_step_id() -> None:
    plan = WorkflowPlan(steps=(StepPlan("a", "echo"), StepPlan("b", "echo")))
    run = given(started(plan))
    finish(run, "a", {"x": 1})
    finish(run, "b", {"y": 2})
    run.succeed()
    assert run.output == {"a": {"x": 1}, "b": {"y": 2}}


def test_cancelling_cancels_running_steps_and_skips_pending_ones() -> None:
    run = given(started())
    finish(run, "a")
    run.start_step("b", {})
    history(run)
    assert names(when(run, lambda r: r.cancel("operator said so"))) == ["Run.Cancelled"]
    assert run.status == "CANCELLED"
    statuses = {s: run.steps[s].status for s in "abcd"}
    assert statuses == {"a": "SUCCEEDED", "b": "CANCELLED", "c": "SKIPPED", "d": "SKIPPED"}
    assert run.steps["b"].attempts[-1].outcome == "cancelled"


def test_a_finished_run_cannot_be_cancelled_and_late_results_are_stale() -> None:
    run = given(started())
    attempt = run.start_step("a", {})
    run.cancel()
    with pytest.raises(Conflict, match="already CANCELLED"):
        run.cancel()
    with pytest.raises(StaleAttempt):
        run.succeed_step("a", attempt, {"late": True})
    with pytest.raises(Conflict):
        run.start_step("b", {})


def test_retrying_resumes_from_the_steps_that_did_not_succeed() -> None:
    run = given(started())
    finish(run, "a", {"kept": True})
    run.fail_attempt("b", run.start_step("b", {}), "down", None)
    run.fail("step b failed", "b")
    history(run)
    assert names(when(run, Run.retry)) == ["Run.Retried"]
    assert run.status == "PENDING" and run.retry_number == 1
    assert run.steps["a"].status == "SUCCEEDED" and run.steps["a"].output == {"kept": True}
    run.start()
    assert run.ready_steps() == ["b", "c"]
    assert run.failed_attempts("b") == 0, "retries count again from zero in the new round"
    assert run.start_step("b", {}) == 2, "attempt numbers keep growing across rounds"


@pytest.mark.parametrize("status", ["PENDING", "RUNNING", "SUCCEEDED"])
def test_only_failed_or_cancelled_runs_retry(status: str) -> None:
    run = given(history(requested(WorkflowPlan(steps=(StepPlan("a", "echo"),)))))
    if status != "PENDING":
        run.start()
    if status == "SUCCEEDED":
        finish(run, "a")
        run.succeed()
    with pytest.raises(Conflict, match="only FAILED or CANCELLED"):
        run.retry()


def test_an_interrupted_attempt_goes_again_without_using_a_retry() -> None:
    run = given(started())
    attempt = run.start_step("a", {})
    run.interrupt_attempt("a", attempt)
    assert run.awaiting_retry() == ["a"]
    assert run.failed_attempts("a") == 0
    assert run.start_step("a", {}) == attempt + 1


def test_max_parallel_steps_limits_steps_in_flight() -> None:
    run = given(started(diamond(max_parallel=1)))
    finish(run, "a")
    run.start_step("b", {})
    with pytest.raises(Conflict, match="already has 1 steps running"):
        run.start_step("c", {})


def test_step_settings_come_from_the_pinned_agent_with_step_overrides() -> None:
    plan = WorkflowPlan(steps=(StepPlan("a", "echo", timeout_ms=1500, retry={"max_retries": 0}),))
    run = given(history(requested(plan)))
    assert run.call_timeout_ms("a") == 1500
    assert run.retry_policy("a").max_retries == 0
    assert run.retry_policy("a").initial_delay_ms == 100


def test_recorded_times_are_those_of_the_events_that_set_them() -> None:
    run = given(started())
    started_events = when(run, lambda r: r.start_step("a", {}))
    failed_events = when(run, lambda r: r.fail_attempt("a", 1, "down", 250))
    attempt = run.steps["a"].attempts[0]
    assert attempt.started_at == started_events[0].timestamp
    assert attempt.finished_at == failed_events[0].timestamp
    assert run.steps["a"].retry_at == failed_events[0].timestamp + timedelta(milliseconds=250)


def test_the_round_starts_when_the_run_starts_not_when_it_was_requested() -> None:
    run = given(history(requested()))
    events = when(run, Run.start)
    assert run.round_started_at == events[0].timestamp


def test_the_pinned_plan_is_parsed_once_when_the_run_is_replayed_not_on_every_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = started(diamond())
    parses: list[object] = []
    parse = WorkflowPlan.from_dict

    def counted_parse(data: dict[str, object]) -> WorkflowPlan:
        parses.append(data)
        return parse(data)

    monkeypatch.setattr(WorkflowPlan, "from_dict", counted_parse)
    run = given(events)
    assert parses == [events[0].plan]  # type: ignore[attr-defined]
    assert run.plan == parse(events[0].plan)  # type: ignore[attr-defined]
    finish(run, "a")
    run.ready_steps()
    run.call_timeout_ms("b")
    run.retry_policy("b")
    run.final_output()
    assert len(parses) == 1
