"""Dry runs: walk a plan as a run would, with mocked outputs, calling no agent and recording
nothing — to check mappings and the order of steps before running for real.

Steps are visited in waves: every step of a wave could run in parallel once the previous
waves succeeded. A step's output is its mock (``mock_outputs[step_id]``) or, without one, its
resolved input (as the echo agent would answer). A step whose input cannot be resolved fails;
the steps after it are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from flowledger.domain.mappings import MappingError, resolve
from flowledger.domain.plans import WorkflowPlan

TraceStatus = Literal["SUCCEEDED", "FAILED", "SKIPPED"]


@dataclass(frozen=True)
class TracedStep:
    order: int
    wave: int
    step_id: str
    agent_name: str
    depends_on: tuple[str, ...]
    status: TraceStatus
    input: Any = None
    output: Any = None
    output_source: Literal["mock", "echo"] | None = None
    error: str | None = None
    duration_ms: float = 0.0


@dataclass(frozen=True)
class DryRun:
    status: Literal["SUCCEEDED", "FAILED"]
    steps: tuple[TracedStep, ...]
    output: Any
    duration_ms: float


def dry_run(
    plan: WorkflowPlan,
    input_data: Mapping[str, Any],
    variables: Mapping[str, Any],
    mock_outputs: Mapping[str, Any],
) -> DryRun:
    started = time.perf_counter()
    outputs: dict[str, Any] = {}
    failed: set[str] = set()
    traced: list[TracedStep] = []
    waves = _waves(plan)
    for wave_number, wave in enumerate(waves, start=1):
        for step_id in wave:
            step = plan.step(step_id)
            skipped = TracedStep(
                order=len(traced) + 1,
                wave=wave_number,
                step_id=step_id,
                agent_name=step.agent_name,
                depends_on=step.depends_on,
                status="SKIPPED",
            )
            if any(dep in failed or dep not in outputs for dep in step.depends_on):
                failed.add(step_id)
                traced.append(skipped)
                continue
            step_started = time.perf_counter()
            try:
                step_input = resolve(
                    step.input_mapping, input_data=input_data, variables=variables, outputs=outputs
                )
            except MappingError as error:
                failed.add(step_id)
                traced.append(
                    replace(skipped, status="FAILED", error=f"input mapping failed: {error}")
                )
                continue
            mocked = step_id in mock_outputs
            output = mock_outputs[step_id] if mocked else step_input
            outputs[step_id] = output
            traced.append(
                replace(
                    skipped,
                    status="SUCCEEDED",
                    input=step_input,
                    output=output,
                    output_source="mock" if mocked else "echo",
                    duration_ms=round((time.perf_counter() - step_started) * 1000, 3),
                )
            )
    needed = {d for s in plan.steps for d in s.depends_on}
    sinks = [s.step_id for s in plan.steps if s.step_id not in needed]
    output = outputs.get(sinks[0]) if len(sinks) == 1 else {s: outputs.get(s) for s in sinks}
    return DryRun(
        status="FAILED" if failed else "SUCCEEDED",
        steps=tuple(traced),
        output=None if failed else output,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )


def _waves(plan: WorkflowPlan) -> list[list[str]]:
    done: set[str] = set()
    waves: list[list[str]] = []
    remaining = list(plan.step_ids)
    while remaining:
        wave = [s for s in remaining if all(d in done for d in plan.step(s).depends_on)]
        if not wave:  # a plan is acyclic; guard anyway
            wave = remaining[:1]
        waves.append(wave)
        done.update(wave)
        remaining = [s for s in remaining if s not in done]
    return waves
