"""Scheduler settings (``FLOWLEDGER_SCHEDULER_*``); the README's settings table lists them."""

from __future__ import annotations

from dataclasses import dataclass

from flowledger.runtime.environment import read_settings, seconds, setting
from flowledger.runtime.settings import Settings


@dataclass(frozen=True)
class SchedulerSettings:
    interval_s: float = setting("FLOWLEDGER_SCHEDULER_INTERVAL", 1.0, seconds())
    """Longest sleep between two looks at the triggers (a new or changed trigger is seen
    within this; a tick due sooner wakes the scheduler at its time)."""
    grace_s: float = setting("FLOWLEDGER_SCHEDULER_GRACE", 60.0, seconds())
    """How late a tick may fire and still be on time; older unfired ticks were missed and
    follow their trigger's catch-up policy."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SchedulerSettings:
        return read_settings(cls, settings.extra)
