"""The executor process: finds runs that need driving and drives each in exactly one place.

* **Active runs** — a projection kept by the executor itself (``executor_active_runs``, with
  its position in ``executor_tracking``): every run requested or retried and not yet finished.
* **Watch** — each executor hears of the run events committed after it started, from the
  same reader of the log as its active runs (:class:`RunFeed`), woken by the store's NOTIFY;
  with Kafka (``KAFKA_BOOTSTRAP_SERVERS``), the
  executors also consume ``flowledger.runs.v1`` in one consumer group
  (``FLOWLEDGER_EXECUTOR_GROUP``), sharing its partitions and dropping events already seen.
  A new or retried run is picked up at once, and a cancelled one is signalled to its driver so
  the call in flight is cancelled.
* **Sweep** — every few seconds, and at start, every active run that is due and not driven
  here is tried: this is how runs of a stopped executor are resumed, and parked runs (WAITING:
  a wait, a signal, a child run) are driven again when their time comes (they have news —
  a signal, a resume, a child's end — as soon as it is recorded).
* **Locks** — a run is driven only under a PostgreSQL advisory lock held on this process's
  lock connection; a killed executor's connection closes and its locks go with it, so another
  executor resumes its runs, and two executors never drive one run at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Final
from uuid import UUID

import uvloop
from eventsourcing.persistence import Notification
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from flowledger.domain.backoff import Backoff
from flowledger.domain.runs import Run
from flowledger.eventlog.follower import Follower, run_followers
from flowledger.eventlog.store import event_type
from flowledger.executor.active_runs import (
    NEVER,
    ActiveRunsProjection,
    active_runs_table,
    parent_in,
)
from flowledger.executor.callers import AgentCallers
from flowledger.executor.driver import RunDriver
from flowledger.executor.run_locks import RunLocks
from flowledger.executor.settings import ExecutorSettings
from flowledger.kafka.config import KafkaSettings
from flowledger.kafka.consumer import FAST_GROUP_SETTINGS, EnvelopeConsumer
from flowledger.projections.projector import Projector
from flowledger.runtime.process import Runtime

log = logging.getLogger(__name__)

WAKE_EVENTS: Final = frozenset({"RunRequested", "RunRetried", "RunResumed", "RunSignalReceived"})
"""Events that make a run need a driver."""
SIGNAL_EVENTS: Final = frozenset(
    {"RunCancelled", "RunRetried", "RunPaused", "RunResumed", "RunSignalReceived"}
)
"""Events a run's driver must hear about at once."""
END_EVENTS: Final = frozenset({"RunSucceeded", "RunFailed", "RunCancelled"})
"""Events a parent run's driver, following that run as its child, must hear about."""
SAVE_EVERY_S: Final = 1.0
"""How long the executor's feed may keep a position in memory (see :class:`RunFeed`)."""
COMMIT_EVERY_S: Final = 1.0
"""How often the executor's Kafka consumer commits its offsets. The group is only a way to hear
of runs (the event store is the truth, and events seen are dropped), so what a rebalance or a
restart delivers again costs nothing: one commit a second instead of one per fetch."""
EXECUTOR_GROUP_SETTINGS: Final[dict[str, Any]] = {
    "session_timeout_ms": 3_000,
    "heartbeat_interval_ms": 1_000,
    "rebalance_timeout_ms": FAST_GROUP_SETTINGS["rebalance_timeout_ms"],
    "metadata_max_age_ms": 5_000,
    "fetch_max_wait_ms": 500,
}
"""The executors' group timings with ``FLOWLEDGER_KAFKA_FAST_GROUPS`` (dev, tests). The executor
hears of a run from its feed in a millisecond, so the group, its second way in, need not be as
quick as others: a fetch every 20 ms, a heartbeat every 200 ms and a metadata request every
second were work on the event loop that drives the runs' calls, and the broker's, for news the
feed had already given. With aiokafka's fetch wait, a heartbeat a second and a new topic noticed
within 5 s, an idle executor's loop used about 20 ms of CPU a second instead of 50, and the
embedded broker 17 instead of 29. (A heartbeat every 3 s, aiokafka's default, saved a little
more, but an executor stopping while its group rebalanced then took 5 s.)"""
RECONNECT: Final = Backoff(initial=0.5, maximum=10.0)
"""The wait before the executor's Kafka consumer connects again, after each failure in a row."""


