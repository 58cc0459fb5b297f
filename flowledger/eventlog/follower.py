"""Following the event log: the loop every derived process runs.

A :class:`Follower` reads stored events in global order after its handler's saved position,
in batches, and hands each batch to the handler. It wakes on the event store's NOTIFY (through
the store's :class:`~flowledger.eventlog.notify.Notifier`, one connection for every follower of
the process) and also polls on a short interval, so a lost notification or a dropped
connection never stalls it.

Failure policy: an error that looks like the database being unreachable is retried forever
with capped exponential backoff (the process recovers by itself when the database returns).
Any other error is retried ``max_attempts`` times, one event at a time so that the events
before a bad one still get applied; then the follower stops loudly with the failing position.
An error may say how long to wait before the next attempt (``retry_after_s``, say a broker
that refuses a feature the handler needs) and that the handler reported it already
(``reported``: the follower does not log it again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import psycopg
import sqlalchemy.exc
from eventsourcing import persistence as es_persistence
from eventsourcing.persistence import Notification

from flowledger.domain.backoff import Backoff
from flowledger.eventlog.notify import Notifier
from flowledger.eventlog.reader import LogReader
from flowledger.eventlog.store import EventStore
from flowledger.observability import metrics
from flowledger.observability.tracing import follower_batch_span

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    es_persistence.OperationalError,
    es_persistence.InterfaceError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
    TimeoutError,
)


class PositionMoved(Exception):
    """Another instance of the same follower advanced the saved position; re-read it."""


class StopFollowing(Exception):
    """Raised by a handler that must not go on (a relay that lost its lead): the follower
    stops at once, without retrying or failing, and ``run`` returns."""


class BatchHandler(Protocol):
    """What a follower drives. A handler may also have an ``idle()`` method, called when there
    was nothing new to read; it may raise :class:`PositionMoved` after changing its position.
    A handler that stands for several followers (the projections of a process) lists their
    names in ``names``: the follower's state and retries are recorded under each of them too
    (the handler records their events and batch times itself)."""

    name: str

    def position(self) -> int | None:
        """The position of the last event this handler has fully dealt with."""

    def handle(self, batch: Sequence[Notification]) -> None:
        """Deal with the batch and save ``batch[-1].id`` as the new position.

        Projections save the position in the same transaction as their rows. Handlers with
        outside effects (Kafka, webhooks) save it after the effects are acknowledged.
        """


class FollowerFailed(RuntimeError):
    def __init__(self, name: str, position: int, cause: BaseException) -> None:
        super().__init__(
            f"follower {name!r} stopped at position {position}: {type(cause).__name__}: {cause}"
        )
        self.name = name
        self.position = position
        self.cause = cause


State = Literal["starting", "running", "retrying", "failed", "stopped"]


@dataclass
class FollowerStatus:
    name: str
    state: State = "starting"
    position: int | None = None
    last_error: str | None = None
    failed_position: int | None = None
    events_handled: int = 0
    updated_at: float = field(default_factory=time.time)


RETRY_BACKOFF = Backoff(initial=0.2, maximum=10.0, jitter=(0.5, 1.0))
"""The wait between a follower's attempts at a batch (seconds)."""


