"""Group commit: one writer per process records the decided events of many commands in one
transaction of the event store (ADR 0014).

Callers decide concurrently (load, call a domain method) and hand their stored events to the
writer; the writer takes what has queued — up to ``batch_size`` commands, waiting at most
``window_s`` for more — and records it as the library's own insert does (the append lock,
``NOTIFY``, one ``INSERT``, one commit), so positions still follow commit order. The append
lock is the recorder's ``lock_table_statements``: the event store replaces the library's table
lock with an advisory lock that VACUUM does not block (ADR 0023,
:func:`~flowledger.eventlog.store.append_lock_statements`). Each caller is answered once its
batch committed, with its own events' positions.

A batch that violates a unique key (a version conflict, a name already claimed) is split in
halves and each half recorded again, in order, until the command at fault is alone: it alone
fails, the others commit. Any other failure (the database is unreachable) fails the whole batch;
nothing of it was recorded.

A command may say which aggregate versions its decision read (``reads``, see
:meth:`EventStore.decide`): the writer checks them under the append lock, with one query for
the whole batch sent in the INSERT's round trip, against the versions stored (and against what
earlier commands of the same batch write). A command that read something older is answered
:class:`StaleRead` and records nothing (the transaction is rolled back and the batch recorded
again without it); its caller decides again on fresh state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

from eventsourcing.persistence import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg import Connection, Cursor, Rollback
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from flowledger.observability import metrics
from flowledger.runtime.database import composed

log = logging.getLogger(__name__)

ISOLATED_ERRORS: Final = (IntegrityError, DataError)
"""Failures that one command's events can cause: split the batch to find it."""


Reads = Mapping[UUID, int]
"""The version of each aggregate a decision read (0: it read that there was none)."""


class StaleRead(Exception):
    """The command decided on aggregates that have changed since; it recorded nothing."""

    def __init__(self, aggregate_ids: Sequence[UUID]) -> None:
        super().__init__(f"decided on an older version of {len(aggregate_ids)} aggregate(s)")
        self.aggregate_ids = list(aggregate_ids)


@dataclass
class Submission:
    """One command's events, what its decision read, and where its caller waits for the
    positions of its events."""

    events: Sequence[StoredEvent]
    reads: Reads | None = None
    answer: Future[list[int]] = field(default_factory=Future)
    stale: list[UUID] = field(default_factory=list)
    """What it read that changed since (set when the batch is checked)."""


