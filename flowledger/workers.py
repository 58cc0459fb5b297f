"""Derived processes ("workers"): what ``flowledger worker <kind>`` runs, and what
``flowledger dev`` and the tests run inside a process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flowledger.following import Follower, FollowerFailed, run_followers
from flowledger.projections.runner import projection_followers
from flowledger.runtime import Runtime

log = logging.getLogger(__name__)


def _projections(runtime: Runtime) -> list[Follower]:
    return projection_followers(runtime.store, runtime.engine, runtime.settings)


WORKER_KINDS: dict[str, Callable[[Runtime], list[Follower]]] = {
    "projections": _projections,
}


def build_followers(kind: str, runtime: Runtime) -> list[Follower]:
    try:
        factory = WORKER_KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(WORKER_KINDS))
        raise ValueError(f"unknown worker {kind!r}; known workers: {known}") from None
    return factory(runtime)


def run_worker(kind: str, runtime: Runtime, stop: threading.Event) -> None:
    """Run one kind of worker until ``stop``; raises FollowerFailed if it must stop."""
    run_followers(build_followers(kind, runtime), stop)


class InProcessWorkers:
    """Workers run in background threads of this process (tests, and small deployments)."""

    def __init__(self, runtime: Runtime, kinds: tuple[str, ...]) -> None:
        self.followers = [f for kind in kinds for f in build_followers(kind, runtime)]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: FollowerFailed | None = None

    def start(self) -> None:
        if not self.followers:
            return
        self._thread = threading.Thread(target=self._run, name="in-process-workers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            run_followers(self.followers, self._stop)
        except FollowerFailed as failure:
            self.failure = failure

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
