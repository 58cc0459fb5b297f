"""The bulk runner: carries out bulk operations, one run at a time, inside every API process.

* **What it drives** — an operation the API has just recorded is handed over at once
  (:meth:`BulkRunner.submit`); besides, every ``FLOWLEDGER_BULK_SWEEP_INTERVAL`` seconds (and at
  start) it looks in ``bulk_operations`` for operations still RUNNING: that is how an operation
  whose API process was killed resumes, in the next one to start or in any other one running.
* **Once** — an operation is driven under a PostgreSQL advisory lock held on the runner's own
  connection; a killed process's connection closes and its locks go with it. Even two drivers
  at once (a lock lost) could not act twice on a run: each run's item has an id of its own, and
  the event store takes one (see :mod:`flowledger.domain.bulk`).
* **How** — each run is one command (:func:`~flowledger.commands.bulk.apply_bulk_item`) with
  the requester's actor, correlation id and trace, at most ``FLOWLEDGER_BULK_RATE`` a second;
  a bulk retry also waits for room under ``FLOWLEDGER_BULK_MAX_ACTIVE_RUNS`` (see
  :mod:`flowledger.bulk.pacing`). A run changed by someone else meanwhile is tried again, then
  recorded as failed; a stopped operation is noticed before the next run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from typing import Any, Final
from uuid import UUID

import psycopg

from flowledger.bulk import queries
from flowledger.bulk.pacing import Pacer, RetryRoom
from flowledger.bulk.settings import BulkSettings
from flowledger.commands import Outcome
from flowledger.commands.bulk import (
    ApplyBulkItem,
    CompleteBulkOperation,
    RecordItemFailure,
    apply_bulk_item,
    complete_bulk_operation,
    has_ended,
    operation_metadata,
    record_item_failure,
)
from flowledger.domain.backoff import Backoff
from flowledger.domain.bulk import BulkItem, BulkOperation
from flowledger.domain.errors import ConcurrentModification
from flowledger.eventlog.store import EventMetadata
from flowledger.observability.tracing import command_span
from flowledger.runtime.process import Runtime

log = logging.getLogger(__name__)

LOCK_CLASS: Final = 0x0B01
"""First key of the runner's advisory locks (two-key locks never meet the executor's
one-key run locks)."""
CONFLICT_TRIES: Final = 5
"""Times a run that keeps changing under a bulk operation is tried before it is recorded as
failed."""
FAILING: Final = Backoff(initial=0.5, maximum=30.0)
"""The wait before trying an operation again after it failed (the database is down...)."""


def lock_key(operation_id: UUID) -> int:
    """The second key of an operation's advisory lock: 32 bits of its id, signed."""
    return int.from_bytes(operation_id.bytes[:4], "big", signed=True)


class BulkRunner:
    """Drives this process's share of the bulk operations, in a thread of its own."""

    def __init__(self, runtime: Runtime, settings: BulkSettings | None = None) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.engine = runtime.engine
        self.settings = settings or BulkSettings.from_settings(runtime.settings)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._submitted: deque[UUID] = deque()
        self._failures = 0
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="bulk-runner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._close_lock_connection()

    def submit(self, operation_id: UUID) -> None:
        """Drive this operation now (it was just recorded here)."""
        self._submitted.append(operation_id)
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before reading what was submitted: a later submit wakes us
            try:
                for operation_id in self._candidates():
                    if self._stop.is_set():
                        break
                    self._drive_locked(operation_id)
                self._failures = 0
            except Exception as error:
                self._failures += 1
                self._close_lock_connection()
                delay = FAILING.delay(self._failures)
                log.warning("bulk runner failed (%s); trying again in %.1fs", error, delay)
                self._stop.wait(delay)
                continue
            self._wake.wait(self.settings.sweep_interval_s)

    def _candidates(self) -> list[UUID]:
        submitted = []
        while self._submitted:
            submitted.append(self._submitted.popleft())
        return list(dict.fromkeys([*submitted, *queries.running_operations(self.engine)]))

    # ------------------------------------------------------------------ driving

    def _drive_locked(self, operation_id: UUID) -> None:
        if not self._try_lock(operation_id):
            return  # another process drives it
        try:
            self.drive(operation_id)
        finally:
            self._unlock(operation_id)

    def drive(self, operation_id: UUID) -> None:
        """Apply the operation to each of its runs without an item yet, then complete it.
        Returns early when the operation ends meanwhile or the runner stops."""
        operation = self.store.find(BulkOperation, operation_id)
        if operation is None or not operation.is_running:
            return
        meta = operation_metadata(self.store, operation_id)
        settled = queries.settled_runs(self.engine, operation_id)
        pacer = Pacer(self.settings.rate)
        room = (
            RetryRoom(self.engine, self.settings.max_active_runs)
            if operation.action == "retry"
            else None
        )
        for run_id in operation.run_ids:
            if run_id in settled:
                continue
            if room is not None and not room.wait(self._stop):
                return
            if not pacer.wait(self._stop) or has_ended(self.store, operation_id):
                return
            outcome = self._apply(operation, run_id, meta)
            if room is not None and outcome.position is not None:
                room.issued(outcome.position)
        done = complete_bulk_operation(
            self.store, CompleteBulkOperation(operation_id=operation_id), meta
        )
        if done.position is not None:
            log.info("bulk operation %s completed", operation_id)

    def _apply(
        self, operation: BulkOperation, run_id: UUID, meta: EventMetadata
    ) -> Outcome[BulkItem]:
        command = ApplyBulkItem(
            operation_id=operation.id,
            action=operation.action,
            run_id=run_id,
            reason=operation.reason,
        )
        with command_span("apply_bulk_item", **{"flowledger.bulk_operation": str(operation.id)}):
            for _ in range(CONFLICT_TRIES):
                try:
                    return apply_bulk_item(self.store, command, meta)
                except ConcurrentModification:
                    continue
            failure = RecordItemFailure(
                operation_id=operation.id,
                run_id=run_id,
                reason=f"run {run_id} kept changing; tried {CONFLICT_TRIES} times",
            )
            return record_item_failure(self.store, failure, meta)

    # ------------------------------------------------------------------ locks

    def _try_lock(self, operation_id: UUID) -> bool:
        conn = self._lock_connection()
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, lock_key(operation_id))
        ).fetchone()
        return bool(row and row[0])

    def _unlock(self, operation_id: UUID) -> None:
        if self._lock_conn is None or self._lock_conn.closed:
            return
        try:
            self._lock_conn.execute(
                "SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, lock_key(operation_id))
            )
        except psycopg.Error:
            self._close_lock_connection()  # its locks went with it

    def _lock_connection(self) -> psycopg.Connection[Any]:
        if self._lock_conn is None or self._lock_conn.closed:
            self._lock_conn = psycopg.connect(
                self.store.database.libpq_url, autocommit=True, connect_timeout=5
            )
        return self._lock_conn

    def _close_lock_connection(self) -> None:
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                self._lock_conn.close()
        self._lock_conn = None
