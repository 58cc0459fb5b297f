"""Event store settings (``FLOWLEDGER_WRITE_*``, ``FLOWLEDGER_AGGREGATE_CACHE_SIZE``); the
README's settings table lists them. See ADR 0014 for what a batch is."""

from __future__ import annotations

from dataclasses import dataclass

from flowledger.runtime.environment import integer, read_settings, seconds, setting
from flowledger.runtime.settings import Settings


@dataclass(frozen=True)
class EventStoreSettings:
    write_batch_size: int = setting("FLOWLEDGER_WRITE_BATCH_SIZE", 64, integer(minimum=1))
    """Most commands the process's writer records in one transaction."""
    write_batch_window_s: float = setting("FLOWLEDGER_WRITE_BATCH_WINDOW", 0.0, seconds())
    """How long the writer waits for more commands once one is queued and the batch is not
    full. 0: a batch is whatever queued while the previous one committed."""
    aggregate_cache_size: int = setting("FLOWLEDGER_AGGREGATE_CACHE_SIZE", 2000, integer(minimum=0))
    """Aggregates kept in memory per process (checked against the store before use); 0: none."""

    @classmethod
    def from_settings(cls, settings: Settings) -> EventStoreSettings:
        return read_settings(cls, settings.extra)
