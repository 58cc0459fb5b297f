"""The normalised, validated form of a workflow definition: what a run executes.

Definitions come in two forms (``start_step``/``next_step`` chains, or steps that list
``depends_on``); both normalise to one :class:`WorkflowPlan`, a DAG of :class:`StepPlan`. A run
pins the plan of the workflow version it was started from, so later versions never change it.

Besides agent calls, a step may be a branch (``if``, ``switch``: its cases name the steps it
may lead to, which depend on it through *branch edges*), a map (``foreach``) or a loop
(``do_while``) with a *body* (a block of steps of its own, run once per item or iteration), a
``wait``, a ``signal`` or a sub-``workflow``. Kind-specific settings are in ``options``, as the
definition normalises them (see :mod:`flowledger.domain.step_kinds`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final, Literal

StepKind = Literal["agent", "if", "switch", "foreach", "do_while", "wait", "signal", "workflow"]
STEP_KINDS: Final[tuple[StepKind, ...]] = (
    "agent",
    "if",
    "switch",
    "foreach",
    "do_while",
    "wait",
    "signal",
    "workflow",
)
BRANCH_KINDS: Final = frozenset({"if", "switch"})
"""Steps that choose which of the steps after them run."""
COMPOSITE_KINDS: Final = frozenset({"foreach", "do_while"})
"""Steps with a body of steps of their own."""
CALL_KINDS: Final = frozenset({"agent", "workflow"})
"""Steps whose work happens outside the run (an agent call, a child run): the executor starts
them; every other kind is decided by the run itself."""
Case = str | None
"""A branch's case: an ``if``'s ``then``/``else``, a ``switch`` case's key; None is the
``switch``'s default."""


@dataclass(frozen=True)
class StepPlan:
    step_id: str
    agent_name: str | None = None
    """The agent an ``agent`` step calls (None for every other kind)."""
    depends_on: tuple[str, ...] = ()
    """Steps of the same block that must have finished before this one starts (fan-in when
    several): a branch this step is a case of is one of them."""
    input_mapping: Mapping[str, Any] = field(default_factory=dict)
    """See :mod:`flowledger.domain.mappings`."""
    timeout_ms: int | None = None
    """Overrides the agent's call timeout; a signal's longest wait."""
    retry: Mapping[str, Any] | None = None
    """Overrides some of the agent's retry settings for this step (RetryPolicy field names)."""
    kind: StepKind = "agent"
    body: tuple[StepPlan, ...] = ()
    """The steps a ``foreach`` runs per item, a ``do_while`` per iteration (topological)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Kind-specific settings: ``condition``/``then``/``else`` (if), ``expression``/``cases``/
    ``default`` (switch), ``items``/``max_parallel``/``continue_on_error`` (foreach),
    ``while`` or ``until`` (do_while), ``duration_ms`` or ``until`` (wait), ``signal``/
    ``default``/``schema`` (signal), ``workflow_name``/``version`` (workflow)."""

    @property
    def cases(self) -> dict[Case, tuple[str, ...]]:
        """A branch's cases and the steps each leads to."""
        if self.kind == "if":
            return {
                "then": tuple(self.options.get("then") or ()),
                "else": tuple(self.options.get("else") or ()),
            }
        if self.kind == "switch":
            found: dict[Case, tuple[str, ...]] = {
                key: tuple(targets) for key, targets in (self.options.get("cases") or {}).items()
            }
            found[None] = tuple(self.options.get("default") or ())
            return found
        return {}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "step_id": self.step_id,
            "agent_name": self.agent_name,
            "depends_on": list(self.depends_on),
            "input_mapping": dict(self.input_mapping),
            "timeout_ms": self.timeout_ms,
            "retry": dict(self.retry) if self.retry is not None else None,
        }
        if self.kind != "agent":
            data["kind"] = self.kind
        if self.body:
            data["body"] = [step.to_dict() for step in self.body]
        if self.options:
            data["options"] = dict(self.options)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepPlan:
        return cls(
            step_id=data["step_id"],
            agent_name=data.get("agent_name"),
            depends_on=tuple(data.get("depends_on") or ()),
            input_mapping=dict(data.get("input_mapping") or {}),
            timeout_ms=data.get("timeout_ms"),
            retry=data.get("retry"),
            kind=data.get("kind") or "agent",
            body=tuple(cls.from_dict(s) for s in data.get("body") or ()),
            options=dict(data.get("options") or {}),
        )


