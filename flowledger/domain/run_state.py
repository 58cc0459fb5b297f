"""What a run keeps about each step: its instances, their attempts, and maps and loops.

A *step instance* is one execution of a plan step. At the top level a step has one instance,
keyed by its id (``fetch``). Inside the body of a map or a loop it has one per item or
iteration, keyed by the *scope* it runs in: ``each[3].price`` is step ``price`` for item 3 of
the map ``each``, ``poll[0].check`` step ``check`` in the first iteration of the loop ``poll``,
``outer[1].inner[2].call`` nests. Indexes count from 0. Step ids cannot hold ``.``, ``[`` or
``]``, so keys parse back unambiguously.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, Literal
from uuid import UUID

from flowledger.domain.plans import StepKind

StepStatus = Literal["PENDING", "RUNNING", "WAITING", "SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"]
AttemptOutcome = Literal["running", "succeeded", "failed", "cancelled", "interrupted"]
SETTLED: Final = frozenset({"SUCCEEDED", "SKIPPED", "FAILED"})
"""Statuses a step instance ends a block in (CANCELLED only comes with the run's end)."""
ACTIVE: Final = frozenset({"RUNNING", "WAITING"})


# ---------------------------------------------------------------------------- keys


def instance_key(scope: str, step_id: str) -> str:
    """The key of a step's instance in a scope (``""`` is the top level)."""
    return f"{scope}.{step_id}" if scope else step_id


def iteration_scope(composite_key: str, index: int) -> str:
    """The scope of one item (or iteration) of a map (or loop) instance."""
    return f"{composite_key}[{index}]"


@lru_cache(maxsize=65_536)
def split_key(key: str) -> tuple[str, str]:
    """(scope, plan step id) of an instance key."""
    scope, _, step_id = key.rpartition(".")
    return scope, step_id


@lru_cache(maxsize=65_536)
def split_scope(scope: str) -> tuple[str, int]:
    """(composite instance key, index) of an item or iteration scope."""
    composite, _, rest = scope.rpartition("[")
    return composite, int(rest.rstrip("]"))


def enclosing_scopes(scope: str) -> Iterator[tuple[str, str, int]]:
    """(scope, composite key, index) of ``scope`` and every scope around it, innermost first."""
    while scope:
        composite, index = split_scope(scope)
        yield scope, composite, index
        scope, _ = split_key(composite)


# ---------------------------------------------------------------------------- state


@dataclass(frozen=True)
class AgentBinding:
    """The agent a step calls, pinned when the run was requested (secrets are not pinned)."""

    agent_id: UUID
    url: str
    timeout_ms: int
    retry_config: Mapping[str, Any]
    kind: str = "a2a"
    """How the step calls it (``a2a``, ``n8n``); runs requested before kinds existed: a2a."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_id": str(self.agent_id),
            "url": self.url,
            "timeout_ms": self.timeout_ms,
            "retry_config": dict(self.retry_config),
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentBinding:
        return cls(
            agent_id=UUID(str(data["agent_id"])),
            url=data["url"],
            timeout_ms=int(data["timeout_ms"]),
            retry_config=dict(data["retry_config"]),
            kind=str(data.get("kind", "a2a")),
        )


@dataclass
class Attempt:
    number: int
    input: Any
    started_at: datetime
    outcome: AttemptOutcome = "running"
    finished_at: datetime | None = None
    output: Any = None
    error: str | None = None
    task_id: str | None = None
    child_run_id: UUID | None = None
    """The child run a ``workflow`` step's attempt follows."""


@dataclass
class StepState:
    step_id: str
    """The instance key (the plan step's id at the top level)."""
    agent_name: str | None
    status: StepStatus = "PENDING"
    attempts: list[Attempt] = field(default_factory=list)
    output: Any = None
    error: str | None = None
    retry_at: datetime | None = None
    """When the next attempt is due, after a failed attempt that will be retried."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    kind: StepKind = "agent"
    input: Any = None
    """What a step that makes no attempts was given: a map's items, a loop's last iteration."""
    skipped_by_branch: bool = False
    """SKIPPED because a branch did not lead here (a retry keeps it skipped)."""
    case: str | None = None
    """The case a branch chose (None with SUCCEEDED: the switch's default)."""
    wake_at: datetime | None = None
    """A wait's end, a signal's timeout."""
    signal: str | None = None
    """The signal a signal step waits for."""

    @property
    def plan_id(self) -> str:
        return split_key(self.step_id)[1]

    @property
    def scope(self) -> str:
        return split_key(self.step_id)[0]

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def in_flight(self) -> Attempt | None:
        current = self.current
        return current if current is not None and current.outcome == "running" else None

    @property
    def settled(self) -> bool:
        return self.status in SETTLED

    def attempts_this_round(self, since: int) -> list[Attempt]:
        return [a for a in self.attempts if a.number > since]


@dataclass
class CompositeState:
    """A map or loop instance that has started: its items (or iterations) and their results."""

    key: str
    kind: Literal["foreach", "do_while"]
    items: list[Any] = field(default_factory=list)
    """A map's items, as evaluated when it started."""
    started: int = 0
    """Items (iterations) whose scope has begun."""
    outputs: dict[int, Any] = field(default_factory=dict)
    """Each finished item's (iteration's) output."""
    errors: dict[int, str] = field(default_factory=dict)
    """Each failed item's error (a map that continues on errors)."""
    active: set[int] = field(default_factory=set)
    """Items (iterations) begun and not finished."""

    @property
    def finished(self) -> int:
        return len(self.outputs) + len(self.errors)
