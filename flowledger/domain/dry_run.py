"""Dry runs: walk a plan as a run would, with mocked outputs, calling no agent and recording
nothing — to check mappings, conditions and the order of steps before running for real.

A dry run is a real :class:`~flowledger.domain.runs.Run`, kept in memory and driven here
instead of by the executor, so it follows the same rules: branches choose, maps run each item,
loops go round, limits apply. Where a run would wait, a dry run does not:

* an agent call (or a sub-workflow) outputs its mock (``mock_outputs[step id]``, or
  ``mock_outputs[instance key]`` for one item, e.g. ``each[2].price``) or, without one, its
  resolved input (as the echo agent would answer);
* a signal step receives its mock as the signal's data, or its ``default``, or ``{}``;
* a wait ends at once (the trace says until when it would have waited).

Steps are traced in the order they began, each with the *wave* it began in: the steps of one
wave could run at the same time. A step whose input cannot be resolved fails, as in a run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from uuid import uuid4

from flowledger.domain.errors import Conflict
from flowledger.domain.limits import RunLimits
from flowledger.domain.mappings import MappingError, resolve_in
from flowledger.domain.plans import WorkflowPlan
from flowledger.domain.run_state import split_key, split_scope
from flowledger.domain.runs import Run

TraceStatus = Literal["SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"]
OutputSource = Literal["mock", "echo", "default"]
MAX_WAVES: Final = 100_000


@dataclass(frozen=True)
class TracedStep:
    order: int
    wave: int
    step_id: str
    """The step instance (``each[2].price`` inside a map)."""
    agent_name: str | None
    depends_on: tuple[str, ...]
    status: TraceStatus
    input: Any = None
    output: Any = None
    output_source: OutputSource | None = None
    error: str | None = None
    duration_ms: float = 0.0
    kind: str = "agent"
    parent_step_id: str | None = None
    """The map or loop instance the step ran in."""
    index: int | None = None
    """Its item (or iteration) there, from 0."""
    note: str | None = None
    """What a control step decided: the case chosen, the items, the time it would wait."""


@dataclass(frozen=True)
class DryRun:
    status: Literal["SUCCEEDED", "FAILED"]
    steps: tuple[TracedStep, ...]
    output: Any
    duration_ms: float
    error: str | None = None


def dry_run(
    plan: WorkflowPlan,
    input_data: Mapping[str, Any],
    variables: Mapping[str, Any],
    mock_outputs: Mapping[str, Any],
    limits: RunLimits | None = None,
) -> DryRun:
    started = time.perf_counter()
    walk = _Walk(plan, input_data, variables, mock_outputs, limits or RunLimits())
    walk.run_to_the_end()
    run = walk.run
    return DryRun(
        status="SUCCEEDED" if run.status == "SUCCEEDED" else "FAILED",
        steps=walk.trace(),
        output=run.output if run.status == "SUCCEEDED" else None,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        error=run.error,
    )


class _Walk:
    def __init__(
        self,
        plan: WorkflowPlan,
        input_data: Mapping[str, Any],
        variables: Mapping[str, Any],
        mock_outputs: Mapping[str, Any],
        limits: RunLimits,
    ) -> None:
        self.plan = plan
        self.mocks = mock_outputs
        self.run = Run(
            workflow_id=uuid4(),
            workflow_name="dry-run",
            workflow_version=0,
            plan=plan.to_dict(),
            agents={},
            input_data=dict(input_data),
            variables=dict(variables),
            triggered_by="dry-run",
            idempotency_key=None,
            limits=limits.to_dict(),
        )
        self.clock = datetime.now(UTC)
        self.wave = 0
        self.first_seen: dict[str, int] = {}
        """The wave each instance began in, in the order they began."""
        self.sources: dict[str, OutputSource] = {}
        self.notes: dict[str, str] = {}
        self.durations: dict[str, float] = {}

    def run_to_the_end(self) -> None:
        run = self.run
        run.start()
        while not run.is_finished and self.wave < MAX_WAVES:
            self.wave += 1
            run.advance(self.clock)
            self._note_events()
            if run.is_finished:
                break
            moved = self._deliver_signals() + self._make_calls()
            self._note_events()
            if not moved and not run.is_finished:
                wake = run.next_wake()
                if wake is None:
                    run.fail("the dry run cannot go on: nothing can happen without news")
                    break
                self.clock = max(self.clock, wake) + timedelta(microseconds=1)
        self._note_events()

    def _deliver_signals(self) -> int:
        delivered = 0
        for key in list(self.run.waiting):
            state = self.run.steps[key]
            if state.signal is None:
                continue
            data, source = self._mock(key)
            if source == "echo":
                options = self.run.plan_step(key).options
                data, source = (
                    (options["default"], "default") if "default" in options else ({}, "echo")
                )
            self.sources[key] = source
            self.run.receive_signal(state.signal, data, key)
            delivered += 1
        return delivered

    def _make_calls(self) -> int:
        made = 0
        for key in self.run.ready_calls():
            if self.run.is_finished:
                break  # a mapping that failed before in this wave ended the run
            began = time.perf_counter()
            try:
                step_input = resolve_in(
                    self.run.plan_step(key).input_mapping, self.run.context(key)
                )
            except MappingError as error:
                self.run.fail_step(key, f"input mapping failed: {error}")
                self.run.advance(self.clock)
                made += 1
                continue
            try:
                attempt = self.run.start_step(key, step_input)
            except Conflict:
                continue  # the run's parallel limit: next wave
            output, source = self._mock(key, step_input)
            self.sources[key] = source
            self.run.succeed_step(key, attempt, output)
            self.durations[key] = round((time.perf_counter() - began) * 1000, 3)
            made += 1
        return made

    def _mock(self, key: str, echo: Any = None) -> tuple[Any, OutputSource]:
        for name in (key, split_key(key)[1]):
            if name in self.mocks:
                return self.mocks[name], "mock"
        return echo if echo is not None else {}, "echo"

    def _note_events(self) -> None:
        for event in self.run.collect_events():
            key = getattr(event, "step_id", None)
            keys = list(getattr(event, "step_ids", None) or ([key] if key else []))
            for each in keys:
                self.first_seen.setdefault(each, self.wave)
            note = _note(event)
            if note is not None and key is not None:
                self.notes[key] = note

    def trace(self) -> tuple[TracedStep, ...]:
        keys = list(self.first_seen)
        keys += [s.step_id for s in self.plan.steps if s.step_id not in self.first_seen]
        traced = []
        for order, key in enumerate(keys, start=1):
            state = self.run.steps[key]
            plan = self.run.plan_step(key)
            status = state.status if state.status in _TRACED else "CANCELLED"
            scope = state.scope
            parent, index = split_scope(scope) if scope else (None, None)
            traced.append(
                TracedStep(
                    order=order,
                    wave=self.first_seen.get(key, self.wave),
                    step_id=key,
                    agent_name=state.agent_name,
                    depends_on=plan.depends_on,
                    status=status,  # type: ignore[arg-type]
                    input=state.current.input if state.current else state.input,
                    output=state.output,
                    output_source=self.sources.get(key) if status == "SUCCEEDED" else None,
                    error=state.error,
                    duration_ms=self.durations.get(key, 0.0),
                    kind=state.kind,
                    parent_step_id=parent,
                    index=index,
                    note=self.notes.get(key) or _kind_note(plan.kind, plan.options),
                )
            )
        return tuple(traced)


_TRACED: Final = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"})


def _kind_note(kind: str, options: Mapping[str, Any]) -> str | None:
    if kind == "workflow":
        return f"would run workflow {options['workflow_name']!r} as a child run"
    return None


def _note(event: object) -> str | None:
    if isinstance(event, Run.BranchChosen):
        return f"chose {event.case!r}" if event.case is not None else "no case matched: default"
    if isinstance(event, Run.MapStarted):
        return f"{len(event.items)} items"
    if isinstance(event, Run.IterationStarted):
        return f"{event.index + 1} iterations"
    if isinstance(event, Run.WaitStarted):
        return f"would wait until {event.until.isoformat()} (a dry run does not wait)"
    if isinstance(event, Run.SignalAwaited):
        return f"waits for signal {event.signal!r} (a dry run takes its mock)"
    if isinstance(event, Run.SignalTimedOut):
        return f"no signal {event.signal!r} in time"
    return None
