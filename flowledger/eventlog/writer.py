"""Group commit: one writer per process records the decided events of many commands in one
transaction of the event store (ADR 0013).

Callers decide concurrently (load, call a domain method) and hand their stored events to the
writer; the writer takes what has queued — up to ``batch_size`` commands, waiting at most
``window_s`` for more — and records it with the library's own insert (``LOCK TABLE ... IN
EXCLUSIVE MODE``, ``NOTIFY``, one ``INSERT``, one commit), so positions still follow commit
order. Each caller is answered once its batch committed, with its own events' positions.

A batch that violates a unique key (a version conflict, a name already claimed) is split in
halves and each half recorded again, in order, until the command at fault is alone: it alone
fails, the others commit. Any other failure (the database is unreachable) fails the whole batch;
nothing of it was recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Final

from eventsourcing.persistence import (
    ApplicationRecorder,
    DataError,
    IntegrityError,
    StoredEvent,
)

from flowledger.observability import metrics

log = logging.getLogger(__name__)

ISOLATED_ERRORS: Final = (IntegrityError, DataError)
"""Failures that one command's events can cause: split the batch to find it."""


@dataclass
class Submission:
    """One command's events, and where its caller waits for their positions."""

    events: Sequence[StoredEvent]
    answer: Future[list[int]] = field(default_factory=Future)


class Writer:
    """The process's group-commit writer over ``recorder`` (a thread, started on first use)."""

    def __init__(
        self, recorder: ApplicationRecorder, *, batch_size: int = 64, window_s: float = 0.0
    ) -> None:
        self.recorder = recorder
        self.batch_size = batch_size
        self.window_s = window_s
        self._queue: deque[Submission] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, events: Sequence[StoredEvent]) -> Future[list[int]]:
        """Queue one command's events; the future answers their positions once committed."""
        [submission] = self.submit_many([events])
        return submission

    def submit_many(self, commands: Sequence[Sequence[StoredEvent]]) -> list[Future[list[int]]]:
        """Queue several commands at once (they are recorded in this order, each on its own
        merits); one future per command."""
        submissions = [Submission(events) for events in commands]
        for submission in submissions:
            # Running from now on: a caller that gives up waiting cannot withdraw it.
            submission.answer.set_running_or_notify_cancel()
        with self._ready:
            if self._closed:
                raise RuntimeError("the event store's writer is closed")
            self._queue.extend(submissions)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="event-store-writer", daemon=True
                )
                self._thread.start()
            self._ready.notify()
        return [submission.answer for submission in submissions]

    def close(self, timeout_s: float = 10.0) -> None:
        """Record what is queued, then stop."""
        with self._ready:
            self._closed = True
            self._ready.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        while batch := self._next_batch():
            try:
                self._commit(batch)
            except BaseException as error:  # never leave a caller waiting
                log.exception("the event store's writer failed")
                _fail(batch, error)

    def _next_batch(self) -> list[Submission]:
        with self._ready:
            while not self._queue and not self._closed:
                self._ready.wait()
            if self.window_s and len(self._queue) < self.batch_size and not self._closed:
                until = time.monotonic() + self.window_s
                while len(self._queue) < self.batch_size and not self._closed:
                    remaining = until - time.monotonic()
                    if remaining <= 0:
                        break
                    self._ready.wait(remaining)
            count = min(self.batch_size, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _commit(self, batch: list[Submission]) -> None:
        events = [event for submission in batch for event in submission.events]
        try:
            positions = self.recorder.insert_events(events)
        except ISOLATED_ERRORS as error:
            if len(batch) == 1:
                batch[0].answer.set_exception(error)
                return
            metrics.WRITE_BATCH_SPLITS.inc()
            half = len(batch) // 2
            self._commit(batch[:half])
            self._commit(batch[half:])
            return
        except Exception as error:
            _fail(batch, error)
            return
        metrics.WRITE_BATCH_COMMANDS.observe(len(batch))
        given = list(positions or [])
        if len(given) != len(events):
            _fail(batch, RuntimeError(f"{len(given)} positions for {len(events)} events"))
            return
        start = 0
        for submission in batch:
            end = start + len(submission.events)
            submission.answer.set_result(given[start:end])
            start = end


def _fail(batch: Sequence[Submission], error: BaseException) -> None:
    for submission in batch:
        if not submission.answer.done():
            submission.answer.set_exception(error)
