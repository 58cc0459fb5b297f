"""The runs projection carries the rows of runs in progress from one batch to the next
(``projections/run_rows.py``): which runs, how many rows, and when they are dropped. In memory:
the rows are added as a batch adds them; the tables are tested in
``tests/integration/test_run_projection_batches.py``."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from flowledger.projections import run_rows
from flowledger.projections.run_rows import RunRows
from flowledger.projections.runs import RunsProjection

WORKFLOW = uuid4()


def request(rows: RunRows, steps: int = 2, status: str = "RUNNING") -> UUID:
    """A run the batch requested (all its rows held), with ``steps`` step rows."""
    run_id = uuid4()
    rows.runs.add({"id": run_id, "workflow_id": WORKFLOW, "status": status})
    for n in range(steps):
        rows.steps.add({"run_id": run_id, "step_id": f"s{n}", "status": "PENDING"})
    rows.status_before[run_id] = (WORKFLOW, None)
    return run_id


def held(rows: RunRows, run_id: UUID) -> bool:
    return rows.runs.get(run_id) is not None


def test_runs_in_progress_are_carried_and_finished_ones_are_not() -> None:
    rows = RunRows()
    running, finished = request(rows), request(rows, status="SUCCEEDED")
    rows.carry()
    assert held(rows, running)
    assert [s["step_id"] for s in rows.steps_of(running)] == ["s0", "s1"]
    assert not held(rows, finished)
    assert rows.steps_of(finished) == []


def test_a_run_read_from_the_tables_is_not_carried() -> None:
    """Only some of its rows were read: the next batch could need others."""
    rows = RunRows()
    run_id = uuid4()
    rows.runs.add({"id": run_id, "workflow_id": WORKFLOW, "status": "RUNNING"})
    rows.status_before[run_id] = (WORKFLOW, "RUNNING")  # it was there before the batch
    rows.carry()
    assert not held(rows, run_id)


def test_the_oldest_runs_go_when_the_rows_exceed_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_rows, "CARRIED_ROWS", 7)
    rows = RunRows()
    oldest = request(rows, steps=2)  # three rows each
    rows.carry()
    middle = request(rows, steps=2)
    rows.carry()
    newest = request(rows, steps=2)
    rows.carry()
    assert [held(rows, r) for r in (oldest, middle, newest)] == [False, True, True]


def test_the_oldest_runs_go_beyond_the_number_of_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_rows, "CARRIED_RUNS", 2)
    rows = RunRows()
    first = request(rows)
    rows.carry()
    second, third = request(rows), request(rows)
    rows.carry()
    assert [held(rows, r) for r in (first, second, third)] == [False, True, True]


def carried_projection() -> tuple[RunsProjection, UUID]:
    projection = RunsProjection()
    projection.resume(0)
    run_id = request(projection.rows)
    projection.rows.carry()
    projection.written(10)
    return projection, run_id


def test_carried_rows_are_kept_when_the_batch_continues_where_they_were_written() -> None:
    projection, run_id = carried_projection()
    projection.resume(10)
    assert held(projection.rows, run_id)


def test_carried_rows_survive_a_batch_that_only_moved_the_position() -> None:
    projection, run_id = carried_projection()
    projection.written(15, since=10)  # a batch without run events
    projection.resume(15)
    assert held(projection.rows, run_id)


def test_carried_rows_go_when_another_copy_went_on() -> None:
    projection, run_id = carried_projection()
    projection.resume(12)
    assert not held(projection.rows, run_id)


def test_carried_rows_go_when_the_transaction_that_wrote_them_failed() -> None:
    projection, run_id = carried_projection()
    projection.abandoned()
    projection.resume(10)  # the same position: it was never committed
    assert not held(projection.rows, run_id)


def test_carried_rows_go_when_a_position_is_moved_from_another_one() -> None:
    projection, run_id = carried_projection()
    projection.written(15, since=12)
    projection.resume(15)
    assert not held(projection.rows, run_id)
