"""Bulk operation settings (``FLOWLEDGER_BULK_*``); the README's settings table lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from flowledger.runtime.environment import integer, read_settings, seconds, setting
from flowledger.runtime.settings import Settings

MAX_RUNS_CEILING: Final = 20_000
"""An operation's runs travel in its first event (and its Kafka message): 20,000 run ids are
about 800 kB, under Kafka's default 1 MB message size."""


@dataclass(frozen=True)
class BulkSettings:
    max_runs: int = setting(
        "FLOWLEDGER_BULK_MAX_RUNS", 10_000, integer(minimum=1, maximum=MAX_RUNS_CEILING)
    )
    """Most runs one bulk operation may match."""
    rate: int = setting("FLOWLEDGER_BULK_RATE", 50, integer(minimum=1))
    """Most runs a bulk operation acts on per second (per API process driving one)."""
    max_active_runs: int = setting("FLOWLEDGER_BULK_MAX_ACTIVE_RUNS", 100, integer(minimum=1))
    """A bulk retry waits while this many runs are PENDING or RUNNING, so that new runs still
    find the executors free."""
    sweep_interval_s: float = setting(
        "FLOWLEDGER_BULK_SWEEP_INTERVAL", 2.0, seconds(above_zero=True)
    )
    """Time between an API process's looks for bulk operations nobody drives (how soon one
    interrupted by a crash resumes)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> BulkSettings:
        return read_settings(cls, settings.extra)
