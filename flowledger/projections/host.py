"""Read once, apply everywhere: the projections of one process share one follower of the log.

A :class:`ProjectionHost` is the batch handler of that follower. For every batch it decodes
each event once (only events some hosted projection wants), then hands each projection the
events it wants, and each applies them in one transaction with its own position
(:meth:`~flowledger.projections.projector.Projector.commit`). Projections that want nothing
in the batch only move their position forward, all of them in one shared transaction, so every
projection reaches every position (reads that wait for a position need it) at the cost of one
commit, not one each. A small batch (a live one, of a few events) is applied by every
projection in one transaction (:meth:`ProjectionHost._together`).

Each projection keeps its own position, so they need not be level: after a rebuild, or when a
projection is added, the follower reads from the lowest position and each projection skips
what it already has. The follower's position is the lowest of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any, Final

from eventsourcing.persistence import Notification
from sqlalchemy import Engine

from flowledger.eventlog.decoding import EventDecoder
from flowledger.eventlog.follower import PositionMoved
from flowledger.eventlog.store import EventStore
from flowledger.observability import metrics
from flowledger.observability.tracing import follower_batch_span, recording
from flowledger.projections.projector import (
    Applied,
    Projector,
    advance_locked,
    locked_batch,
)

log = logging.getLogger(__name__)

NAME = "projections"
TOGETHER_UP_TO: Final = 16
"""A batch of at most this many events is applied by every projection in one transaction
(see :meth:`ProjectionHost._together`)."""


class ProjectionHost:
    """The batch handler feeding several projectors (see the module's doc)."""

    def __init__(
        self,
        store: EventStore,
        engine: Engine,
        projectors: Sequence[Projector],
        *,
        name: str = NAME,
        decoder: EventDecoder | None = None,
        threads: int = 3,
        together_up_to: int = TOGETHER_UP_TO,
    ) -> None:
        if not projectors:
            raise ValueError("a projection host needs at least one projection")
        self.name = name
        self.engine = engine
        self.projectors = sorted(projectors, key=lambda p: p.name)
        """In name order: the order their tracking rows are locked in, by every host."""
        self.decoder = decoder or EventDecoder(store.mapper)
        for projector in self.projectors:
            projector.decoder = self.decoder
        self.together_up_to = (
            together_up_to if all(p.schema is None for p in self.projectors) else 0
        )
        """Batches up to this size go in one transaction (0: never; a rebuild's copies are
        each in a schema of their own, written through their projector's engine)."""
        self._after = 0
        self._wanted: dict[str, tuple[int, ...]] = {}
        self._pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"{name}-apply")
            if threads > 1
            else None
        )

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.projectors]

    # ---------------------------------------------------------------- BatchHandler
    def position(self) -> int | None:
        """The lowest position of the hosted projections (the follower reads after it)."""
        positions = [projector.position() or 0 for projector in self.projectors]
        self._after = min(positions)
        return self._after or None

    def handle(self, batch: Sequence[Notification]) -> None:
        after, last = self._after, batch[-1].id
        events = self._decode(batch)
        idle: list[Projector] = []
        busy: list[tuple[Projector, list[Applied]]] = []
        for projector, wanted in zip(self.projectors, events, strict=True):
            if projector.known >= last:
                continue  # ahead of this batch (it was rebuilt, or another copy got further)
            if wanted:
                busy.append((projector, wanted))
            else:
                idle.append(projector)
        if len(batch) <= self.together_up_to and busy:
            moved = self._together(busy, idle, after, last, len(batch))
        else:
            moved = self._separately(busy, idle, after, last, len(batch))
        self._after = last
        if moved:  # some projection is not where this batch started: read from the lowest
            raise PositionMoved(self.name)

    # ---------------------------------------------------------------- inside
    def _decode(self, batch: Sequence[Notification]) -> list[list[Applied]]:
        """Per hosted projector (in order), the batch's events it wants, each decoded once."""
        wanted: list[list[Applied]] = [[] for _ in self.projectors]
        for notification in batch:
            takers = self._takers(notification.topic)
            if not takers:
                continue
            applied = (notification.id, self.decoder.decode(notification))
            for index in takers:
                wanted[index].append(applied)
        return wanted

    def _takers(self, topic: str) -> tuple[int, ...]:
        takers = self._wanted.get(topic)
        if takers is None:
            takers = tuple(i for i, p in enumerate(self.projectors) if p.wants(topic))
            self._wanted[topic] = takers
        return takers

    def _run(self, jobs: Sequence[Callable[[], bool]]) -> list[bool]:
        """Run the batch's transactions, several at once: while one waits for the database,
        another prepares its rows. The first error is raised once all are done."""
        if len(jobs) == 1 or self._pool is None:
            return [job() for job in jobs]
        futures = [self._pool.submit(job) for job in jobs]
        wait(futures)
        return [future.result() for future in futures]

    def _separately(
        self,
        busy: list[tuple[Projector, list[Applied]]],
        idle: list[Projector],
        after: int,
        last: int,
        size: int,
    ) -> bool:
        """One transaction per busy projection, and one moving the idle ones' positions; True
        when a position had moved."""
        jobs = [partial(self._commit, p, wanted, after, last, size) for p, wanted in busy]
        if idle:
            jobs.append(partial(self._advance, idle, after, last, size))
        return any(self._run(jobs))

    def _commit(
        self, projector: Projector, events: list[Applied], after: int, last: int, size: int
    ) -> bool:
        """One projection's transaction; True when its position had moved."""
        started = time.perf_counter()
        try:
            with self._span(projector, events):
                projector.commit(events, after=after, last=last)
        except PositionMoved:
            return True
        _record(projector, size, time.perf_counter() - started)
        return False

    def _together(
        self,
        busy: list[tuple[Projector, list[Applied]]],
        idle: list[Projector],
        after: int,
        last: int,
        size: int,
    ) -> bool:
        """A small batch: every projection applies its events (and the idle ones move their
        positions) in one transaction, their tracking rows locked with its BEGIN (in name
        order, as everywhere). A live batch of a few events then costs one commit and a few
        round trips, not one transaction per projection. True when a position had moved; any
        other failure, and the batch is applied one transaction per projection instead, so a
        projection that fails stops only itself."""
        started = time.perf_counter()
        events = dict((p.name, wanted) for p, wanted in busy)
        locking = [p for p in self.projectors if p.name in events or p in idle]
        try:
            with locked_batch(self.engine, None, locking) as (conn, currents):
                reached = {}
                applied = []  # their positions are saved with the idle ones', in one statement
                for projector, current in zip(locking, currents, strict=True):
                    if projector.name not in events:
                        continue
                    with self._span(projector, events[projector.name]):
                        reached[projector.name] = projector.apply_locked(
                            conn,
                            events[projector.name],
                            current,
                            after=after,
                            last=last,
                            save=False,
                        )
                    if current < last:
                        applied.append(projector)
                resting = [(p, c) for p, c in zip(locking, currents, strict=True) if p in idle]
                moved = advance_locked(
                    conn,
                    [p for p, _ in resting],
                    [c for _, c in resting],
                    after=after,
                    last=last,
                    applied=applied,
                )
                reached.update((p.name, r) for (p, _), r in zip(resting, moved, strict=True))
        except PositionMoved:
            _abandon(locking)
            return True
        except Exception as error:
            _abandon(locking)
            log.warning(
                "projections: a batch failed in one transaction (%s: %s); applying it one "
                "transaction per projection",
                type(error).__name__,
                error,
            )
            return self._separately(busy, idle, after, last, size)
        seconds = time.perf_counter() - started
        for projector in locking:
            projector.known = reached[projector.name]
            _record(projector, size, seconds)
        return False

    def _advance(self, projectors: list[Projector], after: int, last: int, size: int) -> bool:
        """Move the positions of projections with nothing to apply, in one transaction; True
        when one of them had been moved by someone else (then each is tried on its own)."""
        started = time.perf_counter()
        try:
            with locked_batch(self.engine, None, projectors) as (conn, currents):
                reached = advance_locked(conn, projectors, currents, after=after, last=last)
        except PositionMoved:
            _abandon(projectors)
            moved = False
            for projector in projectors:
                try:
                    projector.commit([], after=after, last=last)
                except PositionMoved:
                    moved = True
            return moved
        except BaseException:
            _abandon(projectors)
            raise
        for projector, position in zip(projectors, reached, strict=True):
            projector.known = position
            _record(projector, size, time.perf_counter() - started)
        return False

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _span(self, projector: Projector, events: Sequence[Applied]) -> AbstractContextManager[Any]:
        if not (projector.trace_events and recording()):
            return nullcontext()
        return follower_batch_span(projector.name, [_Positioned(p) for p, _ in events])


def _abandon(projectors: Sequence[Projector]) -> None:
    """Tell each projection its batch's transaction did not commit (see
    :meth:`~flowledger.projections.projector.Projection.abandoned`)."""
    for projector in projectors:
        projector.projection.abandoned()


def _record(projector: Projector, events: int, seconds: float) -> None:
    metrics.FOLLOWER_EVENTS.labels(projector.name).inc(events)
    metrics.FOLLOWER_BATCH_DURATION.labels(projector.name).observe(seconds)


class _Positioned:
    """What a batch span reads of a batch's first and last items: their position (``id``)."""

    __slots__ = ("id",)

    def __init__(self, position: int) -> None:
        self.id = position
