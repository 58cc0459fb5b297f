"""The scheduler says once that its passes fail (and once that they work again), not on every
try of a long outage."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest

from flowledger.commands.triggers import Fired
from flowledger.scheduling import scheduler as scheduler_module
from flowledger.scheduling.scheduler import ScheduledTrigger, Scheduler
from flowledger.scheduling.settings import SchedulerSettings

pytestmark = pytest.mark.unit


class Outage(Scheduler):
    """Passes that fail ``failures`` times (the database is down), then work; the scheduler
    stops after ``passes`` of them. No store or database is needed: ``run_once`` is scripted."""

    def __init__(self, failures: list[Exception], passes: int) -> None:
        super().__init__(None, None, SchedulerSettings(interval_s=0.0))  # type: ignore[arg-type]
        self.failures = failures
        self.passes = passes
        self.stop = threading.Event()

    def run_once(self) -> float:
        self.passes -= 1
        if self.passes <= 0:
            self.stop.set()
        if self.failures:
            raise self.failures.pop(0)
        return 0.0


def said(caplog: Any, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_a_long_outage_is_said_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    down = [OSError("connection refused") for _ in range(50)]
    scheduler = Outage(down, passes=60)
    with caplog.at_level(logging.DEBUG, logger="flowledger.scheduling.scheduler"):
        scheduler.run(scheduler.stop)
    warnings = said(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "OSError: connection refused" in warnings[0]
    assert said(caplog, logging.INFO) == [
        "scheduler: passes work again (after OSError: connection refused)"
    ]


def test_a_new_cause_is_said_again(caplog: pytest.LogCaptureFixture) -> None:
    causes = [OSError("connection refused"), OSError("connection refused"), TimeoutError("slow")]
    scheduler = Outage(causes, passes=5)
    with caplog.at_level(logging.DEBUG, logger="flowledger.scheduling.scheduler"):
        scheduler.run(scheduler.stop)
    warnings = said(caplog, logging.WARNING)
    assert [w.split("(")[1].split(")")[0] for w in warnings] == [
        "OSError: connection refused",
        "TimeoutError: slow",
    ]


class DueTick:
    """A schedule with one tick due on every pass."""

    def due(self, since: Any, now: Any, grace: Any) -> list[datetime]:
        return [TICK]


TICK = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_a_tick_that_cannot_fire_is_said_once_and_its_recovery_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One trigger whose tick cannot be recorded (its workflow's agent is gone, the store
    refuses): a warning on the first pass, not on each of the next ones, then one line when it
    fires."""
    refusals = [RuntimeError("store refused") for _ in range(20)]
    fired = Fired(aggregate=SimpleNamespace(run_id=uuid4()), position=1)  # type: ignore[arg-type]

    def fire_tick(store: Any, trigger_id: Any, tick: Any) -> Fired:
        if refusals:
            raise refusals.pop(0)
        return fired

    monkeypatch.setattr(scheduler_module, "fire_tick", fire_tick)
    scheduler = Scheduler(None, None, SchedulerSettings(interval_s=0.0))  # type: ignore[arg-type]
    trigger = ScheduledTrigger(uuid4(), DueTick(), TICK, TICK)  # type: ignore[arg-type]
    with caplog.at_level(logging.DEBUG, logger="flowledger.scheduling.scheduler"):
        outcomes = [scheduler._fire_due(trigger, TICK) for _ in range(21)]
    assert outcomes == [False] * 20 + [True]
    warnings = said(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "RuntimeError: store refused" in warnings[0]
    infos = said(caplog, logging.INFO)
    assert f"trigger {trigger.id}: ticks fire again (after RuntimeError: store refused)" in infos
