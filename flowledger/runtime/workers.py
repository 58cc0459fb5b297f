"""Derived processes ("workers"): what ``flowledger worker <kind>`` runs, and what
``flowledger dev`` and the tests run inside a process.

A worker kind is a blocking function ``run(runtime, stop)`` that returns when ``stop`` is set
and raises :class:`~flowledger.eventlog.follower.FollowerFailed` when it must stop. Each capability
registers its kind in :data:`WORKERS`.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from flowledger.eventlog.follower import FollowerFailed, run_followers
from flowledger.executor.service import run_executor
from flowledger.observability.logs import aaa_logger
from flowledger.projections.audit import purge_expired, retention_cutoff
from flowledger.projections.registry import projection_follower
from flowledger.runtime.connections import EVEN, PoolShares, ProcessRole
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings, SettingsError
from flowledger.scheduling.scheduler import run_scheduler
from flowledger.security.settings import SecuritySettings

log = logging.getLogger(__name__)


STANDBY_POLL_S = 0.5
"""How often a standby relay asks for the lead (so it takes over within this of a death)."""


def _always(settings: Settings) -> bool:
    return True


@dataclass(frozen=True)
class WorkerKind:
    name: str
    description: str
    run: Callable[[Runtime, threading.Event], None]
    enabled: Callable[[Settings], bool] = _always
    """Whether ``flowledger dev`` starts it with these settings."""
    pools: PoolShares = EVEN
    """How its connection budget is shared among its pools (by default evenly)."""
    can_wait: bool = False
    """Whether its work may wait behind a run's steps and the API's answers where they share
    cores (a follower): ``flowledger worker`` then runs it at a lower CPU priority
    (``FLOWLEDGER_FOLLOWER_NICENESS``, :func:`lower_priority`)."""

    @property
    def role(self) -> ProcessRole:
        return ProcessRole(f"worker {self.name}", self.pools)


def steady_gc() -> None:
    """Tune the garbage collector for a server process (the API, every worker): a batch or a
    request makes thousands of short-lived objects (events, rows), and with the default
    thresholds the collector ran every few hundred of them, rescanning everything the process
    holds (a fifth of a projector's time, and pauses of tens of milliseconds in the API's
    slowest requests). What exists at start is frozen out of the scans; young objects are
    collected every 50,000 allocations."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def run_projections(runtime: Runtime, stop: threading.Event) -> None:
    """The projectors, and beside them the audit log's retention (it owns that table)."""
    steady_gc()
    retention = threading.Thread(
        target=run_audit_retention, args=(runtime, stop), name="audit-retention", daemon=True
    )
    retention.start()
    try:
        run_followers([projection_follower(runtime.store, runtime.engine, runtime.settings)], stop)
    finally:
        stop.set()
        retention.join(timeout=10)


def run_audit_retention(runtime: Runtime, stop: threading.Event) -> None:
    """Delete audit rows older than the retention now, then every purge interval, until
    ``stop``. A failed purge is logged and tried again at the next interval."""
    security = SecuritySettings.from_settings(runtime.settings)
    if security.audit_retention_days is None:
        return
    log = aaa_logger("AUDIT").bind(retention_days=security.audit_retention_days)
    while not stop.is_set():
        cutoff = retention_cutoff(datetime.now(UTC), security.audit_retention_days)
        assert cutoff is not None
        try:
            deleted = purge_expired(runtime.engine, cutoff)
        except Exception as error:
            log.warning("audit retention failed", result="FAILURE", error=str(error))
        else:
            if deleted:
                log.info("audit rows purged", result="SUCCESS", deleted=deleted, before=cutoff)
        stop.wait(security.audit_purge_interval_s)


def run_steady_executor(runtime: Runtime, stop: threading.Event) -> None:
    """The executor, with the collector tuned as for the followers (it drives runs with them)."""
    steady_gc()
    run_executor(runtime, stop)


