"""What a run can do next, decided from its state alone: the control-flow rules.

:class:`Progress` reads a run (its plan, the state of each step instance, its maps and loops)
and lists the decisions that need no outside work: a branch chooses its case, the steps it did
not choose are skipped, a map evaluates its items, a loop goes round again or ends, a wait or a
signal starts waiting, a wait's time comes, a failure fails the step around it or the run, the
run succeeds. The Run aggregate records them (:meth:`Run.advance`); the agent calls and child
runs it may start are :meth:`Progress.ready_calls`, which the executor makes.

The rules of a block (the top level, or one item or iteration of a body):

* a step is *ready* when every step it depends on has finished — succeeded, or skipped — and
  at least one of them succeeded (a step that depends on nothing is ready at once);
* a step is *skipped* when a branch it is a case of chose another case, or when every step it
  depends on was skipped: the paths a branch did not take end SKIPPED, and fan-in after a
  branch waits only for the branch taken;
* a failed step fails the map or loop around it (or the run, at the top level), unless it is
  in an item of a map that continues on errors: then the rest of that item is skipped and the
  item's output is ``{"error": ...}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from flowledger.domain.expressions import ExpressionError, case_label, evaluate, truthy
from flowledger.domain.limits import LimitExceeded, RunLimits
from flowledger.domain.mappings import (
    Context,
    MappingError,
    is_reference,
    value_of,
)
from flowledger.domain.plans import CALL_KINDS, StepPlan, WorkflowPlan
from flowledger.domain.run_state import (
    CompositeState,
    StepState,
    StepStatus,
    enclosing_scopes,
    instance_key,
    iteration_scope,
    split_key,
    split_scope,
)
from flowledger.domain.step_kinds import parse_time


class RunView(Protocol):
    """What the rules read of a run."""

    @property
    def plan(self) -> WorkflowPlan: ...
    @property
    def limits(self) -> RunLimits: ...
    @property
    def status(self) -> str: ...
    @property
    def steps(self) -> Mapping[str, StepState]: ...
    @property
    def composites(self) -> Mapping[str, CompositeState]: ...
    @property
    def input_data(self) -> Mapping[str, Any]: ...
    @property
    def variables(self) -> Mapping[str, Any]: ...
    @property
    def operations(self) -> int: ...


# ---------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Skip:
    keys: tuple[str, ...]
    by_branch: bool
    """Skipped because of a branch (a retry keeps them) or of a failed item (a retry runs them)."""


@dataclass(frozen=True)
class Choose:
    key: str
    case: str | None
    value: Any


@dataclass(frozen=True)
class StartMap:
    key: str
    items: list[Any]


@dataclass(frozen=True)
class StartIteration:
    key: str
    index: int


@dataclass(frozen=True)
class Complete:
    """A map, a loop or a wait is done, with this output."""

    key: str
    output: Any


@dataclass(frozen=True)
class StartWait:
    key: str
    until: datetime


@dataclass(frozen=True)
class AwaitSignal:
    key: str
    signal: str
    timeout_at: datetime | None


@dataclass(frozen=True)
class TimeOut:
    """A signal did not come in time."""

    key: str


@dataclass(frozen=True)
class FailStep:
    key: str
    error: str


@dataclass(frozen=True)
class FailRun:
    error: str
    step_id: str | None


@dataclass(frozen=True)
class Succeed:
    output: Any


Decision = (
    Skip
    | Choose
    | StartMap
    | StartIteration
    | Complete
    | StartWait
    | AwaitSignal
    | TimeOut
    | FailStep
    | FailRun
    | Succeed
)
Verdict = Literal["ready", "wait", "skip", "blocked"]


# ---------------------------------------------------------------------------- the rules


class Progress:
    """The rules over one run's state at one moment (``now``: for waits and timeouts)."""

    def __init__(self, run: RunView, now: datetime) -> None:
        self.run = run
        self.plan = run.plan
        self.now = now
        self._budget_left: int | None = None

    # -- public --------------------------------------------------------------------------

    def decisions(self) -> list[Decision]:
        """The decisions that can be taken now (one pass; take them, then ask again)."""
        if self.run.status != "RUNNING":
            return []
        found: list[Decision] = []
        self._budget_left = self._budget()
        for scope in list(self.open_scopes()):
            failed = self._first_failed(scope)
            in_scope = self._failure(scope, failed) if failed else self._scope_decisions(scope)
            fatal: list[Decision] = [d for d in in_scope if isinstance(d, FailRun)]
            if fatal:
                return fatal[:1]
            found += in_scope
        if not found:
            status, output = self.scope_outcome("")
            if status == "done":
                found.append(Succeed(output))
        return found

    def _scope_decisions(self, scope: str) -> list[Decision]:
        found: list[Decision] = []
        skipped: list[str] = []
        overlay: dict[str, StepStatus] = {}
        for step in self.plan.block(self._parent_plan_id(scope)):
            key = instance_key(scope, step.step_id)
            state = self.run.steps.get(key)
            status = state.status if state is not None else "PENDING"
            if status == "PENDING":
                verdict = self.verdict(scope, step, overlay)
                if verdict == "skip":
                    skipped.append(key)
                    overlay[key] = "SKIPPED"
                elif verdict == "ready":
                    decision = self._ready(scope, key, step)
                    if isinstance(decision, FailRun):
                        return [decision]
                    if decision is not None:
                        found.append(decision)
                        overlay[key] = "RUNNING"
            elif status == "WAITING" and state is not None:
                found += self._waiting(state)
            elif status == "RUNNING" and state is not None and state.kind != "agent":
                found += self._composite(key, state)
        if skipped:
            found.insert(0, Skip(tuple(skipped), by_branch=True))
        return found

    def _ready(self, scope: str, key: str, step: StepPlan) -> Decision | None:
        """The decision that starts a ready step (None for calls: the executor starts them),
        within the run's operations limit."""
        budget = self._budget_left
        if budget is not None and budget <= 0:
            return self._over_budget(key)
        if step.kind in CALL_KINDS:
            return None
        decision = self._start(scope, key, step)
        if budget is not None:
            budget -= 1
            if isinstance(decision, StartMap):
                if len(decision.items) > budget:
                    return self._over_budget(key, len(decision.items))
                budget -= len(decision.items)
            self._budget_left = budget
        return decision

    def ready_calls(self) -> list[str]:
        """Agent calls and child runs that may start now, in plan order (items in order),
        at most as many as the run's operations limit leaves."""
        if self.run.status != "RUNNING":
            return []
        ready = []
        for scope in self.open_scopes():
            if self._first_failed(scope) is not None:
                continue
            for step in self.plan.block(self._parent_plan_id(scope)):
                if step.kind not in CALL_KINDS:
                    continue
                key = instance_key(scope, step.step_id)
                state = self.run.steps.get(key)
                if (state is None or state.status == "PENDING") and self.verdict(
                    scope, step, {}
                ) == "ready":
                    ready.append(key)
        budget = self._budget()
        return ready if budget is None else ready[: max(budget, 0)]

    def verdict(self, scope: str, step: StepPlan, overlay: Mapping[str, StepStatus]) -> Verdict:
        """Whether a pending step of a block may start, must wait, or is skipped."""
        live = 0
        waiting = False
        for dep in step.depends_on:
            key = instance_key(scope, dep)
            state = self.run.steps.get(key)
            status = overlay.get(key) or (state.status if state is not None else "PENDING")
            if status in ("FAILED", "CANCELLED"):
                return "blocked"
            if status == "SKIPPED":
                continue
            if status != "SUCCEEDED":
                waiting = True
                continue
            cases = self.plan.branch_cases(step.step_id, dep)
            if cases is not None and state is not None and state.case not in cases:
                return "skip"  # the branch chose another case
            live += 1
        if waiting:
            return "wait"
        return "ready" if live or not step.depends_on else "skip"

    def context(self, key: str) -> Context:
        """What the step instance's mapping and expressions read."""
        scope, _ = split_key(key)
        outputs: dict[str, Any] = {}
        for step in self.plan.steps:
            self._add_output(outputs, step.step_id)
        scopes = list(enclosing_scopes(scope))
        for inner_scope, composite_key, _ in reversed(scopes):
            composite_id = split_key(composite_key)[1]
            for step in self.plan.block(composite_id):
                self._add_output(outputs, instance_key(inner_scope, step.step_id))
        local_values: dict[str, Any] = {}
        for _, composite_key, index in scopes:
            composite = self.run.composites.get(composite_key)
            if composite is None:
                continue
            local_values.setdefault("index", index)
            if composite.kind == "foreach" and "item" not in local_values:
                local_values["item"] = composite.items[index]
            if composite.kind == "do_while" and "iteration" not in local_values:
                local_values["iteration"] = index + 1
                local_values["previous"] = composite.outputs.get(index - 1)
        return Context(self.run.input_data, self.run.variables, outputs, local_values)

    def value(self, key: str, expression: Any) -> Any:
        """An expression's (or a reference's) value for the step instance ``key``."""
        context = self.context(key)
        if is_reference(expression):
            return value_of(expression, context)
        return evaluate(expression, context.document())

    def open_scopes(self) -> Iterator[str]:
        """The top level, and each item or iteration of a running map or loop that may have
        steps to run (a map: the items begun and not finished, and the next ones up to its
        parallel limit)."""
        yield ""
        for key, composite in self.run.composites.items():
            state = self.run.steps.get(key)
            if state is None or state.status != "RUNNING":
                continue
            if composite.kind == "do_while":
                yield iteration_scope(key, composite.started - 1)
                continue
            busy = sorted(composite.active)
            yield from (iteration_scope(key, index) for index in busy)
            room = self._map_parallel(key) - len(busy)
            last = min(len(composite.items), composite.started + room)
            yield from (iteration_scope(key, index) for index in range(composite.started, last))

    def block_output(self, scope: str) -> Any:
        """A finished block's output: its last step's, or of several, each by step id (steps
        that were skipped are left out)."""
        parent = self._parent_plan_id(scope)
        sinks = []
        for step_id in self.plan.sinks(parent):
            state = self.run.steps.get(instance_key(scope, step_id))
            if state is not None and state.status != "SKIPPED":
                sinks.append((step_id, state.output))
        if len(sinks) == 1:
            return sinks[0][1]
        return dict(sinks)

    def scope_outcome(self, scope: str) -> tuple[Literal["running", "done", "failed"], Any]:
        """Whether every step of a block has finished, and its output or first error."""
        error = None
        for step in self.plan.block(self._parent_plan_id(scope)):
            state = self.run.steps.get(instance_key(scope, step.step_id))
            if state is None or not state.settled:
                return "running", None
            if state.status == "FAILED" and error is None:
                error = state.error or "failed"
        if error is not None:
            return "failed", error
        return "done", self.block_output(scope)

    def failure_origin(self, key: str) -> str:
        """The innermost step instance whose failure failed ``key`` (itself if not a map or
        loop)."""
        composite = self.run.composites.get(key)
        while composite is not None:
            inner = None
            for index in range(composite.started - 1, -1, -1):
                inner = self._first_failed(iteration_scope(key, index))
                if inner is not None:
                    break
            if inner is None:
                return key
            key = inner
            composite = self.run.composites.get(key)
        return key

    # -- private -------------------------------------------------------------------------

    def _parent_plan_id(self, scope: str) -> str | None:
        """The map or loop whose body a scope runs (None: the top level)."""
        if not scope:
            return None
        return split_key(split_scope(scope)[0])[1]

    def _add_output(self, outputs: dict[str, Any], key: str) -> None:
        state = self.run.steps.get(key)
        if state is not None and state.status == "SUCCEEDED":
            outputs[split_key(key)[1]] = state.output

    def _first_failed(self, scope: str) -> str | None:
        for step in self.plan.block(self._parent_plan_id(scope)):
            key = instance_key(scope, step.step_id)
            state = self.run.steps.get(key)
            if state is not None and state.status == "FAILED":
                return key
        return None

    def _failure(self, scope: str, failed: str) -> list[Decision]:
        error = self.run.steps[failed].error or "failed"
        if not scope:
            origin = self.failure_origin(failed)
            origin_error = self.run.steps[origin].error or error
            return [FailRun(f"step {origin!r} failed: {origin_error}", origin)]
        composite_key, _ = split_scope(scope)
        composite = self.run.steps[composite_key]
        if composite.status != "RUNNING":
            return []
        plan = self.plan.step(composite.plan_id)
        if plan.kind == "foreach" and plan.options.get("continue_on_error"):
            pending = [
                instance_key(scope, step.step_id)
                for step in self.plan.block(plan.step_id)
                if (state := self.run.steps.get(instance_key(scope, step.step_id))) is None
                or state.status == "PENDING"
            ]
            return [Skip(tuple(pending), by_branch=False)] if pending else []
        return [FailStep(composite_key, error)]

    def _start(self, scope: str, key: str, step: StepPlan) -> Decision:
        depth = self.plan.depth_of(step.step_id) + 1
        limit = self.run.limits.max_loop_depth
        if step.kind in ("foreach", "do_while") and limit is not None and depth > limit:
            error = LimitExceeded(
                "max_loop_depth", limit, f"{step.kind} {key!r} would nest {depth} deep"
            )
            return FailRun(str(error), key)
        try:
            if step.kind in ("if", "switch"):
                return self._choose(key, step)
            if step.kind == "foreach":
                items = self.value(key, step.options["items"])
                if not isinstance(items, list):
                    return FailStep(key, f"items must be a list, got {_type_name(items)}")
                return StartMap(key, items)
            if step.kind == "do_while":
                return StartIteration(key, 0)
            if step.kind == "wait":
                return StartWait(key, self._wait_until(key, step))
            if step.kind == "signal":
                timeout_at = (
                    self.now + timedelta(milliseconds=step.timeout_ms) if step.timeout_ms else None
                )
                return AwaitSignal(key, step.options["signal"], timeout_at)
        except (ExpressionError, MappingError, ValueError) as error:
            return FailStep(key, f"{step.kind} failed: {error}")
        raise AssertionError(f"{step.kind} steps are started by the executor")  # pragma: no cover

    def _choose(self, key: str, step: StepPlan) -> Choose:
        if step.kind == "if":
            value = self.value(key, step.options["condition"])
            return Choose(key, "then" if truthy(value) else "else", value)
        value = self.value(key, step.options["expression"])
        label = case_label(value)
        return Choose(key, label if label in step.options["cases"] else None, value)

    def _wait_until(self, key: str, step: StepPlan) -> datetime:
        if "duration_ms" in step.options:
            duration = step.options["duration_ms"]
            if isinstance(duration, str):
                duration = self.value(key, duration)
            if isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0:
                raise ValueError(f"duration_ms must be a number of milliseconds, got {duration!r}")
            return self.now + timedelta(milliseconds=duration)
        until = step.options["until"]
        moment = parse_time(until) if isinstance(until, str) else None
        if moment is None:
            until = self.value(key, until)
            moment = parse_time(until) if isinstance(until, str) else None
        if moment is None or moment.tzinfo is None:
            raise ValueError(f"until must be an RFC 3339 time with a time zone, got {until!r}")
        return moment

    def _waiting(self, state: StepState) -> list[Decision]:
        if state.wake_at is None or state.wake_at > self.now:
            return []
        if state.kind == "wait":
            return [Complete(state.step_id, {"waited_until": state.wake_at.isoformat()})]
        return [TimeOut(state.step_id)]

    def _composite(self, key: str, state: StepState) -> list[Decision]:
        composite = self.run.composites.get(key)
        if composite is None:
            return []
        if composite.kind == "foreach":
            if composite.finished < len(composite.items):
                return []
            outputs = [
                composite.outputs[i] if i in composite.outputs else {"error": composite.errors[i]}
                for i in range(len(composite.items))
            ]
            return [Complete(key, outputs)]
        index = composite.started - 1
        if index not in composite.outputs:
            return []
        step = self.plan.step(state.plan_id)
        condition = step.options.get("while", step.options.get("until"))
        scope = iteration_scope(key, index)
        try:
            value = self.value(instance_key(scope, "_"), condition)
        except (ExpressionError, MappingError) as failure:
            return [FailStep(key, f"loop condition failed: {failure}")]
        again = truthy(value) if "while" in step.options else not truthy(value)
        if not again:
            return [Complete(key, composite.outputs[index])]
        limit = self.run.limits.max_loop_iterations
        if limit is not None and index + 1 >= limit:
            error = LimitExceeded(
                "max_loop_iterations", limit, f"loop {key!r} would start iteration {index + 2}"
            )
            return [FailRun(str(error), key)]
        return [StartIteration(key, index + 1)]

    def _map_parallel(self, key: str) -> int:
        plan = self.plan.step(split_key(key)[1])
        given = plan.options.get("max_parallel") or self.run.limits.max_parallel_nodes
        return int(given) if given else len(self.run.composites[key].items)

    def _budget(self) -> int | None:
        limit = self.run.limits.max_total_operations
        return None if limit is None else limit - self.run.operations

    def _over_budget(self, key: str, items: int | None = None) -> FailRun:
        limit = self.run.limits.max_total_operations
        detail = (
            f"map {key!r} over {items} items would run more steps than the run may"
            if items is not None
            else f"the run performed {self.run.operations} steps and {key!r} would be one more"
        )
        return FailRun(str(LimitExceeded("max_total_operations", limit, detail)), key)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", str: "a string", bool: "a boolean"}.get(type(value), "a number")
