"""How fast a bulk operation goes: at most so many runs per second, and a bulk retry only while
there is room for the runs it makes active (so new runs are not queued behind it)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

from sqlalchemy import Engine

from flowledger.bulk import queries

log = logging.getLogger(__name__)

POLL_S: Final = 0.2
"""How often a waiting bulk retry looks again at the runs waiting or running."""
STALLED_AFTER_S: Final = 30.0


class Pacer:
    """At most ``rate`` runs per second, evenly spaced (no burst after a pause)."""

    def __init__(self, rate: int) -> None:
        self.interval = 1.0 / rate
        self._next = time.monotonic()

    def wait(self, stop: threading.Event) -> bool:
        """Wait for the next slot; False when ``stop`` was set meanwhile."""
        delay = self._next - time.monotonic()
        if delay > 0 and stop.wait(delay):
            return False
        self._next = max(self._next, time.monotonic()) + self.interval
        return not stop.is_set()


class RetryRoom:
    """Keeps the runs PENDING or RUNNING (everyone's, not only the operation's) under
    ``ceiling`` while a bulk retry adds to them.

    It counts in ``run_counts`` once the runs projection has applied the operation's own last
    retry (so a lagging projection never lets it overshoot), then lets that many more retries
    go before it counts again. New runs requested meanwhile only make it wait longer.
    """

    def __init__(self, engine: Engine, ceiling: int) -> None:
        self.engine = engine
        self.ceiling = ceiling
        self._budget = 0
        self._written = 0

    def issued(self, position: int) -> None:
        """A retry was recorded at ``position``."""
        self._written = max(self._written, position)

    def wait(self, stop: threading.Event) -> bool:
        """Take room for one retry, waiting for it; False when ``stop`` was set meanwhile."""
        started = time.monotonic()
        warned = False
        while self._budget <= 0:
            if stop.is_set():
                return False
            if queries.runs_position(self.engine) >= self._written:
                self._budget = self.ceiling - queries.active_runs(self.engine)
                if self._budget > 0:
                    break
            if not warned and time.monotonic() - started > STALLED_AFTER_S:
                warned = True
                log.warning(
                    "bulk retry waiting: %d or more runs are pending or running (or the runs "
                    "projection is behind)",
                    self.ceiling,
                )
            stop.wait(POLL_S)
        self._budget -= 1
        return not stop.is_set()