class Follower:
    def __init__(
        self,
        store: EventStore,
        handler: BatchHandler,
        *,
        batch_size: int = 500,
        idle_wait_s: float = 0.5,
        linger_s: float = 0.0,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
    ) -> None:
        self.store = store
        self.reader = LogReader(store)
        self.handler = handler
        self.batch_size = batch_size
        self.idle_wait_s = idle_wait_s
        self.linger_s = linger_s
        """The least time between two reads: woken by a NOTIFY sooner after its last read (of
        any kind: after a NOTIFY, a poll, a full batch), the follower waits for the rest of it,
        so events appended close together share one batch (one transaction) instead of costing
        one each. An event appended when the log was quiet for that long is read at once;
        others wait at most this much longer."""
        self._read_at = 0.0
        """When the last read began (``time.monotonic()``)."""
        self.max_attempts = max_attempts
        self.backoff = backoff or RETRY_BACKOFF
        self.status = FollowerStatus(name=handler.name)
        self.labels: list[str] = [handler.name, *getattr(handler, "names", ())]
        """The metric labels this follower records its state and retries under."""
        self._notifier: Notifier = store.notifier
        self._at_head = False
        """The last batch was shorter than asked for: the follower had reached the head."""

    @property
    def name(self) -> str:
        return self.handler.name

    def run(self, stop: threading.Event) -> None:
        """Follow the log until ``stop`` is set; raise :class:`FollowerFailed` if it must stop."""
        self._set_state("running")
        try:
            with self._notifier.subscription():
                position = self._load_position(stop)
                while not stop.is_set():
                    # Taken before the read: an event committed after it ends the wait below.
                    token = self._notifier.token()
                    try:
                        handled = self._step(position, stop)
                    except StopFollowing as reason:
                        log.warning("follower %s: stopping: %s", self.name, reason)
                        break
                    if stop.is_set():
                        break  # (a handler may set it: the tail once it printed enough)
                    if handled is not None:
                        position = handled
                        if not self._at_head:
                            continue  # a full batch: read on at once
                    # Nothing to read, or at the head as of that read: anything newer commits
                    # later and sends a NOTIFY, so wait for it rather than read to find nothing.
                    notified = self._notifier.wait(token, self.idle_wait_s)
                    try:
                        moved = self._idle()
                    except StopFollowing as reason:
                        log.warning("follower %s: stopping: %s", self.name, reason)
                        break
                    if moved:
                        position = self._load_position(stop)
                    elif notified:
                        self._linger(stop)
        finally:
            if self.status.state != "failed":
                self._set_state("stopped")

    def catch_up(self, until: int | None = None) -> int | None:
        """Handle everything up to ``until`` (default: the head now), then return the position."""
        stop = threading.Event()
        target = self.store.head() if until is None else until
        position = self._load_position(stop)
        while (position or 0) < target:
            handled = self._step(position, stop)
            if handled is None:
                break
            position = handled
        return position

    def _linger(self, stop: threading.Event) -> None:
        wait = self.linger_s - (time.monotonic() - self._read_at)
        if wait > 0:
            stop.wait(wait)

    def _idle(self) -> bool:
        """Give a handler with an ``idle()`` method its turn when there is nothing to read (the
        relay checks its broker); True when the handler moved its saved position."""
        idle = getattr(self.handler, "idle", None)
        if idle is None:
            return False
        try:
            idle()
        except PositionMoved:
            return True
        except StopFollowing:
            raise
        except Exception as error:  # an idle check never stops the follower
            log.warning(
                "follower %s: idle check failed: %s: %s", self.name, type(error).__name__, error
            )
        return False

    def _load_position(self, stop: threading.Event) -> int | None:
        attempt = 0
        while True:
            try:
                position = self.handler.position()
            except TRANSIENT_ERRORS as error:
                attempt += 1
                self._retrying(error, attempt)
                if stop.wait(self.backoff.delay(attempt)):
                    return None
            else:
                self.status.position = position
                return position

    def _step(self, position: int | None, stop: threading.Event) -> int | None:
        """Read and handle one batch; the new position, or None when there was nothing new."""
        attempt = 0
        size = self.batch_size
        batch: Sequence[Notification] = []
        while True:
            try:
                self._read_at = time.monotonic()
                batch = self.reader.read(position, size)
                if not batch:
                    return None
                started = time.perf_counter()
                with follower_batch_span(self.name, batch):
                    self.handler.handle(batch)
                metrics.FOLLOWER_BATCH_DURATION.labels(self.name).observe(
                    time.perf_counter() - started
                )
            except PositionMoved:
                position = self._load_position(stop)
                continue
            except StopFollowing:
                raise
            except TRANSIENT_ERRORS as error:
                attempt += 1
                self._retrying(error, attempt)
                wait = getattr(error, "retry_after_s", None) or self.backoff.delay(attempt)
            except Exception as error:
                attempt += 1
                wait = self.backoff.delay(attempt)
                size = 1  # isolate the failing event; the ones before it still get applied
                if attempt >= self.max_attempts:
                    failing = batch[0].id if batch else (position or 0) + 1
                    self._set_state("failed", error, failing)
                    log.critical("%s", FollowerFailed(self.name, failing, error))
                    raise FollowerFailed(self.name, failing, error) from error
                self._retrying(error, attempt)
            else:
                if attempt:
                    self._set_state("running")
                self._at_head = len(batch) < size
                self.status.position = batch[-1].id
                self.status.events_handled += len(batch)
                metrics.FOLLOWER_EVENTS.labels(self.name).inc(len(batch))
                self.status.updated_at = time.time()
                return batch[-1].id
            if stop.wait(wait):
                return None

    def _retrying(self, error: BaseException, attempt: int) -> None:
        self._set_state("retrying", error)
        reason = "transient" if isinstance(error, TRANSIENT_ERRORS) else "error"
        for label in self.labels:
            metrics.FOLLOWER_RETRIES.labels(label, reason).inc()
        log.log(
            logging.DEBUG if getattr(error, "reported", False) else logging.WARNING,
            "follower %s: attempt %d failed (%s: %s); retrying",
            self.name,
            attempt,
            type(error).__name__,
            error,
        )

    def _set_state(
        self, state: State, error: BaseException | None = None, failed_at: int | None = None
    ) -> None:
        self.status.state = state
        for label in self.labels:
            metrics.FOLLOWER_STATE.labels(label).state(state)
        if error is not None:
            self.status.last_error = f"{type(error).__name__}: {error}"
        if failed_at is not None:
            self.status.failed_position = failed_at
        self.status.updated_at = time.time()


def run_followers(followers: Sequence[Follower], stop: threading.Event) -> None:
    """Run each follower in its own thread until ``stop`` is set or one of them fails.

    A failure stops the others and is raised here, so a worker process exits non-zero with
    the failing follower and position in its last log line.
    """
    failures: list[FollowerFailed] = []

    def target(follower: Follower) -> None:
        try:
            follower.run(stop)
        except FollowerFailed as failure:
            failures.append(failure)
            stop.set()

    threads = [
        threading.Thread(target=target, args=(f,), name=f"follower-{f.name}", daemon=True)
        for f in followers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.5)
    if failures:
        raise failures[0]
