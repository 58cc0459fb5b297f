"""A bulk operation survives kill -9 of the API process that carries it out: what it did up to
the kill is exactly what its items say (each run's command and its item are one append), and
the next API process to start completes it without touching any run twice."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from flowledger.bulk.runner import BulkRunner
from flowledger.bulk.settings import BulkSettings
from flowledger.domain.bulk import BulkItem, bulk_item_id
from flowledger.domain.runs import Run
from flowledger.eventlog.store import EventMetadata
from flowledger.projections.tables import bulk_operation_items, bulk_operations, runs
from flowledger.runtime.process import Runtime
from flowledger.runtime.workers import InProcessWorkers
from tests.support.http import ADMIN_API_KEY
from tests.support.polling import eventually
from tests.support.ports import free_port
from tests.support.runs import run_in_state
from tests.support.server import serve_process

pytestmark = pytest.mark.integration
RUNS = 150


@pytest.fixture
def projections(runtime: Runtime) -> Iterator[InProcessWorkers]:
    workers = InProcessWorkers(runtime, ("projections",))
    workers.start()
    yield workers
    workers.stop()
    assert workers.failures == []


def serve(runtime: Runtime, port: int, rate: int) -> subprocess.Popen[bytes]:
    return serve_process(
        runtime, port, FLOWLEDGER_BULK_RATE=str(rate), FLOWLEDGER_BULK_SWEEP_INTERVAL="0.5"
    )


def row(runtime: Runtime, operation_id: uuid.UUID) -> Any:
    with runtime.engine.connect() as conn:
        return conn.execute(
            select(bulk_operations).where(bulk_operations.c.id == operation_id)
        ).one_or_none()


def items_done(runtime: Runtime, operation_id: uuid.UUID) -> int:
    with runtime.engine.connect() as conn:
        found = conn.execute(
            select(bulk_operation_items.c.run_id).where(
                bulk_operation_items.c.operation_id == operation_id,
                bulk_operation_items.c.outcome == "done",
            )
        )
        return len(found.all())


def test_kill_9_of_the_api_mid_operation_leaves_exact_progress_and_a_restart_completes_it(
    runtime: Runtime, projections: InProcessWorkers
) -> None:
    workflow = uuid.uuid4()
    run_ids = []
    for _ in range(RUNS):
        run = run_in_state("RUNNING", workflow_id=workflow)
        runtime.store.record(run, metadata=EventMetadata.system("seeder"))
        run_ids.append(run.id)

    def projected() -> int:
        with runtime.engine.connect() as conn:
            return len(conn.execute(select(runs.c.id).where(runs.c.workflow_id == workflow)).all())

    eventually(projected, lambda n: n == RUNS, what="the runs in the runs list")

    port = free_port()
    first = serve(runtime, port, rate=20)
    try:
        accepted = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/runs/bulk/cancel",
            json={"workflow_id": str(workflow)},
            headers={"X-API-Key": ADMIN_API_KEY},
            timeout=30,
        )
        assert accepted.status_code == 202, accepted.text
        operation_id = uuid.UUID(accepted.json()["id"])
        eventually(
            lambda: items_done(runtime, operation_id),
            lambda done: done >= 20,
            what="the operation to be well under way",
        )
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()

    # Exactly what was done: a run is cancelled if and only if it has its item.
    cancelled = {r for r in run_ids if runtime.store.get(Run, r).status == "CANCELLED"}
    recorded = {r for r in run_ids if runtime.store.find(BulkItem, bulk_item_id(operation_id, r))}
    assert cancelled == recorded
    assert 20 <= len(cancelled) < RUNS, "killed in the middle"
    reported = eventually(
        lambda: row(runtime, operation_id),
        lambda found: found is not None and found.done == len(cancelled),
        what="the operation's progress to show what was done",
    )
    assert (reported.status, reported.skipped, reported.failed) == ("RUNNING", 0, 0)

    # The next API process starts its bulk runner (here in this process: starting a second
    # server would only add its start-up time) and finds the operation unfinished.
    restarted = BulkRunner(runtime, BulkSettings(rate=1000, sweep_interval_s=0.5))
    restarted.start()
    try:
        completed = eventually(
            lambda: row(runtime, operation_id),
            lambda found: found.status == "COMPLETED",
            what="the next API process to complete the operation",
            timeout_s=60,
        )
    finally:
        restarted.stop()
    assert (completed.matched, completed.done, completed.skipped, completed.failed) == (
        RUNS,
        RUNS,
        0,
        0,
    )
    for run_id in run_ids:
        events = list(runtime.store.events.get(run_id))
        assert [type(e).__qualname__ for e in events].count("Run.Cancelled") == 1
        assert runtime.store.get(BulkItem, bulk_item_id(operation_id, run_id)).outcome == "done"