class RunFeed:
    """The executor's one reader of the log (ADR 0014): each batch is read once, and

    * what a run's driver must hear (a new or retried run, a signal, a child's end) is handed
      to the event loop, for events committed after the executor started (``watch_from``);
      runs requested earlier are found by a sweep, the first one made as soon as the active
      runs hold them (the batch that reaches ``watch_from``), not at the next interval;
    * the executor's own projection (the active runs) is applied, decoding only the few run
      events it needs. A batch with none of them moves the position in memory only: it is
      saved with the next batch that changes the table, or by :meth:`idle` once
      ``SAVE_EVERY_S`` has passed. A restart reads those events again and finds nothing in
      them, so a step's events cost the executor no transaction of their own.
    """

    name = "executor"

    def __init__(self, executor: Executor, projector: Projector, watch_from: int) -> None:
        self.executor = executor
        self.projector = projector
        self.store = projector.store
        self.watch_from = watch_from
        self._caught_up = False
        self._unsaved: int | None = None
        self._saved_at = time.monotonic()

    def position(self) -> int | None:
        self._unsaved = None
        return self.projector.position()

    def handle(self, batch: Sequence[Notification]) -> None:
        latest: dict[Any, int] | None = None
        for notification in batch:
            if notification.id <= self.watch_from:
                continue
            name = event_type(notification.topic)
            if name in WAKE_EVENTS or name in SIGNAL_EVENTS or name in END_EVENTS:
                run_id = UUID(str(notification.originator_id))
                request = None
                if name == "RunRequested":
                    if latest is None:  # the last version of each aggregate in the batch
                        latest = {n.originator_id: n.originator_version for n in batch}
                    if latest[notification.originator_id] == 1:
                        request = self._request(notification)
                self.executor.notify_threadsafe(run_id, name, request)
        projector = self.projector
        if any(projector.wants(n.topic) for n in batch) or self._save_due():
            projector.handle(batch)
            self._saved()
        else:
            self._unsaved = batch[-1].id
        if not self._caught_up and batch[-1].id >= self.watch_from:
            self._caught_up = True
            self.executor.sweep_threadsafe()

    def _request(self, notification: Notification) -> Run.Requested | None:
        """A new run's request, when the batch holds nothing later of the run: its whole
        history so far, which its driver starts from instead of reading the run back."""
        event = self.store.decode(notification)
        return event if isinstance(event, Run.Requested) else None

    def idle(self) -> None:
        """Nothing new to read: save a position kept in memory for a while."""
        if self._unsaved is not None and self._save_due():
            projector = self.projector
            projector.commit([], after=projector.known, last=self._unsaved)
            self._saved()

    def _save_due(self) -> bool:
        return time.monotonic() - self._saved_at >= SAVE_EVERY_S

    def _saved(self) -> None:
        self._unsaved = None
        self._saved_at = time.monotonic()