class Writer:
    """The process's group-commit writer over ``recorder`` (a thread, started on first use)."""

    def __init__(
        self, recorder: PostgresApplicationRecorder, *, batch_size: int = 64, window_s: float = 0.0
    ) -> None:
        self.recorder = recorder
        self._versions = composed(
            SQL(
                "SELECT r.id, (SELECT max(e.originator_version) FROM {schema}.{table} e "
                "WHERE e.originator_id = r.id) FROM unnest(%s::uuid[]) AS r(id)"
            ).format(
                schema=Identifier(recorder.datastore.schema),
                table=Identifier(recorder.events_table_name),
            )
        )
        self._insert = composed(
            SQL(
                "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[]) "
                "RETURNING notification_id"
            ).format(
                schema=Identifier(recorder.datastore.schema),
                table=Identifier(recorder.events_table_name),
                id_type=Identifier(recorder.datastore.originator_id_type),
            )
        )
        """The library's INSERT (same columns, same order, positions returned), with a binary
        array per column instead of one array of its composite type: psycopg dumps a composite
        as text in Python, which cost a quarter of a busy writer's CPU."""
        self._locks = [composed(lock) for lock in recorder.lock_table_statements]
        self._notify = composed(SQL("NOTIFY {0}").format(Identifier(recorder.channel_name)))
        """The append lock and NOTIFY (the library's ``_lock_table``, ``_notify_channel``). All
        statements are composed once into the bytes sent: psycopg composes a ``Composed`` again
        on every execute."""
        self.batch_size = batch_size
        self.window_s = window_s
        self._queue: deque[Submission] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(
        self, events: Sequence[StoredEvent], reads: Reads | None = None
    ) -> Future[list[int]]:
        """Queue one command's events; the future answers their positions once committed."""
        [submission] = self.submit_many([Submission(events, reads)])
        return submission

    def submit_many(self, submissions: Sequence[Submission]) -> list[Future[list[int]]]:
        """Queue several commands at once (they are recorded in this order, each on its own
        merits); one future per command."""
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
        """Record ``batch`` in one transaction; split it if one of its commands conflicts."""
        if not batch:
            return
        try:
            current, positions = self._transaction(batch)
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
        answered = 0
        for submission in current:
            taken = len(submission.events)
            submission.answer.set_result(positions[answered : answered + taken])
            answered += taken
        for submission in batch:
            if not submission.answer.done():
                submission.answer.set_exception(StaleRead(submission.stale))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _transaction(self, batch: list[Submission]) -> tuple[list[Submission], list[int]]:
        """The library's insert (``PostgresApplicationRecorder.insert_events``: lock the
        table, NOTIFY, one INSERT, commit, in pipeline mode), with the batch's reads checked
        under the lock. The submissions recorded, and their positions.

        The reads are checked in the same round trip as the INSERT: the versions are selected
        before it (so they do not see the batch's own events) and looked at once the pipeline
        has synced. Nothing can change them while the lock is held, so when they are all
        current the transaction commits as it is; when some are not, it is rolled back and
        the batch recorded again without their submissions (rare: a second round trip)."""
        while True:
            current, positions = self._attempt(batch)
            if len(current) == len(batch) or not current:
                return current, positions
            batch = current

    def _attempt(self, batch: list[Submission]) -> tuple[list[Submission], list[int]]:
        recorder = self.recorder
        failure: Exception | None = None
        positions: list[int] = []
        current = batch
        events = [event for submission in batch for event in submission.events]
        with recorder.datastore.get_connection() as conn:
            with conn.pipeline() as pipeline, conn.transaction(), conn.cursor() as cursor:
                for lock in self._locks:  # held until the commit
                    cursor.execute(lock, prepare=True)
                versions = self._send_versions(conn, batch)
                try:
                    # What PostgresApplicationRecorder._insert_stored_events does after
                    # taking the lock: NOTIFY, then one INSERT (see ``_insert``).
                    cursor.execute(self._notify)
                    cursor.execute(
                        self._insert,
                        (
                            [e.originator_id for e in events],
                            [e.originator_version for e in events],
                            [e.topic for e in events],
                            [e.state for e in events],
                        ),
                    )
                    pipeline.sync()  # a unique violation raises here, not at commit
                    current = self._current(batch, versions)
                    if len(current) == len(batch):
                        positions = list(
                            recorder._fetch_ids_after_insert_events(cursor, events) or []
                        )
                except Exception as error:
                    failure = error  # raised once the pipeline is closed, as the library does
                if failure is None and len(current) < len(batch):
                    raise Rollback()  # recorded again without the stale ones
            if failure is not None:
                raise failure
        if len(current) == len(batch) and len(positions) != len(events):
            raise RuntimeError(f"{len(positions)} positions for {len(events)} events")
        return current, positions

    def changed(self, reads: Reads) -> list[UUID]:
        """Which of ``reads`` are no longer the stored versions (one query, no lock)."""
        if not reads:
            return []
        with self.recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
            stored = self._stored_versions(cursor, list(reads))
        return [
            aggregate_id for aggregate_id, v in reads.items() if stored.get(aggregate_id, 0) != v
        ]

    def _stored_versions(
        self, cursor: Cursor[DictRow], aggregate_ids: list[UUID]
    ) -> dict[UUID, int]:
        cursor.execute(self._versions, (aggregate_ids,), prepare=True)
        return {row["id"]: row["max"] for row in cursor.fetchall() if row["max"] is not None}

    def _send_versions(
        self, conn: Connection[DictRow], batch: list[Submission]
    ) -> Cursor[DictRow] | None:
        """Send the query of the stored versions of what the batch read (None: it read
        nothing), on a cursor of its own; its rows are read once the pipeline syncs."""
        read = {aggregate_id for s in batch if s.reads for aggregate_id in s.reads}
        if not read:
            return None
        cursor = conn.cursor()
        cursor.execute(self._versions, (list(read),), prepare=True)
        return cursor

    def _current(
        self, batch: list[Submission], versions: Cursor[DictRow] | None
    ) -> list[Submission]:
        """The submissions whose reads are still current (read under the append lock, so
        nothing can change them before this transaction commits); the others get ``stale``."""
        if versions is None:
            return batch
        stored = {row["id"]: row["max"] for row in versions.fetchall() if row["max"] is not None}
        versions.close()
        current: list[Submission] = []
        written: set[UUID] = set()
        for submission in batch:
            submission.stale = [
                aggregate_id
                for aggregate_id, version in (submission.reads or {}).items()
                if stored.get(aggregate_id, 0) != version or aggregate_id in written
            ]
            if not submission.stale:
                current.append(submission)
                written.update(UUID(str(event.originator_id)) for event in submission.events)
        return current


def _fail(batch: Sequence[Submission], error: BaseException) -> None:
    for submission in batch:
        if not submission.answer.done():
            submission.answer.set_exception(error)