@dataclass(frozen=True)
class WorkflowPlan:
    steps: tuple[StepPlan, ...]
    """The top-level steps, in a topological order (each after all it depends on)."""
    variables: Mapping[str, Any] = field(default_factory=dict)
    """Variable defaults; ``$.vars.<name>`` reads them."""
    input_schema: Mapping[str, Any] | None = None
    """JSON Schema the run input must satisfy, if any."""
    timeout_ms: int | None = None
    """Longest a whole run may take."""
    max_parallel_steps: int | None = None
    """Most steps of one run called at the same time (None: no limit of the workflow's own)."""

    # ------------------------------------------------------------------ the tree of steps

    def step(self, step_id: str) -> StepPlan:
        """A step at any depth."""
        return self._nodes[step_id]

    @property
    def step_ids(self) -> tuple[str, ...]:
        """The top-level steps' ids, in plan order."""
        return tuple(step.step_id for step in self.steps)

    def every_step(self) -> Iterator[StepPlan]:
        """Every step at any depth, each composite before its body (plan order)."""
        return iter(self._nodes.values())

    def block(self, parent: str | None) -> tuple[StepPlan, ...]:
        """The steps of the top level (``None``) or of a composite step's body."""
        return self.steps if parent is None else self._nodes[parent].body

    def parent_of(self, step_id: str) -> str | None:
        """The composite whose body holds the step (None at the top level)."""
        return self._parents[step_id]

    def order_of(self, step_id: str) -> int:
        """The step's position in :meth:`every_step` (for listing instances in plan order)."""
        return self._order[step_id]

    def depth_of(self, step_id: str) -> int:
        """How many maps and loops enclose the step (0 at the top level)."""
        depth, parent = 0, self._parents[step_id]
        while parent is not None:
            depth, parent = depth + 1, self._parents[parent]
        return depth

    def nesting(self) -> int:
        """The deepest nesting of maps and loops in the plan (0 with none)."""
        composites = [s.step_id for s in self.every_step() if s.kind in COMPOSITE_KINDS]
        return max((self.depth_of(s) + 1 for s in composites), default=0)

    def successors(self, step_id: str) -> tuple[str, ...]:
        """Steps of the same block that depend on this one directly."""
        return self._successors[step_id]

    def branch_cases(self, target: str, branch: str) -> frozenset[Case] | None:
        """The cases of ``branch`` that lead to ``target`` (None: the edge is no branch's)."""
        return self._branch_edges.get((branch, target))

    def sinks(self, parent: str | None) -> list[str]:
        """The steps of a block nothing in it depends on: their outputs are the block's."""
        block = self.block(parent)
        needed = {d for s in block for d in s.depends_on}
        return [s.step_id for s in block if s.step_id not in needed]

    def agent_names(self) -> list[str]:
        """Every agent the plan calls, once each, in plan order."""
        names = (s.agent_name for s in self.every_step() if s.kind == "agent")
        return list(dict.fromkeys(name for name in names if name is not None))

    def upstream(self, step_id: str) -> set[str]:
        """Every step of its block ``step_id`` depends on, directly or not."""
        seen: set[str] = set()
        pending = list(self.step(step_id).depends_on)
        while pending:
            current = pending.pop()
            if current not in seen:
                seen.add(current)
                pending.extend(self.step(current).depends_on)
        return seen

    def ready(self, succeeded: Iterable[str], started: Iterable[str]) -> list[str]:
        """Top-level steps not yet started whose dependencies have all succeeded, in plan
        order (a plain DAG's rule; runs of branching plans decide with their own state)."""
        done = set(succeeded)
        begun = set(started) | done
        return [
            s.step_id
            for s in self.steps
            if s.step_id not in begun and all(d in done for d in s.depends_on)
        ]

    @cached_property
    def _nodes(self) -> dict[str, StepPlan]:
        return {step.step_id: step for step in _walk(self.steps)}

    @cached_property
    def _parents(self) -> dict[str, str | None]:
        parents: dict[str, str | None] = {s.step_id: None for s in self.steps}
        for step in _walk(self.steps):
            for child in step.body:
                parents[child.step_id] = step.step_id
        return parents

    @cached_property
    def _order(self) -> dict[str, int]:
        return {step_id: index for index, step_id in enumerate(self._nodes)}

    @cached_property
    def _successors(self) -> dict[str, tuple[str, ...]]:
        after: dict[str, list[str]] = {step_id: [] for step_id in self._nodes}
        for step in self._nodes.values():
            for dep in step.depends_on:
                after[dep].append(step.step_id)
        return {step_id: tuple(found) for step_id, found in after.items()}

    @cached_property
    def _branch_edges(self) -> dict[tuple[str, str], frozenset[Case]]:
        edges: dict[tuple[str, str], set[Case]] = {}
        for step in self._nodes.values():
            for case, targets in step.cases.items():
                for target in targets:
                    edges.setdefault((step.step_id, target), set()).add(case)
        return {edge: frozenset(cases) for edge, cases in edges.items()}

    # ------------------------------------------------------------------ storage

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


def _walk(steps: Iterable[StepPlan]) -> Iterator[StepPlan]:
    for step in steps:
        yield step
        yield from _walk(step.body)
