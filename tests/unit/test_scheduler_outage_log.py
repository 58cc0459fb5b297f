"""The scheduler says once that its passes fail (and once that they work again), not on every
try of a long outage."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from flowledger.scheduling.scheduler import Scheduler
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
