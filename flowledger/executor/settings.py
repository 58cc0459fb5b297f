"""Executor settings (``FLOWLEDGER_EXECUTOR_*``) and the limits runs keep to (spec 004's
``WORKFLOW_TIMEOUT_SECONDS``, ``MAX_LOOP_ITERATIONS``, ``MAX_TOTAL_OPERATIONS``,
``MAX_LOOP_DEPTH``, ``MAX_PARALLEL_NODES``); the README's settings table lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from flowledger.domain.limits import RunLimits
from flowledger.runtime.environment import integer, read_settings, seconds, setting, text
from flowledger.runtime.settings import Settings

DEFAULT_GROUP: Final = "flowledger-executor"


@dataclass(frozen=True)
class ExecutorSettings:
    max_calls: int = setting("FLOWLEDGER_EXECUTOR_MAX_CALLS", 64, integer(minimum=1))
    """Agent calls one executor process makes at the same time."""
    max_runs: int = setting("FLOWLEDGER_EXECUTOR_MAX_RUNS", 200, integer(minimum=1))
    """Runs one executor process drives at the same time. As many more wait in its queue, each
    driven as soon as a driven run ends; any beyond those are found by its next sweep."""
    sweep_interval_s: float = setting("FLOWLEDGER_EXECUTOR_SWEEP_INTERVAL", 2.0, seconds())
    """Time between looks for active runs nobody drives (how fast a stopped executor's runs
    resume elsewhere)."""
    group: str = setting("FLOWLEDGER_EXECUTOR_GROUP", DEFAULT_GROUP, text)
    """The Kafka consumer group the executors share (with Kafka configured)."""
    park_after_s: float = setting("FLOWLEDGER_EXECUTOR_PARK_AFTER", 5.0, seconds())
    """A run that only waits (a wait, a signal, a child run) and has nothing due sooner than
    this is parked (WAITING) and no longer holds a place among ``max_runs``."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ExecutorSettings:
        return read_settings(cls, settings.extra)


@dataclass(frozen=True)
class LimitSettings:
    """The limits a run keeps to, pinned when it is requested (:class:`RunLimits`): read by the
    API (runs it starts, dry runs, how deep definitions may nest) and by the executor (child
    runs)."""

    workflow_timeout_s: float = setting("WORKFLOW_TIMEOUT_SECONDS", 300.0, seconds(above_zero=True))
    """The run timeout of a workflow that sets no ``timeout_ms``."""
    max_loop_iterations: int = setting("MAX_LOOP_ITERATIONS", 100, integer(minimum=1))
    max_total_operations: int = setting("MAX_TOTAL_OPERATIONS", 1000, integer(minimum=1))
    max_loop_depth: int = setting("MAX_LOOP_DEPTH", 10, integer(minimum=1))
    max_parallel_nodes: int = setting("MAX_PARALLEL_NODES", 10, integer(minimum=1))

    @classmethod
    def from_settings(cls, settings: Settings) -> LimitSettings:
        return read_settings(cls, settings.extra)

    def limits(self) -> RunLimits:
        return RunLimits(
            workflow_timeout_ms=round(self.workflow_timeout_s * 1000),
            max_loop_iterations=self.max_loop_iterations,
            max_total_operations=self.max_total_operations,
            max_loop_depth=self.max_loop_depth,
            max_parallel_nodes=self.max_parallel_nodes,
        )
