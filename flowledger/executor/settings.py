"""Executor settings (``FLOWLEDGER_EXECUTOR_*``); the README's settings table lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from flowledger.runtime.environment import integer, read_settings, seconds, setting, text
from flowledger.runtime.settings import Settings

DEFAULT_GROUP: Final = "flowledger-executor"


@dataclass(frozen=True)
class ExecutorSettings:
    max_calls: int = setting("FLOWLEDGER_EXECUTOR_MAX_CALLS", 64, integer(minimum=1))
    """Agent calls one executor process makes at the same time."""
    max_runs: int = setting("FLOWLEDGER_EXECUTOR_MAX_RUNS", 200, integer(minimum=1))
    """Runs one executor process drives at the same time."""
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
