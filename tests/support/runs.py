"""Building runs and plans for tests."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

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