class Executor:
    def __init__(self, runtime: Runtime, client: AgentCallers | None = None) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.settings = ExecutorSettings.from_settings(runtime.settings)
        self.call_slots = asyncio.Semaphore(self.settings.max_calls)
        self.client = client or AgentCallers()
        self.drivers: dict[UUID, RunDriver] = {}
        self._tasks: dict[UUID, asyncio.Task[None]] = {}
        self._queued: dict[UUID, None] = {}
        """Runs heard of while ``max_runs`` were driven, oldest first (at most ``max_runs`` of
        them): each takes the place of a driven run that ends, read back then (what was heard
        of it may be stale by then). Any more wait for a sweep."""
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._locks = RunLocks(self.store.database.libpq_url, self._lost_locks)
        self._engine: AsyncEngine | None = None
        """The sweep's async engine, made on this executor's own event loop (:meth:`run`)."""
        self._extra_sweep: asyncio.Task[float] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        follower_stop = threading.Event()
        runtime = self.runtime
        # An async engine belongs to the event loop it is used on (its pool and psycopg wake
        # waiters with calls that are not thread-safe). This loop is the executor's own, so
        # it does not use the runtime's engine, which an app in the same process (tests, a
        # small deployment's in-process workers) uses on its loop: shared, a request could
        # wait for ever for a wake-up its loop never saw.
        engine = self._engine = runtime.new_async_engine()
        # New runs are heard of from the event store itself (woken by its NOTIFY): that takes
        # a millisecond, the relay and a Kafka fetch tens of them. With Kafka, the executors'
        # consumer group is a second way in (the advisory lock makes one driver of each run).
        projector = Projector(
            ActiveRunsProjection(
                lambda run_id: self.notify_threadsafe(run_id, "RunWoken"),
                parent_of=parent_in(self.store),
            ),
            self.store,
            runtime.engine,
        )
        feed = RunFeed(self, projector, watch_from=await asyncio.to_thread(self.store.head))
        watched = [
            Follower(
                self.store,
                feed,
                batch_size=runtime.settings.follower_batch_size,
                idle_wait_s=runtime.settings.follower_idle_wait_s,
            )
        ]
        kafka = KafkaSettings.from_settings(runtime.settings)
        consuming: asyncio.Task[None] | None = None
        if kafka is not None:
            consuming = asyncio.create_task(self._consume(kafka, stop), name="executor-kafka")
        followers = threading.Thread(
            target=run_followers,
            args=(watched, follower_stop),
            daemon=True,
            name="executor-feed",
        )
        followers.start()
        try:
            while not stop.is_set() and followers.is_alive():
                next_due_s = await self._sweep()
                # Until the next sweep, or at once when asked to stop (news of a run comes from
                # the feed and the group, not through this loop).
                await asyncio.to_thread(stop.wait, min(self.settings.sweep_interval_s, next_due_s))
        finally:
            self._stopping = True  # no driver or sweep starts from here on
            follower_stop.set()
            for task in (consuming, self._extra_sweep):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await self._stop_drivers()
            await self.client.aclose()
            await self._locks.close()
            await asyncio.to_thread(followers.join, 10)
            await engine.dispose()

    def sweep_threadsafe(self) -> None:
        """Look for active runs now, besides the sweeps at intervals."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._sweep_now)

    def _sweep_now(self) -> None:
        if not self._stopping:
            self._extra_sweep = asyncio.create_task(self._sweep(), name="executor-sweep")

    def notify_threadsafe(
        self, run_id: UUID, name: str, request: Run.Requested | None = None
    ) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._notify, run_id, name, request)

    def _notify(self, run_id: UUID, name: str, request: Run.Requested | None = None) -> None:
        """A run event (by public event type) from the feed or the Kafka group; ``RunWoken``
        is a parent run whose child ended. ``request``: a new run's ``Run.Requested``, when
        the feed read it (its driver need not read the run)."""
        if name in END_EVENTS:
            self._queued.pop(run_id, None)
            for parent in self.drivers.values():
                parent.child_news(run_id)
        driver = self.drivers.get(run_id)
        if driver is not None and name in SIGNAL_EVENTS:
            driver.changed.set()
        elif name in WAKE_EVENTS or name == "RunWoken":
            self._start_driving(run_id, request)

    async def _consume(self, config: KafkaSettings, stop: threading.Event) -> None:
        """Run events from the executors' consumer group; reconnects with backoff."""
        failures = 0
        while not stop.is_set():
            consumer = EnvelopeConsumer(
                config,
                group_id=self.settings.group,
                aggregate_types=["run"],
                from_beginning=False,
                group_settings=EXECUTOR_GROUP_SETTINGS if config.fast_groups else None,
            )
            loop = asyncio.get_running_loop()
            try:
                await consumer.start()
                failures = 0
                committed_at = loop.time()
                while not stop.is_set():
                    for envelope in await consumer.getmany(timeout_ms=500):
                        self._notify(envelope.aggregate_id, envelope.event_type)
                    if loop.time() - committed_at >= COMMIT_EVERY_S:
                        await consumer.commit()
                        committed_at = loop.time()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                delay = RECONNECT.delay(failures)
                log.warning("executor consumer failed (%s); reconnecting in %.1fs", error, delay)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    # ------------------------------------------------------------------ discovery

    async def _sweep(self) -> float:
        """Drive every active run that is due; the seconds until the next parked one is."""
        table = active_runs_table
        now = func.now()
        try:
            assert self._engine is not None, "the sweep runs inside run()"
            async with self._engine.connect() as conn:
                due = or_(table.c.wake_at.is_(None), table.c.wake_at <= now)
                rows = await conn.execute(select(table.c.run_id).where(due))
                active = [row.run_id for row in rows]
                soonest = func.extract("epoch", func.min(table.c.wake_at) - now)
                later = (table.c.wake_at > now) & (table.c.wake_at < NEVER)
                next_due = (await conn.execute(select(soonest).where(later))).scalar()
        except Exception as error:
            log.warning("executor sweep failed: %s", error)
            return self.settings.sweep_interval_s
        for run_id in active:
            self._start_driving(run_id)
        return (
            max(0.05, float(next_due)) if next_due is not None else self.settings.sweep_interval_s
        )

    def _start_driving(self, run_id: UUID, request: Run.Requested | None = None) -> None:
        """Drive the run now if there is room, else queue it if the queue has room."""
        if self._stopping or run_id in self._tasks:
            return
        if len(self._tasks) >= self.settings.max_runs:
            if len(self._queued) < self.settings.max_runs:
                self._queued[run_id] = None
            return
        self._queued.pop(run_id, None)
        task = asyncio.create_task(self._drive(run_id, request), name=f"drive-{run_id}")
        self._tasks[run_id] = task
        task.add_done_callback(functools.partial(self._driven, run_id))

    def _start_queued(self) -> None:
        """A driven run ended: its place goes to the oldest run queued for one, at once (not
        at the next sweep, seconds later, with the executor idle meanwhile)."""
        while self._queued and len(self._tasks) < self.settings.max_runs and not self._stopping:
            run_id = next(iter(self._queued))
            del self._queued[run_id]
            self._start_driving(run_id)

    async def _drive(self, run_id: UUID, request: Run.Requested | None = None) -> None:
        if not await self._locks.lock(run_id):
            return
        try:
            driver = RunDriver(
                run_id,
                self.store,
                self.client,
                call_slots=self.call_slots,
                park_after_s=self.settings.park_after_s,
                request=request,
            )
            self.drivers[run_id] = driver
            await driver.drive()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("driving run %s failed; it will be tried again", run_id)
        finally:
            self.drivers.pop(run_id, None)
            await self._locks.unlock(run_id)

    def _driven(self, run_id: UUID, task: asyncio.Task[None]) -> None:
        """A driver's task is done (also one cancelled before it began, whose ``finally``
        never ran): its place is free."""
        if self._tasks.get(run_id) is task:
            del self._tasks[run_id]
        self._start_queued()

    async def _stop_drivers(self) -> None:
        self._queued.clear()
        tasks = list(self._tasks.values())  # (none starts once stopping)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ locks

    async def _lost_locks(self, error: BaseException) -> None:
        """The lock connection failed: every lock it held is gone, so stop driving (called by
        the locks' own task: it must not wait for the drivers)."""
        log.warning("executor lost its lock connection (%s); stopping its drivers", error)
        self._queued.clear()  # their news is stale too: the sweep finds them again
        for task in list(self._tasks.values()):
            task.cancel()


def run_executor(runtime: Runtime, stop: threading.Event) -> None:
    """The ``executor`` worker kind, on uvloop's event loop (ADR 0028)."""
    uvloop.run(Executor(runtime).run(stop))
