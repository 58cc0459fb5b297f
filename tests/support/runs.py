"""Building runs and plans for tests."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

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
