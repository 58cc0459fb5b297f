"""Workflow definitions: what a user writes, the rules it must follow, and the plan it becomes.

A *definition* is everything about a workflow that is versioned::

    {
      "start_step": "fetch",                        # optional
      "steps": {                                    # required, keyed by step id
        "fetch": {"agent_name": "fetcher", "next_step": "summarise",
                  "input_mapping": {"url": "$.input.url"}},
        "summarise": {"agent_name": "summarizer", "timeout_ms": 60000,
                      "retry_config": {"max_retries": 1},
                      "input_mapping": {"text": "$.steps.fetch.output.text",
                                        "style": "$.vars.style"}}
      },
      "variables": {"style": "bullets"},            # optional defaults, read by $.vars.<name>
      "input_schema": {"type": "object"},           # optional JSON Schema of the run input
      "timeout_ms": 600000,                         # optional, the whole run
      "max_parallel_steps": 4,                      # optional
      "triggers": [{"type": "schedule", "cron": "0 * * * *"}]   # optional, see triggers.py
    }

Steps are linked either the spec's way (``next_step``: the step that runs after this one) or as
a graph (``depends_on``: the steps that must succeed first; several steps may depend on one —
fan-out — and one step on several — fan-in). Both may be mixed: ``next_step: b`` on step ``a``
means ``b`` depends on ``a``. When ``start_step`` is given every step must be reachable from it;
without it, the steps that depend on nothing start the run. Either way the definition becomes a
:class:`~flowledger.domain.plans.WorkflowPlan`, the DAG a run executes.

:func:`validated_plan` checks everything at once and names each problem's location with a
dotted path (``steps.fetch.agent_name``, ``steps.fetch.input_mapping.url``, ``start_step``).
Whether agents exist is a fact the caller gathers and passes in (name → status).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from flowledger.domain.errors import FieldProblem
from flowledger.domain.expressions import LOOP_LOCALS, MAP_LOCALS, Names
from flowledger.domain.limits import RunLimits
from flowledger.domain.plans import STEP_KINDS, StepPlan, WorkflowPlan
from flowledger.domain.step_kinds import (
    IDENTIFIER,
    Place,
    body_of,
    branch_targets,
    data_problems,
    field_problems,
    json_schema_problems,
    kind_of,
    kind_problems,
    options_of,
    reading_problems,
)
from flowledger.domain.triggers import trigger_problems

DEFINITION_FIELDS: Final = (
    "start_step",
    "steps",
    "variables",
    "input_schema",
    "timeout_ms",
    "max_parallel_steps",
    "triggers",
)
MAX_STEPS: Final = 200
"""Steps of a definition, at every depth."""
WORKFLOW_TIMEOUT_MS_MIN: Final = 1_000
WORKFLOW_TIMEOUT_MS_MAX: Final = 86_400_000
MAX_PARALLEL_STEPS_MAX: Final = 100
IDENTIFIER_MAX_LENGTH: Final = 100

Dependencies = dict[str, list[str]]
"""Each step's direct dependencies (steps that must finish before it), among existing steps."""


