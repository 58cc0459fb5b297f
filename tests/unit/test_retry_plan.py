"""A run's retry plan: what a retry would redo and reuse, by the same rule the retry applies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from flowledger.domain.errors import Conflict
from flowledger.domain.plans import StepPlan, WorkflowPlan
from flowledger.domain.runs import Run
from tests.support.domain import history
from tests.support.runs import AGENT_ID, apply, binding, commands, diamond, requested

pytestmark = pytest.mark.unit


def failed_at_b() -> Run:
    """a → (b, c) → d, where a and c succeeded and b failed for good."""
    run = requested(diamond())
    run.start()
    for step_id in ("a", "c"):
        run.succeed_step(step_id, run.start_step(step_id, {}), {"from": step_id})
    run.fail_attempt("b", run.start_step("b", {}), "agent down", None)
    run.fail("step b failed", "b")
    history(run)
    return run


def test_a_failed_run_would_redo_what_did_not_succeed_and_reuse_the_rest() -> None:
    plan = failed_at_b().retry_plan()
    assert plan.allowed and plan.refusal is None
    assert [(s.step_id, s.status) for s in plan.rerun] == [("b", "FAILED"), ("d", "SKIPPED")]
    assert [(s.step_id, s.output) for s in plan.reused] == [
        ("a", {"from": "a"}),
        ("c", {"from": "c"}),
    ]
    assert plan.retry_number == 1 and plan.workflow_version == 1
    assert {name: b.agent_id for name, b in plan.agents.items()} == {"echo": AGENT_ID}


def test_the_plan_names_only_the_agents_of_the_steps_to_redo() -> None:
    plan = WorkflowPlan(steps=(StepPlan("a", "echo"), StepPlan("b", "shout", depends_on=("a",))))
    run = requested(plan, agents={"echo": binding(), "shout": binding(max_retries=0)})
    run.start()
    run.succeed_step("a", run.start_step("a", {}), {"ok": 1})
    run.cancel()
    assert list(run.retry_plan().agents) == ["shout"]


@pytest.mark.parametrize("finished", [False, True])
def test_a_run_that_may_not_retry_says_why_as_the_retry_would(finished: bool) -> None:
    run = requested(WorkflowPlan(steps=(StepPlan("a", "echo"),)))
    run.start()
    if finished:
        run.succeed_step("a", run.start_step("a", {}), {})
        run.succeed()
    plan = run.retry_plan()
    assert not plan.allowed
    with pytest.raises(Conflict) as refused:
        run.retry()
    assert plan.refusal == refused.value.detail


@settings(max_examples=200)
@given(commands)
def test_the_plan_is_exactly_what_the_retry_then_does(sequence: list[tuple[Any, ...]]) -> None:
    run = requested(diamond())
    for command in sequence:
        try:
            apply(run, command)
        except Conflict:
            continue
    plan = run.retry_plan()
    try:
        run.retry()
    except Conflict as refused:
        assert plan.refusal == refused.detail
        return
    assert plan.refusal is None
    # A retried run has started nothing yet: each step is to be redone, or kept.
    assert [s.step_id for s in plan.rerun] == [
        s.step_id for s in run.steps.values() if s.status == "PENDING"
    ]
    assert [(s.step_id, s.output) for s in plan.reused] == [
        (s.step_id, s.output) for s in run.steps.values() if s.status == "SUCCEEDED"
    ]
    assert run.retry_number == plan.retry_number
