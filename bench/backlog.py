"""A large backlog of realistic events, written in bulk, and the baseline of reading it back.

The template comes from running real commands once through the command layer (an agent, a
workflow, and runs driven step by step as the executor does, one append per step event). Its
stored rows are then copied with ``COPY`` under fresh run ids, many runs interleaved so the log
looks like concurrent traffic, each run's versions in order. The copies keep the state bytes as
they are: ``eventsourcing``'s mapper stores the originator id and version in their own columns,
not in the state (:func:`template` checks this), so a copy under another id decodes as an event
of that other run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast
from uuid import UUID

from bench.catalogue import echo_chain
from bench.system import System
from flowledger.commands.runs import RequestRun, request_run
from flowledger.domain.runs import Run
from flowledger.eventlog.store import EVENTS_TABLE, EventMetadata, EventStore
from flowledger.runtime.database import Database

STEPS = 3
INTERLEAVED_RUNS = 200
"""Runs whose events are interleaved in the copied log, as concurrent runs would be."""


@dataclass(frozen=True)
class StoredRow:
    originator_version: int
    topic: str
    state: bytes


def _drive(store: EventStore, run_id: UUID, meta: EventMetadata, fail_last: bool) -> None:
    """What the executor appends for a run of ``STEPS`` steps, one event per append."""
    run = store.get(Run, run_id)
    run.start()
    store.record(run, metadata=meta)
    for n in range(1, STEPS + 1):
        step_id = f"s{n}"
        attempt = run.start_step(step_id, {"text": "hello"})
        store.record(run, metadata=meta)
        run.assign_task(step_id, attempt, f"task-{uuid.uuid4()}")
        store.record(run, metadata=meta)
        if fail_last and n == STEPS:
            run.fail_attempt(step_id, attempt, "agent said no", retry_in_ms=None)
            store.record(run, metadata=meta)
            run.fail("agent said no", step_id)
            store.record(run, metadata=meta)
            return
        run.succeed_step(step_id, attempt, {"text": f"hello {n}"})
        store.record(run, metadata=meta)
    run.succeed()
    store.record(run, metadata=meta)


def template(system: System, runs: int = 4) -> list[list[StoredRow]]:
    """Real commands run once on ``system``'s database; the stored rows of each run."""
    meta = EventMetadata.system("bench")
    with system.runtime() as runtime:
        store = runtime.store
        workflow_id = echo_chain(store, "bench-backlog", STEPS)
        run_ids = []
        for n in range(runs):
            requested = request_run(
                store, RequestRun(workflow_id=workflow_id, input_data={"text": "hello"}), meta
            )
            run_ids.append(requested.aggregate.id)
            _drive(store, requested.aggregate.id, meta, fail_last=n == runs - 1)
    with system.database.connect() as conn:
        rows = conn.execute(
            f"SELECT originator_id, originator_version, topic, state FROM {EVENTS_TABLE} "
            "WHERE originator_id = ANY(%s) ORDER BY notification_id",
            (run_ids,),
        ).fetchall()
    by_run: dict[UUID, list[StoredRow]] = {run_id: [] for run_id in run_ids}
    for originator_id, version, topic, state in rows:
        run_id = UUID(str(originator_id))
        stored = bytes(cast(bytes, state))
        if run_id.bytes in stored or str(run_id).encode() in stored:
            raise RuntimeError("the run id is inside the stored state: copies must re-encode")
        by_run[run_id].append(StoredRow(int(str(version)), str(topic), stored))
    return list(by_run.values())


def _copies(runs: list[list[StoredRow]], events: int) -> Iterator[tuple[UUID, int, str, bytes]]:
    """Rows for ``events`` events: copies of the template runs under fresh ids, interleaved."""
    written = 0
    n = 0
    while written < events:
        group = [(uuid.uuid4(), runs[(n + k) % len(runs)]) for k in range(INTERLEAVED_RUNS)]
        n += INTERLEAVED_RUNS
        longest = max(len(rows) for _, rows in group)
        for index in range(longest):
            for run_id, rows in group:
                if index < len(rows) and written < events:
                    row = rows[index]
                    yield run_id, row.originator_version, row.topic, row.state
                    written += 1


def copy_backlog(database: Database, runs: list[list[StoredRow]], events: int) -> float:
    """Append ``events`` copied events with COPY (one transaction); the seconds it took."""
    started = time.perf_counter()
    with database.connect(autocommit=False) as conn:
        with (
            conn.cursor() as cursor,
            cursor.copy(
                f"COPY {EVENTS_TABLE} (originator_id, originator_version, topic, state) FROM STDIN"
            ) as copy,
        ):
            for row in _copies(runs, events):
                copy.write_row(row)
        conn.commit()
    with database.connect(autocommit=True) as conn:
        conn.execute(f"ANALYZE {EVENTS_TABLE}")
    return time.perf_counter() - started


def stream_rate(database: Database) -> tuple[float, int]:
    """Rows/s of a plain ``SELECT`` of every column of the event table, in position order,
    streamed through a server-side cursor; and the number of rows read."""
    count = 0
    started = time.perf_counter()
    with database.connect(autocommit=False) as conn, conn.cursor(name="bench_stream") as cursor:
        cursor.itersize = 5_000
        cursor.execute(
            "SELECT originator_id, originator_version, topic, state, notification_id "
            f"FROM {EVENTS_TABLE} ORDER BY notification_id"
        )
        for _ in cursor:
            count += 1
    return count / (time.perf_counter() - started), count
