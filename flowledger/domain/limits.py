"""The limits a run keeps to (spec 004's execution limits), pinned when the run is requested.

``WORKFLOW_TIMEOUT_SECONDS`` is the run timeout of workflows that set none; a loop repeats at
most ``MAX_LOOP_ITERATIONS`` times; maps and loops nest at most ``MAX_LOOP_DEPTH`` deep (and
sub-workflows call each other at most that deep); a run performs at most
``MAX_TOTAL_OPERATIONS`` steps (every step instance that starts: each map item's steps, each
iteration's); at most ``MAX_PARALLEL_NODES`` steps of a run are called at the same time unless
the workflow says otherwise (and a map runs that many items at once by default). A run pins the
limits in force when it was requested, so changing a setting never changes a run in flight.
Runs requested before limits existed have none (:meth:`RunLimits.unlimited`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

LIMIT_NAMES: Final = {
    "workflow_timeout_ms": "WORKFLOW_TIMEOUT_SECONDS",
    "max_loop_iterations": "MAX_LOOP_ITERATIONS",
    "max_total_operations": "MAX_TOTAL_OPERATIONS",
    "max_loop_depth": "MAX_LOOP_DEPTH",
    "max_parallel_nodes": "MAX_PARALLEL_NODES",
}
"""Each limit and the setting users know it by (errors name the setting)."""


@dataclass(frozen=True)
class RunLimits:
    workflow_timeout_ms: int | None = 300_000
    """The run timeout of a workflow that sets none (``timeout_ms``)."""
    max_loop_iterations: int | None = 100
    max_total_operations: int | None = 1000
    max_loop_depth: int | None = 10
    max_parallel_nodes: int | None = 10

    @classmethod
    def unlimited(cls) -> RunLimits:
        """No limit at all: what runs requested before limits existed keep."""
        return cls(None, None, None, None, None)

    def to_dict(self) -> dict[str, Any]:
        # Its fields are plain values: a copy of them, not asdict's recursive deep copy (which
        # was a tenth of a run request's decision).
        return {name: getattr(self, name) for name in LIMIT_NAMES}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RunLimits:
        if data is None:
            return cls.unlimited()
        return cls(**{name: data.get(name) for name in LIMIT_NAMES})


class LimitExceeded(Exception):
    """A run went past one of its limits; the message names the setting."""

    def __init__(self, limit: str, value: int | None, detail: str) -> None:
        self.limit = limit
        super().__init__(f"{LIMIT_NAMES[limit]} ({value}) exceeded: {detail}")
