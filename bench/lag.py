"""Projection lag: how long after an append its run is visible (changed) in the ``runs`` read
table, with ``flowledger worker projections`` running in its own process.

Events are appended at a fixed rate from this process, as the API and the executor append
them: runs requested through the command layer and driven step by step (:func:`run_events`).
A watcher thread polls the runs projection's tracking row on its own connection every
millisecond and notes when each position became visible; rows and position are written in
one transaction, so a run's change is in ``runs`` exactly when the tracking position has
reached its event. Lag = the first time the watcher saw the position - the time the append
returned (committed).

Sizes (issue 15's target): the figure is 1,000 events/s sustained for 60 s, with the default
linger (``FLOWLEDGER_FOLLOWER_LINGER``); the details add 100 events/s, and 1,000 events/s
without a linger, 15 s each, so the full run takes about two
minutes. ``--quick`` runs each for 5 s.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

from bench.backlog import STEPS
from bench.catalogue import echo_chain
from bench.results import Figure, percentile
from bench.system import System, World
from flowledger.commands.runs import RequestRun, request_run
from flowledger.eventlog.store import APPLICATION_NAME, EventMetadata, EventStore
from flowledger.runtime.settings import load_settings

RATE = 1000.0
LOW_RATE = 100.0
DURATION_S = 60.0
"""How long ``RATE`` is sustained for the figure."""
DETAIL_S = 15.0
"""How long each of the details' loads lasts."""
TARGET_P99_MS = 100.0
POLL_S = 0.001
LINGER_S = 0.0
"""The detail's linger: none, to compare with the default (``FLOWLEDGER_FOLLOWER_LINGER``)."""
PACERS = 16
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


def run_events(store: EventStore, workflow_id: UUID) -> Iterator[int | None]:
    """Appends one event per ``next()``, as the API and the executor do: a run is requested
    (``request_run``), then driven step by step on the aggregate, as the executor drives its
    copy (start, and per step: started, task assigned, succeeded; then succeeded), one append
    each; then the next run. Yields each append's position."""
    meta = EventMetadata.system("bench")
    command = RequestRun(workflow_id=workflow_id, input_data={"text": "hello"})
    while True:
        outcome = request_run(store, command, meta)
        yield outcome.position
        run = outcome.aggregate
        run.start()
        yield store.record(run, metadata=meta)
        for n in range(1, STEPS + 1):
            attempt = run.start_step(f"s{n}", {"text": "hello"})
            yield store.record(run, metadata=meta)
            run.assign_task(f"s{n}", attempt, f"task-{n}")
            yield store.record(run, metadata=meta)
            run.succeed_step(f"s{n}", attempt, {"text": "hello"})
            yield store.record(run, metadata=meta)
        run.succeed()
        yield store.record(run, metadata=meta)


class Pacer:
    """Appends events at a fixed rate from ``PACERS`` threads sharing one schedule (an append
    waits for its group commit, a few ms under load, so a few threads alone fall behind at
    1,000 events/s; concurrent appends share commits); each thread drives its own runs, takes
    the next slot, waits for its time, and appends. A slot more than a second late is dropped:
    the rate achieved is reported."""

    def __init__(self, store: EventStore, workflow_id: UUID, rate: float, duration_s: float):
        self.store = store
        self.workflow_id = workflow_id
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
        events = run_events(self.store, self.workflow_id)
        while (slot := self._take()) is not None:
            delay = self.started + slot / self.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                continue
            position = next(events)
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


def _under_load(
    system: System,
    store: EventStore,
    workflow_id: UUID,
    watcher: Watcher,
    loads: list[tuple[float, float]],
    extra: dict[str, str] | None = None,
) -> tuple[list[dict[str, float]], float]:
    """Start the projections worker (with ``extra`` settings), measure the lag under each load
    (events/s, seconds), stop it; the results and the worker's peak RSS."""
    worker = system.start_worker("projections", extra)
    try:
        # The load starts once the worker follows: it has projected an event appended after
        # it started. (Waiting for the head is not enough: a restarted worker's saved position
        # is there already, and the load would then begin while it is still starting, its
        # start-up counted as lag.)
        started = next(run_events(store, workflow_id))
        watcher.wait_for(started or store.head(), timeout_s=60.0)
        results = [
            _paced(store, workflow_id, watcher, rate, duration_s) for rate, duration_s in loads
        ]
    finally:
        peak = system.stop(worker) or 0.0
    return results, peak


def measure(world: World, quick: bool) -> tuple[list[Figure], dict[str, float]]:
    duration = 5.0 if quick else DURATION_S
    detail = 5.0 if quick else DETAIL_S
    with world.system("lag") as system, system.runtime() as runtime:
        watcher = Watcher(system, [], threading.Event())
        thread = threading.Thread(target=watcher.run, name="lag-watcher", daemon=True)
        try:
            store = runtime.store
            workflow_id = echo_chain(store, "bench-lag", STEPS)
            thread.start()
            (high, low), peak = _under_load(
                system, store, workflow_id, watcher, [(RATE, duration), (LOW_RATE, detail)]
            )
            (lingering,), peak_lingering = _under_load(
                system,
                store,
                workflow_id,
                watcher,
                [(RATE, detail)],
                {"FLOWLEDGER_FOLLOWER_LINGER": str(LINGER_S)},
            )
        finally:
            watcher.stop.set()
            thread.join(timeout=5)
    settings = load_settings(system.env())
    figure = Figure(
        name=f"projection lag p99 at {RATE:,.0f} events/s sustained",
        value=high["p99_ms"],
        unit="ms",
        how=(
            f"{RATE:,.0f} events/s sustained for {duration:.0f} s appended from the bench "
            f"process as the API and executor do (runs requested, then driven through {STEPS} "
            "steps, one append per event); `flowledger worker projections` in its own process, "
            f"default settings (batch {settings.follower_batch_size}, woken by NOTIFY, polls every "
            f"{settings.follower_idle_wait_s} s, linger {settings.follower_linger_s} s); lag = "
            "append committed → runs tracking position seen by a 1 ms poll on another "
            f"connection. Details ({detail:.0f} s each): {LOW_RATE:.0f} events/s, and "
            f"{RATE:,.0f} events/s with FLOWLEDGER_FOLLOWER_LINGER={LINGER_S}"
        ),
        target=f"p99 < {TARGET_P99_MS:.0f} ms",
        met=high["p99_ms"] < TARGET_P99_MS
        and high["not_visible_in_10s"] == 0
        and high["rate_achieved"] >= 0.95 * RATE,
        details={
            "p50_ms": high["p50_ms"],
            f"at_{RATE:.0f}": high,
            f"at_{LOW_RATE:.0f}": low,
            f"at_{RATE:.0f}_linger_{LINGER_S}": lingering,
        },
    )
    figure.notes = (
        f"the bench appended {high['rate_achieved']:,.0f} of {RATE:,.0f} events/s asked "
        f"({high['not_visible_in_10s']} not visible within 10 s); at {LOW_RATE:.0f} events/s "
        f"p99 is {low['p99_ms']:.0f} ms; with a linger of {LINGER_S * 1000:.0f} ms (none) the "
        f"appends reached {lingering['rate_achieved']:,.0f}/s at p99 {lingering['p99_ms']:.0f} ms."
    )
    return [figure], {"projections worker": max(peak, peak_lingering)}
