"""The normalised, validated form of a workflow definition: what a run executes.

Definitions come in two forms (``start_step``/``next_step`` chains, or steps that list
``depends_on``); both normalise to one :class:`WorkflowPlan`, a DAG of :class:`StepPlan`. A run
pins the plan of the workflow version it was started from, so later versions never change it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepPlan:
    step_id: str
    agent_name: str
    depends_on: tuple[str, ...] = ()
    """Steps that must have succeeded before this one starts (fan-in when several)."""
    input_mapping: Mapping[str, Any] = field(default_factory=dict)
    """See :mod:`flowledger.domain.mappings`."""
    timeout_ms: int | None = None
    """Overrides the agent's call timeout for this step."""
    retry: Mapping[str, Any] | None = None
    """Overrides some of the agent's retry settings for this step (RetryPolicy field names)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "step_id": self.step_id,
            "agent_name": self.agent_name,
            "depends_on": list(self.depends_on),
            "input_mapping": dict(self.input_mapping),
            "timeout_ms": self.timeout_ms,
            "retry": dict(self.retry) if self.retry is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepPlan:
        return cls(
            step_id=data["step_id"],
            agent_name=data["agent_name"],
            depends_on=tuple(data.get("depends_on") or ()),
            input_mapping=dict(data.get("input_mapping") or {}),
            timeout_ms=data.get("timeout_ms"),
            retry=data.get("retry"),
        )


@dataclass(frozen=True)
class WorkflowPlan:
    steps: tuple[StepPlan, ...]
    """Every step, in a topological order (each after all it depends on)."""
    variables: Mapping[str, Any] = field(default_factory=dict)
    """Variable defaults; ``$.vars.<name>`` reads them."""
    input_schema: Mapping[str, Any] | None = None
    """JSON Schema the run input must satisfy, if any."""
    timeout_ms: int | None = None
    """Longest a whole run may take."""
    max_parallel_steps: int | None = None
    """Most steps of one run called at the same time (None: no limit of the workflow's own)."""

    def step(self, step_id: str) -> StepPlan:
        for step in self.steps:
            if step.step_id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def step_ids(self) -> tuple[str, ...]:
        return tuple(step.step_id for step in self.steps)

    def upstream(self, step_id: str) -> set[str]:
        """Every step ``step_id`` depends on, directly or not."""
        seen: set[str] = set()
        pending = list(self.step(step_id).depends_on)
        while pending:
            current = pending.pop()
            if current not in seen:
                seen.add(current)
                pending.extend(self.step(current).depends_on)
        return seen

    def ready(self, succeeded: Iterable[str], started: Iterable[str]) -> list[str]:
        """Steps not yet started whose dependencies have all succeeded, in plan order."""
        done = set(succeeded)
        begun = set(started) | done
        return [
            s.step_id
            for s in self.steps
            if s.step_id not in begun and all(d in done for d in s.depends_on)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [step.to_dict() for step in self.steps],
            "variables": dict(self.variables),
            "input_schema": dict(self.input_schema) if self.input_schema is not None else None,
            "timeout_ms": self.timeout_ms,
            "max_parallel_steps": self.max_parallel_steps,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowPlan:
        return cls(
            steps=tuple(StepPlan.from_dict(s) for s in data["steps"]),
            variables=dict(data.get("variables") or {}),
            input_schema=data.get("input_schema"),
            timeout_ms=data.get("timeout_ms"),
            max_parallel_steps=data.get("max_parallel_steps"),
        )
