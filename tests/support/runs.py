"""Building runs and plans for tests."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from hypothesis import strategies as st

from flowledger.domain.definitions import validated_plan
from flowledger.domain.mappings import resolve_in
from flowledger.domain.plans import StepPlan, WorkflowPlan
from flowledger.domain.runs import Run

AGENT_ID = UUID("00000000-0000-0000-0000-0000000000a1")


def binding(max_retries: int = 2, timeout_ms: int = 5000) -> dict[str, Any]:
    return {
        "agent_id": str(AGENT_ID),
        "url": "http://agent",
        "timeout_ms": timeout_ms,
        "retry_config": {"max_retries": max_retries, "initial_delay_ms": 100},
    }


def diamond(max_parallel: int | None = None) -> WorkflowPlan:
    """a → (b, c) → d"""
    return WorkflowPlan(
        steps=(
            StepPlan("a", "echo"),
            StepPlan("b", "echo", depends_on=("a",)),
            StepPlan("c", "echo", depends_on=("a",)),
            StepPlan("d", "echo", depends_on=("b", "c")),
        ),
        max_parallel_steps=max_parallel,
    )


def requested(plan: WorkflowPlan | None = None, **overrides: Any) -> Run:
    fields: dict[str, Any] = {
        "workflow_id": uuid4(),
        "workflow_name": "wf",
        "workflow_version": 1,
        "plan": (plan or diamond()).to_dict(),
        "agents": {"echo": binding()},
        "input_data": {"x": 1},
        "variables": {},
        "triggered_by": "tester",
        "idempotency_key": None,
    }
    fields.update(overrides)
    return Run(**fields)


# ---------------------------------------------------------------------------- control flow

LIMITS = {
    "workflow_timeout_ms": 300_000,
    "max_loop_iterations": 100,
    "max_total_operations": 1000,
    "max_loop_depth": 10,
    "max_parallel_nodes": 10,
}
"""Spec 004's limits, as a run pins them."""
AGENTS = {"echo": "active"}


def plan_of(definition: dict[str, Any]) -> WorkflowPlan:
    """The plan of a valid definition whose steps call ``echo``."""
    plan, problems = validated_plan(definition, AGENTS, {"child": "active"})
    assert plan is not None, problems
    return plan


def started_run(
    definition: dict[str, Any], input_data: dict[str, Any] | None = None, **limits: Any
) -> Run:
    """A run of the definition, started, its events collected (so the next ones are a
    command's)."""
    run = requested(plan_of(definition), input_data=input_data or {}, limits={**LIMITS, **limits})
    run.start()
    list(run.collect_events())
    return run


def call(run: Run, key: str, output: Any = None) -> int:
    """Start the step instance and succeed it (with its input as output by default)."""
    step_input = resolve_in(run.plan_step(key).input_mapping, run.context(key))
    attempt = run.start_step(key, step_input)
    run.succeed_step(key, attempt, step_input if output is None else output)
    return attempt


def drive(
    run: Run, now: datetime, outputs: dict[str, Any] | None = None, rounds: int = 1000
) -> Counter[str]:
    """Drive the run as the executor would, each call answering at once (its input, or
    ``outputs[plan step id]``); how often each plan step was called."""
    calls: Counter[str] = Counter()
    for _ in range(rounds):
        run.advance(now)
        ready = run.ready_calls()
        if run.is_finished or not ready:
            return calls
        for key in ready:
            plan_id = key.rpartition(".")[2]
            call(run, key, (outputs or {}).get(plan_id))
            calls[plan_id] += 1
    raise AssertionError(f"run {run.id} did not settle in {rounds} rounds")


# Random command sequences on a diamond run (property tests of the Run aggregate).

STEPS = ["a", "b", "c", "d"]
commands = st.lists(  # of tuples: the command's name, then its arguments
    st.one_of(
        st.tuples(st.just("start")),
        st.tuples(st.just("start_step"), st.sampled_from(STEPS)),
        st.tuples(st.just("succeed_step"), st.sampled_from(STEPS)),
        st.tuples(st.just("fail_attempt"), st.sampled_from(STEPS), st.booleans()),
        st.tuples(st.just("interrupt"), st.sampled_from(STEPS)),
        st.tuples(st.just("fail")),
        st.tuples(st.just("succeed")),
        st.tuples(st.just("cancel")),
        st.tuples(st.just("retry")),
    ),
    max_size=40,
)


def apply(run: Run, command: tuple[Any, ...]) -> None:
    """Run one command of :data:`commands` (it may raise Conflict, as the aggregate decides)."""
    name = command[0]
    if name == "start":
        run.start()
    elif name == "start_step":
        run.start_step(command[1], {"for": command[1]})
    elif name in ("succeed_step", "fail_attempt", "interrupt"):
        step = run.steps[command[1]]
        number = step.current.number if step.current else 1
        if name == "succeed_step":
            run.succeed_step(command[1], number, {"out": command[1]})
        elif name == "fail_attempt":
            run.fail_attempt(command[1], number, "boom", 100 if command[2] else None)
        else:
            run.interrupt_attempt(command[1], number)
    elif name == "fail":
        run.fail("gave up")
    elif name == "succeed":
        run.succeed()
    elif name == "cancel":
        run.cancel()
    else:
        run.retry()


# Runs recorded straight into the store in a given state (what a bulk operation finds).

TWO_STEPS = WorkflowPlan(
    steps=(StepPlan("a", "echo"), StepPlan("b", "transform", depends_on=("a",)))
)


def run_in_state(
    status: str,
    *,
    workflow_id: UUID,
    plan: WorkflowPlan = TWO_STEPS,
    agents: dict[str, dict[str, Any]] | None = None,
    input_data: dict[str, Any] | None = None,
) -> Run:
    """A run of ``plan`` brought to ``status`` (events not yet recorded: record them in one
    append, so an executor never sees it PENDING unless it is meant to be). FAILED: the first
    step succeeded and the second failed; RUNNING: the first step is in flight."""
    run = requested(
        plan,
        workflow_id=workflow_id,
        agents=agents or {name: binding() for name in {s.agent_name for s in plan.steps}},
        input_data=input_data or {},
    )
    if status == "PENDING":
        return run
    run.start()
    first, *rest = plan.step_ids
    attempt = run.start_step(first, {})
    if status == "RUNNING":
        return run
    if status == "CANCELLED":
        run.cancel("cancelled by the test")
        return run
    run.succeed_step(first, attempt, {"from": first})
    if status == "FAILED":
        run.fail_attempt(rest[0], run.start_step(rest[0], {}), "agent down", None)
        run.fail(f"step {rest[0]} failed", rest[0])
        return run
    for step_id in rest:
        run.succeed_step(step_id, run.start_step(step_id, {}), {"from": step_id})
    run.succeed()
    assert run.status == status, f"cannot make a {status} run"
    return run