def run_relay(runtime: Runtime, stop: threading.Event) -> None:
    """The Kafka relay: one copy leads and publishes, the others stand by."""
    from flowledger.eventlog.leadership import Leadership  # noqa: PLC0415
    from flowledger.kafka.config import KafkaSettings  # noqa: PLC0415
    from flowledger.kafka.relay import NAME, run_relay  # noqa: PLC0415

    steady_gc()
    config = KafkaSettings.from_settings(runtime.settings)
    if config is None:
        raise SettingsError("the relay needs KAFKA_BOOTSTRAP_SERVERS")
    leadership = Leadership(runtime.database, NAME, poll_s=STANDBY_POLL_S)
    try:
        run_relay(runtime.store, runtime.engine, config, runtime.settings, stop, leadership)
    finally:
        leadership.release()


def run_webhooks(runtime: Runtime, stop: threading.Event) -> None:
    from flowledger.webhooks.sender import run_sender  # noqa: PLC0415

    run_sender(runtime, stop)


def _kafka_configured(settings: Settings) -> bool:
    return bool(settings.kafka_bootstrap_servers)


WORKERS: dict[str, WorkerKind] = {
    kind.name: kind
    for kind in [
        WorkerKind(
            "projections",
            "projectors: read tables and the audit log",
            run_projections,
            pools=PoolShares(store=1, sync=2, async_=0),
            can_wait=True,
        ),
        WorkerKind(
            "executor",
            "runs workflow steps against their agents",
            run_steady_executor,
            pools=PoolShares(store=2, sync=0, async_=1),
        ),
        WorkerKind(
            "relay",
            "Kafka relay: every event to its topic",
            run_relay,
            _kafka_configured,
            pools=PoolShares(store=1, sync=1, async_=0),
            can_wait=True,
        ),
        WorkerKind(
            "webhooks",
            "webhook sender: signed POSTs with retries",
            run_webhooks,
            pools=PoolShares(store=0, sync=0, async_=1),
            can_wait=True,
        ),
        WorkerKind(
            "scheduler",
            "fires schedule triggers at their ticks",
            run_scheduler,
            pools=PoolShares(store=1, sync=1, async_=0),
        ),
    ]
}


def worker_kind(name: str) -> WorkerKind:
    try:
        return WORKERS[name]
    except KeyError:
        known = ", ".join(sorted(WORKERS))
        raise ValueError(f"unknown worker {name!r}; known workers: {known}") from None


def lower_priority(name: str, settings: Settings) -> int:
    """Give a worker that can wait its lower CPU priority; the niceness it runs at.

    Called first thing in ``flowledger worker``: on Linux a thread's priority is its own, and
    the threads started later inherit it. A process started at a lower priority already keeps
    its own."""
    wanted = settings.follower_niceness if worker_kind(name).can_wait else 0
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if wanted > current:
        os.setpriority(os.PRIO_PROCESS, 0, wanted)
        return wanted
    return current


def run_worker(name: str, runtime: Runtime, stop: threading.Event) -> None:
    """Run one kind of worker until ``stop``; raises FollowerFailed if it must stop."""
    worker_kind(name).run(runtime, stop)


class InProcessWorkers:
    """Workers run in background threads of this process (tests, and small deployments)."""

    def __init__(self, runtime: Runtime, names: tuple[str, ...]) -> None:
        self.runtime = runtime
        self.kinds = [worker_kind(name) for name in names]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.failures: list[FollowerFailed] = []

    def start(self) -> None:
        for kind in self.kinds:
            thread = threading.Thread(
                target=self._run, args=(kind,), name=f"worker-{kind.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _run(self, kind: WorkerKind) -> None:
        try:
            kind.run(self.runtime, self._stop)
        except FollowerFailed as failure:
            log.critical("in-process worker %s stopped: %s", kind.name, failure)
            self.failures.append(failure)

    def stop(self) -> None:
        """Ask every worker to stop, and wait up to 10 s for each."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def running(self) -> bool:
        """Whether any worker's thread is still running (after :meth:`stop`: one that did not
        stop in time)."""
        return any(thread.is_alive() for thread in self._threads)
