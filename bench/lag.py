"""Projection lag: how long after a command's append its run is visible in the ``runs`` read
table, with ``flowledger worker projections`` running in its own process.

Runs are requested through the command layer (``request_run``, one event each) at a fixed
rate from this process. A watcher thread polls the runs projection's tracking row on its own
connection every millisecond and notes when each position became visible; the row and the
position are written in one transaction, so a run is in ``runs`` exactly when the tracking
position has reached its event. Lag = the first time the watcher saw the position - the time
the append returned (committed).
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass
from uuid import UUID

from bench.backlog import STEPS, chain
from bench.results import Figure, percentile
from bench.system import System, World
from flowledger.commands.agents import RegisterAgent, register_agent
from flowledger.commands.runs import RequestRun, request_run
from flowledger.commands.workflows import CreateWorkflow, create_workflow
from flowledger.eventstore import APPLICATION_NAME, EventMetadata, EventStore
from flowledger.runtime import Runtime
from flowledger.settings import load_settings

RATE = 500.0
LOW_RATE = 100.0
TARGET_P99_MS = 100.0
POLL_S = 0.001
PACERS = 4
_POSITION = "SELECT notification_id FROM runs_tracking WHERE application_name = %s"


@dataclass
class Watcher:
    """Polls the runs projection's position; ``seen`` holds (position, first time seen)."""

    system: System
    seen: list[tuple[int, float]]
    stop: threading.Event

    def run(self) -> None:
        last = -1
        with self.system.database.connect() as conn:
            while not self.stop.is_set():
                row = conn.execute(_POSITION, (APPLICATION_NAME,), prepare=True).fetchone()
                now = time.perf_counter()
                position = int(str(row[0])) if row else 0
                if position > last:
                    self.seen.append((position, now))
                    last = position
                time.sleep(POLL_S)

    def visible_at(self, position: int) -> float | None:
        index = bisect.bisect_left(self.seen, (position, 0.0))
        return self.seen[index][1] if index < len(self.seen) else None

    def wait_for(self, position: int, timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        while (not self.seen or self.seen[-1][0] < position) and time.perf_counter() < deadline:
            time.sleep(0.01)


def _workflow(store: EventStore, meta: EventMetadata) -> UUID:
    register_agent(store, RegisterAgent(name="echo", url="http://127.0.0.1:9/x"), meta)
    created = create_workflow(
        store, CreateWorkflow(name="bench-lag", definition=chain("echo", STEPS)), meta
    )
    return created.aggregate.id


class Pacer:
    """Requests runs at a fixed rate from ``PACERS`` threads sharing one schedule (a command
    takes ~2 ms of this process's time, so one thread alone falls behind when the CPU is
    shared); each thread takes the next slot, waits for its time, and appends."""

    def __init__(self, store: EventStore, workflow_id: UUID, rate: float, duration_s: float):
        self.store = store
        self.command = RequestRun(workflow_id=workflow_id, input_data={"text": "hello"})
        self.meta = EventMetadata.system("bench")
        self.rate = rate
        self.slots = int(rate * duration_s)
        self.next_slot = 0
        self.lock = threading.Lock()
        self.appended: list[tuple[int, float]] = []
        self.started = 0.0

    def _take(self) -> int | None:
        with self.lock:
            if self.next_slot >= self.slots:
                return None
            self.next_slot += 1
            return self.next_slot - 1

    def _append(self) -> None:
        while (slot := self._take()) is not None:
            delay = self.started + slot / self.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:  # more than a second behind: the rate cannot be held
                continue
            position = request_run(self.store, self.command, self.meta).position
            if position is not None:
                self.appended.append((position, time.perf_counter()))

    def run(self) -> float:
        """Append on schedule; the seconds it took."""
        self.started = time.perf_counter()
        threads = [threading.Thread(target=self._append) for _ in range(PACERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - self.started


def _paced(
    store: EventStore, workflow_id: UUID, watcher: Watcher, rate: float, duration_s: float
) -> dict[str, float]:
    """Request runs at ``rate`` for ``duration_s``; the lag percentiles and the rate achieved."""
    pacer = Pacer(store, workflow_id, rate, duration_s)
    elapsed = pacer.run()
    appended = pacer.appended
    watcher.wait_for(max((p for p, _ in appended), default=0), timeout_s=10.0)
    lags = []
    missing = 0
    for position, committed in appended:
        seen = watcher.visible_at(position)
        if seen is None:
            missing += 1
        else:
            lags.append(max(seen - committed, 0.0) * 1000)
    return {
        "rate_asked": rate,
        "rate_achieved": round(len(appended) / elapsed, 1),
        "runs": len(appended),
        "not_visible_in_10s": missing,
        "p50_ms": round(percentile(lags, 50), 2),
        "p99_ms": round(percentile(lags, 99), 2),
        "max_ms": round(max(lags, default=0.0), 2),
    }


def measure(world: World, quick: bool) -> tuple[list[Figure], dict[str, float]]:
    duration = 5.0 if quick else 20.0
    with world.system("lag") as system:
        runtime = Runtime.open(load_settings(system.env()), database=system.database, migrate=False)
        watcher = Watcher(system, [], threading.Event())
        thread = threading.Thread(target=watcher.run, name="lag-watcher", daemon=True)
        try:
            workflow_id = _workflow(runtime.store, EventMetadata.system("bench"))
            worker = system.start_worker("projections")
            thread.start()
            watcher.wait_for(runtime.store.head(), timeout_s=60.0)
            high = _paced(runtime.store, workflow_id, watcher, RATE, duration)
            low = _paced(runtime.store, workflow_id, watcher, LOW_RATE, duration)
            peak = system.stop(worker) or 0.0
        finally:
            watcher.stop.set()
            thread.join(timeout=5)
            runtime.close_sync()
    settings = load_settings(system.env())
    figure = Figure(
        name=f"projection lag p99 at {RATE:.0f} events/s",
        value=high["p99_ms"],
        unit="ms",
        how=(
            f"request_run at {RATE:.0f}/s for {duration:.0f} s from the bench process (one "
            "event each); `flowledger worker projections` in its own process (default settings: "
            f"batch {settings.follower_batch_size}, idle wait {settings.follower_idle_wait_s} s, "
            "woken by NOTIFY); lag = append committed → runs tracking position seen by a 1 ms "
            "poll on another connection"
        ),
        target=f"p99 < {TARGET_P99_MS:.0f} ms",
        met=high["p99_ms"] < TARGET_P99_MS and high["not_visible_in_10s"] == 0,
        details={"p50_ms": high["p50_ms"], f"at_{RATE:.0f}": high, f"at_{LOW_RATE:.0f}": low},
    )
    return [figure], {"projections worker": peak}