def stored_definition(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The definition as kept in a version: its fields that are set (null means absent)."""
    return {key: value for key, value in definition.items() if value is not None}


def agent_names(definition: Mapping[str, Any]) -> set[str]:
    """The agent names a (possibly invalid) definition's steps use, at any depth."""
    return {
        step["agent_name"]
        for step in _every_step(definition.get("steps"))
        if step.get("type", "agent") == "agent" and isinstance(step.get("agent_name"), str)
    }


def workflow_names(definition: Mapping[str, Any]) -> set[str]:
    """The workflows a (possibly invalid) definition's ``workflow`` steps call."""
    return {
        step["workflow_name"]
        for step in _every_step(definition.get("steps"))
        if step.get("type") == "workflow" and isinstance(step.get("workflow_name"), str)
    }


def _every_step(steps: object) -> Iterator[Mapping[str, Any]]:
    if not isinstance(steps, Mapping):
        return
    for step in steps.values():
        if isinstance(step, Mapping):
            yield step
            yield from _every_step(step.get("steps") if step.get("type") else None)


@dataclass(frozen=True)
class _Enclosing:
    """What a block inherits from the steps around it."""

    at: str
    """Where its steps are written: ``steps``, ``steps.each.steps``."""
    visible: frozenset[str] = frozenset()
    """Steps outside the block its steps may read (the composite's upstream, and so on)."""
    local_names: frozenset[str] = frozenset()
    depth: int = 0
    """Maps and loops around the block."""


def validated_plan(
    definition: Mapping[str, Any],
    agents: Mapping[str, str],
    workflows: Mapping[str, str] | None = None,
    limits: RunLimits | None = None,
) -> tuple[WorkflowPlan | None, list[FieldProblem]]:
    """The plan of a definition, or None and every problem found.

    ``agents`` maps the name of each registered agent the definition uses to its status; a
    name that is absent has no (live) agent. ``workflows`` does the same for the workflows its
    ``workflow`` steps call (None: not checked). ``limits`` bounds how deep maps and loops nest
    (``MAX_LOOP_DEPTH``).
    """
    problems = [
        FieldProblem(key, "is not a known field")
        for key in definition
        if key not in DEFINITION_FIELDS
    ]
    problems += nul_problems(definition)
    steps = definition.get("steps")
    if steps is None:
        return None, [*problems, FieldProblem("steps", "is required")]
    if not isinstance(steps, Mapping):
        return None, [*problems, FieldProblem("steps", "must be an object keyed by step id")]
    if not 1 <= len(steps) <= MAX_STEPS:
        return None, [*problems, FieldProblem("steps", f"must have 1 to {MAX_STEPS} steps")]
    total = sum(1 for _ in _every_step(steps))
    if total > MAX_STEPS:
        problems.append(FieldProblem("steps", f"must have at most {MAX_STEPS} steps in all"))
    variables = definition.get("variables")
    problems += _variables_problems(variables)
    problems += _duplicate_id_problems(steps)
    context = _Validation(
        variables=variables if isinstance(variables, Mapping) else {},
        agents=agents,
        workflows=workflows,
        max_depth=(limits or RunLimits()).max_loop_depth,
    )
    problems += context.block_problems(
        steps, definition.get("start_step"), "start_step", _Enclosing("steps")
    )
    input_schema = definition.get("input_schema")
    schema_problems = input_schema_problems(input_schema)
    problems += schema_problems
    problems += _range_problems(
        definition.get("timeout_ms"), "timeout_ms", WORKFLOW_TIMEOUT_MS_MIN, WORKFLOW_TIMEOUT_MS_MAX
    )
    problems += _range_problems(
        definition.get("max_parallel_steps"), "max_parallel_steps", 1, MAX_PARALLEL_STEPS_MAX
    )
    if definition.get("triggers") is not None:
        schema = input_schema if input_schema is not None and not schema_problems else None
        problems += trigger_problems(
            definition["triggers"],
            (lambda data, at: input_problems(schema, data, at)) if schema is not None else None,
        )
    if problems:
        return None, problems
    return _plan(definition), []


@dataclass(frozen=True)
class _Validation:
    variables: Mapping[str, Any]
    agents: Mapping[str, str]
    workflows: Mapping[str, str] | None
    max_depth: int | None

    def block_problems(
        self, steps: Mapping[str, Any], start: object, start_at: str, enclosing: _Enclosing
    ) -> list[FieldProblem]:
        """Every problem of one block of steps (the top level, or a body), bodies included."""
        at = enclosing.at
        problems: list[FieldProblem] = []
        place = self._place(steps, enclosing.visible, enclosing.local_names)
        for step_id, step in steps.items():
            problems += self._step_problems(step_id, step, steps, f"{at}.{step_id}", place)
        dependencies = step_dependencies(steps)
        if start is not None:
            problems += _reference_problems(start, start_at, steps)
        problems += cycle_problems(dependencies, at)
        if isinstance(start, str) and start in steps:
            problems += reachability_problems(dependencies, start, at)
        for step_id, step in steps.items():
            if not isinstance(step, Mapping) or (kind := kind_of(step)) is None:
                continue
            upstream = frozenset(ancestors(dependencies, step_id) - {step_id})
            visible = upstream | enclosing.visible
            where = f"{at}.{step_id}"
            reading = self._place(steps, visible, enclosing.local_names)
            if kind == "do_while":
                loop_body = body_of(step) or {}
                reading = self._place(
                    steps, visible | frozenset(loop_body), enclosing.local_names | LOOP_LOCALS
                )
            problems += reading_problems(kind, step, where, reading)
            body = body_of(step)
            if body is None:
                continue
            if self.max_depth is not None and enclosing.depth + 1 > self.max_depth:
                problems.append(
                    FieldProblem(
                        where,
                        f"maps and loops nest at most {self.max_depth} deep (MAX_LOOP_DEPTH)",
                    )
                )
                continue
            local_names = MAP_LOCALS if kind == "foreach" else LOOP_LOCALS
            inner = _Enclosing(
                f"{where}.steps", visible, enclosing.local_names | local_names, enclosing.depth + 1
            )
            problems += self.block_problems(
                body, step.get("start_step"), f"{where}.start_step", inner
            )
        return problems

    def _place(
        self, steps: Mapping[str, Any], visible: frozenset[str], local_names: frozenset[str]
    ) -> Place:
        return Place(
            block=steps,
            names=Names(steps=visible, locals=local_names),
            variables=self.variables,
            agents=self.agents,
            workflows=self.workflows,
        )

    def _step_problems(
        self, step_id: str, step: object, steps: Mapping[str, Any], at: str, place: Place
    ) -> list[FieldProblem]:
        problems: list[FieldProblem] = []
        if not isinstance(step_id, str) or not IDENTIFIER.match(step_id):
            problems.append(
                FieldProblem(at, "step ids must be 1 to 100 letters, digits, _ or - characters")
            )
        if not isinstance(step, Mapping):
            return [*problems, FieldProblem(at, "must be an object")]
        kind = kind_of(step)
        if kind is None:
            kinds = ", ".join(STEP_KINDS)
            return [*problems, FieldProblem(f"{at}.type", f"must be one of {kinds}")]
        problems += field_problems(kind, step, at)
        if "id" in step and step["id"] != step_id:
            problems.append(FieldProblem(f"{at}.id", f"must equal the step's key {step_id!r}"))
        static = kind_problems(kind, step_id, step, at, place)
        # The agent's name comes first (where it always was), then the links, then the rest.
        first = [p for p in static if p.field == f"{at}.agent_name"]
        problems += first
        following = step.get("next_step")
        if following is not None:
            problems += _reference_problems(following, f"{at}.next_step", steps)
        depends_on = step.get("depends_on")
        if depends_on is not None:
            if not isinstance(depends_on, list):
                problems.append(FieldProblem(f"{at}.depends_on", "must be a list of step ids"))
            else:
                seen: set[str] = set()
                for index, dep in enumerate(depends_on):
                    if isinstance(dep, str) and dep in seen:
                        problems.append(
                            FieldProblem(f"{at}.depends_on.{index}", f"repeats {dep!r}")
                        )
                        continue
                    problems += _reference_problems(dep, f"{at}.depends_on.{index}", steps)
                    if isinstance(dep, str):
                        seen.add(dep)
        return problems + [p for p in static if p not in first]


def _duplicate_id_problems(steps: Mapping[str, Any]) -> list[FieldProblem]:
    """Step ids are unique in the whole definition, bodies included."""
    seen: dict[str, str] = {}
    problems = []
    for at, step_id in _ids_with_locations(steps, "steps"):
        if step_id in seen:
            problems.append(
                FieldProblem(at, f"step id {step_id!r} is already used at {seen[step_id]}")
            )
        else:
            seen[step_id] = at
    return problems


def _ids_with_locations(steps: Mapping[str, Any], at: str) -> Iterator[tuple[str, str]]:
    for step_id, step in steps.items():
        yield f"{at}.{step_id}", step_id
        if isinstance(step, Mapping) and (body := body_of(step)) is not None:
            yield from _ids_with_locations(body, f"{at}.{step_id}.steps")


def step_dependencies(steps: Mapping[str, Any]) -> Dependencies:
    """Each step's direct dependencies: its ``depends_on``, the steps whose ``next_step`` it
    is, and the branches (``if``, ``switch``) that may lead to it, in definition order;
    references to steps that do not exist are left out."""
    order = {step_id: index for index, step_id in enumerate(steps)}
    found: dict[str, set[str]] = {step_id: set() for step_id in steps}
    for step_id, step in steps.items():
        if not isinstance(step, Mapping):
            continue
        depends_on = step.get("depends_on")
        if isinstance(depends_on, list):
            found[step_id].update(d for d in depends_on if isinstance(d, str) and d in order)
        following = step.get("next_step")
        if isinstance(following, str) and following in order:
            found[following].add(step_id)
        for target in branch_targets(step):
            if target in order and target != step_id:
                found[target].add(step_id)
    return {step_id: sorted(deps, key=order.__getitem__) for step_id, deps in found.items()}


def successors(dependencies: Dependencies) -> Dependencies:
    """For each step, the steps that depend on it directly (the order steps run in)."""
    after: Dependencies = {step_id: [] for step_id in dependencies}
    for step_id, deps in dependencies.items():
        for dep in deps:
            after[dep].append(step_id)
    return after


def ancestors(dependencies: Dependencies, step_id: str) -> set[str]:
    """Every step ``step_id`` depends on, directly or not (itself too, if in a cycle)."""
    seen: set[str] = set()
    pending = list(dependencies[step_id])
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(dependencies[current])
    return seen


def cycle_problems(dependencies: Dependencies, at: str = "steps") -> list[FieldProblem]:
    """One problem per group of steps that depend on each other, naming one real cycle in the
    order the steps would run, from the group's first step in definition order; located at
    the block (``at``)."""
    after = successors(dependencies)
    problems = []
    for component in _strongly_connected(after):
        first = min(component, key=list(dependencies).index)
        if len(component) > 1 or first in after[first]:
            cycle = _shortest_cycle(after, first, component)
            problems.append(FieldProblem(at, f"steps form a cycle: {' -> '.join(cycle)}"))
    return problems


def reachability_problems(
    dependencies: Dependencies, start: str, at: str = "steps"
) -> list[FieldProblem]:
    after = successors(dependencies)
    reached = {start}
    pending = [start]
    while pending:
        for following in after[pending.pop()]:
            if following not in reached:
                reached.add(following)
                pending.append(following)
    return [
        FieldProblem(f"{at}.{step_id}", f"is not reachable from the start step {start!r}")
        for step_id in dependencies
        if step_id not in reached
    ]


def nul_problems(value: object) -> list[FieldProblem]:
    """Every string or key holding a NUL character, which PostgreSQL text and jsonb (the read
    tables, the audit log) cannot store."""
    found = []
    pending: deque[tuple[str, object]] = deque([("", value)])
    while pending:
        at, item = pending.popleft()
        if isinstance(item, str) and "\x00" in item:
            found.append(FieldProblem(at, "must not contain NUL characters"))
        elif isinstance(item, Mapping):
            for key, child in item.items():
                where = f"{at}.{key}" if at else str(key)
                if isinstance(key, str) and "\x00" in key:
                    found.append(FieldProblem(where, "names must not contain NUL characters"))
                pending.append((where, child))
        elif isinstance(item, list):
            pending.extend((f"{at}.{index}", child) for index, child in enumerate(item))
    return found


def input_schema_problems(schema: object) -> list[FieldProblem]:
    """Problems of an ``input_schema``: it must be a valid JSON Schema (a known dialect)."""
    if schema is None:
        return []
    return json_schema_problems(schema, "input_schema")


def input_problems(schema: Mapping[str, Any], data: object, at: str) -> list[FieldProblem]:
    """Problems of a run input against a (valid) input schema, located under ``at``."""
    return data_problems(schema, data, at)


def _reference_problems(step_id: object, at: str, steps: Mapping[str, Any]) -> list[FieldProblem]:
    if not isinstance(step_id, str):
        return [FieldProblem(at, "must be a step id")]
    if step_id not in steps:
        return [FieldProblem(at, f"step {step_id!r} does not exist")]
    return []


def _variables_problems(variables: object) -> list[FieldProblem]:
    if variables is None:
        return []
    if not isinstance(variables, Mapping):
        return [FieldProblem("variables", "must be an object of names and default values")]
    return [
        FieldProblem(f"variables.{name}", "names must be 1 to 100 letters, digits, _ or -")
        for name in variables
        if not isinstance(name, str) or not IDENTIFIER.match(name)
    ]


def _range_problems(value: object, field: str, low: int, high: int) -> list[FieldProblem]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        return [FieldProblem(field, "must be an integer")]
    if not low <= value <= high:
        return [FieldProblem(field, f"must be between {low} and {high}")]
    return []


def _strongly_connected(after: Dependencies) -> list[list[str]]:
    """Tarjan's strongly connected components of the step graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for following in after[node]:
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in on_stack:
                low[node] = min(low[node], index[following])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(component)

    for node in after:
        if node not in index:
            visit(node)
    return sorted(components, key=lambda c: min(map(list(after).index, c)))


def _shortest_cycle(after: Dependencies, first: str, component: list[str]) -> list[str]:
    """The shortest path from ``first`` back to itself within its component."""
    members = set(component)
    came_from: dict[str, str] = {}
    frontier = [first]
    while frontier:
        following_frontier = []
        for node in frontier:
            for following in after[node]:
                if following == first:
                    path = [node]
                    while path[-1] != first:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), first]
                if following in members and following not in came_from:
                    came_from[following] = node
                    following_frontier.append(following)
        frontier = following_frontier
    raise AssertionError(f"{first!r} is in no cycle")  # pragma: no cover


def _plan(definition: Mapping[str, Any]) -> WorkflowPlan:
    """The plan of a valid definition."""
    return WorkflowPlan(
        steps=_plan_block(definition["steps"]),
        variables=dict(definition.get("variables") or {}),
        input_schema=definition.get("input_schema"),
        timeout_ms=definition.get("timeout_ms"),
        max_parallel_steps=definition.get("max_parallel_steps"),
    )


def _plan_block(steps: Mapping[str, Mapping[str, Any]]) -> tuple[StepPlan, ...]:
    """A valid block's steps in topological order, ties in definition order."""
    dependencies = step_dependencies(steps)
    position = {step_id: i for i, step_id in enumerate(steps)}
    waiting = {step_id: len(deps) for step_id, deps in dependencies.items()}
    after = successors(dependencies)
    ready = [(position[s], s) for s, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[StepPlan] = []
    while ready:
        _, step_id = heapq.heappop(ready)
        ordered.append(_step_plan(step_id, steps[step_id], dependencies[step_id]))
        for following in after[step_id]:
            waiting[following] -= 1
            if waiting[following] == 0:
                heapq.heappush(ready, (position[following], following))
    return tuple(ordered)


def _step_plan(step_id: str, step: Mapping[str, Any], depends_on: list[str]) -> StepPlan:
    kind = kind_of(step)
    assert kind is not None
    body = body_of(step)
    return StepPlan(
        step_id=step_id,
        agent_name=step["agent_name"] if kind == "agent" else None,
        depends_on=tuple(depends_on),
        input_mapping=dict(step.get("input_mapping") or {}),
        timeout_ms=step.get("timeout_ms"),
        retry=dict(step["retry_config"]) if step.get("retry_config") else None,
        kind=kind,
        body=_plan_block(body) if body is not None else (),
        options=options_of(kind, step_id, step),
    )
