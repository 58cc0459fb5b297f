"""The executor process: finds runs that need driving and drives each in exactly one place.

* **Active runs** — a projection kept by the executor itself (``executor_active_runs``, with
  its position in ``executor_tracking``): every run requested or retried and not yet finished.
* **Watch** — each executor tails the run events from the moment it starts (no saved
  position): a new or retried run is picked up at once, a cancelled one is signalled to its
  driver so the call in flight is cancelled.
* **Sweep** — every few seconds, and at start, every active run not driven here is tried:
  this is how runs of a stopped executor are resumed.
* **Locks** — a run is driven only under a PostgreSQL advisory lock held on this process's
  lock connection; a killed executor's connection closes and its locks go with it, so another
  executor resumes its runs, and two executors never drive one run at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import Notification
from sqlalchemy import select

from flowledger.executor.active_runs import ActiveRunsProjection, active_runs_table
from flowledger.executor.agent_client import AgentClient
from flowledger.executor.driver import RunDriver
from flowledger.following import Follower, run_followers
from flowledger.projections.projector import Projector
from flowledger.runtime import Runtime

log = logging.getLogger(__name__)

RUN_TOPIC = "flowledger.domain.runs:Run."
WAKE_EVENTS = {f"{RUN_TOPIC}Requested": "new", f"{RUN_TOPIC}Retried": "new"}
SIGNAL_EVENTS = {f"{RUN_TOPIC}Cancelled", f"{RUN_TOPIC}Retried"}


def lock_key(run_id: UUID) -> int:
    """The advisory lock key of a run: 64 bits of its id, as a signed bigint."""
    return int.from_bytes(run_id.bytes[:8], "big", signed=True)


class RunWatch:
    """An unsaved follower of run events from now on, handing them to the event loop."""

    name = "executor-watch"

    def __init__(self, executor: Executor, start: int) -> None:
        self.executor = executor
        self._position = start

    def position(self) -> int | None:
        return self._position

    def handle(self, batch: Sequence[Notification]) -> None:
        for notification in batch:
            if notification.topic in WAKE_EVENTS or notification.topic in SIGNAL_EVENTS:
                run_id = UUID(str(notification.originator_id))
                self.executor.notify_threadsafe(run_id, notification.topic)
        self._position = batch[-1].id


class Executor:
    def __init__(self, runtime: Runtime, client: AgentClient | None = None) -> None:
        self.runtime = runtime
        self.store = runtime.store
        settings = runtime.settings.extra
        self.sweep_interval_s = float(settings.get("FLOWLEDGER_EXECUTOR_SWEEP_INTERVAL", "2"))
        self.max_runs = int(settings.get("FLOWLEDGER_EXECUTOR_MAX_RUNS", "200"))
        self.call_slots = asyncio.Semaphore(
            int(settings.get("FLOWLEDGER_EXECUTOR_MAX_CALLS", "64"))
        )
        self.client = client or AgentClient()
        self.drivers: dict[UUID, RunDriver] = {}
        self._tasks: dict[UUID, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_conn: psycopg.AsyncConnection[Any] | None = None
        self._lock_guard = asyncio.Lock()
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        follower_stop = threading.Event()
        runtime = self.runtime
        feed = Follower(
            self.store,
            Projector(ActiveRunsProjection(), self.store, runtime.engine),
            batch_size=runtime.settings.follower_batch_size,
            idle_wait_s=runtime.settings.follower_idle_wait_s,
        )
        watch = Follower(
            self.store,
            RunWatch(self, start=await asyncio.to_thread(self.store.head)),
            idle_wait_s=runtime.settings.follower_idle_wait_s,
        )
        followers = threading.Thread(
            target=run_followers,
            args=([feed, watch], follower_stop),
            daemon=True,
            name="executor-feed",
        )
        followers.start()
        try:
            while not stop.is_set() and followers.is_alive():
                await self._sweep()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.sweep_interval_s)
                self._wake.clear()
        finally:
            follower_stop.set()
            await self._stop_drivers()
            await self.client.aclose()
            if self._lock_conn is not None:
                await self._lock_conn.close()
            await asyncio.to_thread(followers.join, 10)

    def notify_threadsafe(self, run_id: UUID, topic: str) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._notify, run_id, topic)

    def _notify(self, run_id: UUID, topic: str) -> None:
        driver = self.drivers.get(run_id)
        if driver is not None and topic in SIGNAL_EVENTS:
            driver.changed.set()
        elif topic in WAKE_EVENTS:
            self._start_driving(run_id)

    # ------------------------------------------------------------------ discovery

    async def _sweep(self) -> None:
        try:
            async with self.runtime.async_engine.connect() as conn:
                rows = await conn.execute(select(active_runs_table.c.run_id))
                active = [row.run_id for row in rows]
        except Exception as error:
            log.warning("executor sweep failed: %s", error)
            return
        for run_id in active:
            self._start_driving(run_id)

    def _start_driving(self, run_id: UUID) -> None:
        if run_id in self._tasks or len(self._tasks) >= self.max_runs:
            return
        self._tasks[run_id] = asyncio.create_task(self._drive(run_id), name=f"drive-{run_id}")

    async def _drive(self, run_id: UUID) -> None:
        try:
            if not await self._try_lock(run_id):
                return
            try:
                driver = RunDriver(run_id, self.store, self.client, call_slots=self.call_slots)
                self.drivers[run_id] = driver
                await driver.drive()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("driving run %s failed; it will be tried again", run_id)
            finally:
                self.drivers.pop(run_id, None)
                await self._unlock(run_id)
        finally:
            self._tasks.pop(run_id, None)

    async def _stop_drivers(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ locks

    async def _try_lock(self, run_id: UUID) -> bool:
        async with self._lock_guard:
            try:
                conn = await self._lock_connection()
                cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(run_id),))
                row = await cursor.fetchone()
            except psycopg.Error as error:
                await self._lost_locks(error)
                return False
            return bool(row and row[0])

    async def _unlock(self, run_id: UUID) -> None:
        async with self._lock_guard:
            if self._lock_conn is None or self._lock_conn.closed:
                return
            try:
                await self._lock_conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(run_id),))
            except psycopg.Error as error:
                await self._lost_locks(error)

    async def _lock_connection(self) -> psycopg.AsyncConnection[Any]:
        if self._lock_conn is None or self._lock_conn.closed:
            self._lock_conn = await psycopg.AsyncConnection.connect(
                self.store.database.libpq_url, autocommit=True, connect_timeout=5
            )
        return self._lock_conn

    async def _lost_locks(self, error: BaseException) -> None:
        """The lock connection failed: every lock it held is gone, so stop driving."""
        log.warning("executor lost its lock connection (%s); stopping its drivers", error)
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                await self._lock_conn.close()
        self._lock_conn = None
        current = asyncio.current_task()
        for task in list(self._tasks.values()):
            if task is not current:
                task.cancel()


def run_executor(runtime: Runtime, stop: threading.Event) -> None:
    """The ``executor`` worker kind."""
    asyncio.run(Executor(runtime).run(stop))
