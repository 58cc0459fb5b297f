"""Runs as users watch them: one row per run, per step, and per attempt of a step.

A batch is folded in memory: the rows its events change are read once (:meth:`prepare`: the
runs, the steps and attempts the events name, and every step of a run that a run-wide event
changes), each event changes its rows in place (one function per event type, in
:data:`RunsProjection.HANDLERS`; a new event type is one more function there), and the rows
are written back together (:class:`~flowledger.projections.bulk.RowSet`): however many events
a run had in the batch, its row is written once. ``run_counts`` (runs per workflow and status)
gets each run's move from the status it had before the batch to the one it has after.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

from psycopg import sql
from sqlalchemy import Connection

from flowledger.domain.plans import WorkflowPlan
from flowledger.domain.runs import Run
from flowledger.eventlog.store import metadata_of
from flowledger.projections.bulk import RowSet, driver, json_text
from flowledger.projections.projector import Applied, Projection
from flowledger.projections.tables import run_counts, run_step_attempts, run_steps, runs

Row = dict[str, Any]
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS: Final = timedelta(milliseconds=1)


def epoch_ms(moment: datetime) -> int:
    return (moment - EPOCH) // ONE_MS


def ms_since(started_at: datetime | None, now: datetime) -> int:
    """Milliseconds from ``started_at`` to ``now`` (0 when it never started)."""
    return 0 if started_at is None else epoch_ms(now) - epoch_ms(started_at)


class RunRows:
    """The rows one batch of run events reads and changes."""

    def __init__(self) -> None:
        self.runs = RowSet(runs, ("id",))
        self.steps = RowSet(run_steps, ("run_id", "step_id"))
        self.attempts = RowSet(run_step_attempts, ("run_id", "step_id", "attempt"))
        self.status_before: dict[Any, tuple[Any, str | None]] = {}
        """Each run's (workflow, status) before the batch; status None for runs it requested."""

    def clear(self) -> None:
        for rows in (self.runs, self.steps, self.attempts):
            rows.clear()
        self.status_before = {}

    def run(self, run_id: Any) -> Row | None:
        return self.runs.edit(run_id)

    def step(self, run_id: Any, step_id: str) -> Row | None:
        return self.steps.edit(run_id, step_id)

    def attempt(self, run_id: Any, step_id: str, number: int) -> Row | None:
        return self.attempts.edit(run_id, step_id, number)

    def steps_of(self, run_id: Any) -> list[Row]:
        """Every step of the run (all are held for the run-wide events that need them)."""
        return self.steps.group(run_id)

    def running_attempts(self, run_id: Any) -> list[Row]:
        """The run's attempts in flight (all are held for the run-wide events that need them)."""
        return self.attempts.group(run_id, outcome="running")

    def count_moves(self) -> Counter[tuple[Any, str]]:
        """Runs into and out of each (workflow, status) over the batch."""
        moves: Counter[tuple[Any, str]] = Counter()
        for run_id, (workflow_id, before) in self.status_before.items():
            row = self.runs.get(run_id)
            after = None if row is None else row["status"]
            if before == after:
                continue
            if before is not None:
                moves[(workflow_id, before)] -= 1
            if after is not None:
                moves[(workflow_id, after)] += 1
        return moves

    def write(self, conn: Connection) -> None:
        for rows in (self.runs, self.steps, self.attempts):
            rows.write(conn)
        _count(conn, self.count_moves())


Handler = Callable[[RunRows, Row, Any, datetime], None]


# ---------------------------------------------------------------------- one per event type
# Each changes the rows of one run (held in ``rows``) for one event; ``run`` is the run's row
# and ``at`` the event's time. Version, time and position of the run are set for every event.


def _started(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    run["status"] = "RUNNING"
    run["started_at"] = run["started_at"] or at


def _succeeded(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    _finish(run, at, status="SUCCEEDED", output=json_text(event.output), error=None)


def _failed(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    _close_steps(rows, run["id"], at)
    _finish(run, at, status="FAILED", error=event.error, failed_step=event.step_id)


def _cancelled(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    _close_steps(rows, run["id"], at)
    _finish(
        run,
        at,
        status="CANCELLED",
        error=event.reason,
        cancelled_at=at,
        cancelled_by=metadata_of(event).actor,
    )


def _retried(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    run.update(
        status="PENDING",
        retry_count=event.retry_number,
        error=None,
        failed_step=None,
        finished_at=None,
        duration_ms=None,
        cancelled_at=None,
        cancelled_by=None,
    )
    for step in rows.steps_of(run["id"]):
        if step["status"] != "SUCCEEDED":
            step.update(
                status="PENDING", error=None, finished_at=None, duration_ms=None, retry_at=None
            )


def _step_started(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    step_input = json_text(event.input)
    rows.attempts.add(
        {
            "run_id": run["id"],
            "step_id": event.step_id,
            "attempt": event.attempt,
            "outcome": "running",
            "input": step_input,
            "started_at": at,
        }
    )
    step = rows.step(run["id"], event.step_id)
    if step is not None:
        step.update(
            status="RUNNING",
            attempts=step["attempts"] + 1,
            input=step_input,
            task_id=None,
            retry_at=None,
            started_at=step["started_at"] or at,
        )


def _task_assigned(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    for row in _step_and_attempt(rows, run, event):
        row["task_id"] = event.task_id


def _attempt_failed(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    attempt = rows.attempt(run["id"], event.step_id, event.attempt)
    if attempt is not None:
        attempt.update(outcome="failed", error=event.error, finished_at=at)
    step = rows.step(run["id"], event.step_id)
    if step is not None:
        retry_in = event.retry_in_ms
        step.update(
            error=event.error,
            retry_at=None if retry_in is None else at + timedelta(milliseconds=retry_in),
        )


def _attempt_interrupted(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    attempt = rows.attempt(run["id"], event.step_id, event.attempt)
    if attempt is not None:
        attempt.update(outcome="interrupted", finished_at=at)


def _step_succeeded(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    output = json_text(event.output)
    attempt = rows.attempt(run["id"], event.step_id, event.attempt)
    if attempt is not None:
        attempt.update(outcome="succeeded", output=output, finished_at=at)
    step = rows.step(run["id"], event.step_id)
    if step is not None:
        _step_done(step, at, status="SUCCEEDED", output=output, error=None)


def _step_failed(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    step = rows.step(run["id"], event.step_id)
    if step is not None:
        _step_done(step, at, status="FAILED", error=event.error)


# ---------------------------------------------------------------------- shared by them


def _finish(run: Row, at: datetime, **values: Any) -> None:
    run.update(finished_at=at, duration_ms=ms_since(run["started_at"], at), **values)


def _step_done(step: Row, at: datetime, **values: Any) -> None:
    step.update(
        finished_at=at, retry_at=None, duration_ms=ms_since(step["started_at"], at), **values
    )


def _close_steps(rows: RunRows, run_id: Any, at: datetime) -> None:
    """A run that ends early: attempts in flight are cancelled, running steps cancelled and
    steps not started skipped."""
    for attempt in rows.running_attempts(run_id):
        attempt.update(outcome="cancelled", finished_at=at)
    for step in rows.steps_of(run_id):
        if step["status"] == "RUNNING":
            step.update(status="CANCELLED", retry_at=None, finished_at=at)
        elif step["status"] == "PENDING":
            step.update(status="SKIPPED", retry_at=None)


def _step_and_attempt(rows: RunRows, run: Row, event: Any) -> list[Row]:
    found = [
        rows.attempt(run["id"], event.step_id, event.attempt),
        rows.step(run["id"], event.step_id),
    ]
    return [row for row in found if row is not None]


class RunsProjection(Projection):
    name: ClassVar[str] = "runs"
    topic_prefixes = ("flowledger.domain.runs:",)
    tables = (runs, run_steps, run_step_attempts, run_counts)

    HANDLERS: ClassVar[Mapping[type, Handler]] = {
        Run.Started: _started,
        Run.StepStarted: _step_started,
        Run.StepTaskAssigned: _task_assigned,
        Run.StepAttemptFailed: _attempt_failed,
        Run.StepAttemptInterrupted: _attempt_interrupted,
        Run.StepSucceeded: _step_succeeded,
        Run.StepFailed: _step_failed,
        Run.Succeeded: _succeeded,
        Run.Failed: _failed,
        Run.Cancelled: _cancelled,
        Run.Retried: _retried,
    }
    """How each event (but ``Run.Requested``, which makes the rows) changes a run's rows."""
    RUN_WIDE: ClassVar[frozenset[type]] = frozenset({Run.Failed, Run.Cancelled, Run.Retried})
    """Events whose handler changes steps (or attempts) the event does not name: a batch with
    one of them reads every step of its run, and every attempt in flight."""

    def __init__(self) -> None:
        self.rows = RunRows()

    def start_batch(self) -> None:
        self.rows.clear()

    def prepare(self, conn: Connection, events: Sequence[Applied]) -> None:
        """Read the rows of runs requested before the batch that its events change."""
        requested: set[Any] = set()
        earlier: set[Any] = set()
        whole: set[Any] = set()
        steps: set[tuple[Any, str]] = set()
        attempts: set[tuple[Any, str, int]] = set()
        run_wide = self.RUN_WIDE
        for _, event in events:
            run_id = event.originator_id
            if type(event) is Run.Requested:
                requested.add(run_id)
                continue
            if run_id in requested:
                continue
            earlier.add(run_id)
            if type(event) in run_wide:
                whole.add(run_id)
            step_id = getattr(event, "step_id", None)
            if type(step_id) is str:
                steps.add((run_id, step_id))
                attempt = getattr(event, "attempt", None)
                if type(attempt) is int:
                    attempts.add((run_id, step_id, attempt))
        if not earlier:
            return
        self.rows.runs.load(conn, sql.SQL("id = ANY(%(ids)s)"), {"ids": list(earlier)})
        for run_id in earlier:
            row = self.rows.runs.get(run_id)
            if row is not None:
                self.rows.status_before[run_id] = (row["workflow_id"], row["status"])
        self.rows.steps.load(
            conn,
            sql.SQL(
                "run_id = ANY(%(whole)s) OR (run_id, step_id) IN "
                "(SELECT * FROM unnest(%(runs)s::uuid[], %(steps)s::varchar[]))"
            ),
            {"whole": list(whole), "runs": [r for r, _ in steps], "steps": [s for _, s in steps]},
        )
        self.rows.attempts.load(
            conn,
            sql.SQL(
                "(run_id = ANY(%(whole)s) AND outcome = 'running') OR (run_id, step_id, attempt) "
                "IN (SELECT * FROM unnest(%(runs)s::uuid[], %(steps)s::varchar[], "
                "%(numbers)s::int[]))"
            ),
            {
                "whole": list(whole),
                "runs": [r for r, _, _ in attempts],
                "steps": [s for _, s, _ in attempts],
                "numbers": [n for _, _, n in attempts],
            },
        )

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        if isinstance(event, Run.Requested):
            self._requested(event, position)
            return
        run = self.rows.run(event.originator_id)
        if run is None:  # a run this projection never saw requested: nothing to change
            return
        at = event.timestamp
        self.HANDLERS[type(event)](self.rows, run, event, at)
        run["version"] = event.originator_version
        run["updated_at"] = at
        run["position"] = position

    def finish_batch(self, conn: Connection) -> None:
        self.rows.write(conn)
        self.rows.clear()

    def _requested(self, event: Any, position: int) -> None:
        plan = WorkflowPlan.from_dict(event.plan)
        self.rows.runs.add(
            {
                "id": event.originator_id,
                "workflow_id": event.workflow_id,
                "workflow_name": event.workflow_name,
                "workflow_version": event.workflow_version,
                "status": "PENDING",
                "input_data": json_text(event.input_data),
                "variables": json_text(event.variables),
                "triggered_by": event.triggered_by,
                "idempotency_key": event.idempotency_key,
                "retry_count": 0,
                "step_count": len(plan.steps),
                "created_at": event.timestamp,
                "updated_at": event.timestamp,
                "version": event.originator_version,
                "position": position,
            }
        )
        self.rows.status_before[event.originator_id] = (event.workflow_id, None)
        for order, step in enumerate(plan.steps):
            self.rows.steps.add(
                {
                    "run_id": event.originator_id,
                    "step_id": step.step_id,
                    "step_order": order,
                    "agent_name": step.agent_name,
                    "depends_on": json_text(list(step.depends_on)),
                    "status": "PENDING",
                    "attempts": 0,
                }
            )


_COUNT: Final = (
    "INSERT INTO run_counts (workflow_id, status, runs) "
    "SELECT * FROM unnest(%s::uuid[], %s::varchar[], %s::bigint[]) "
    "ON CONFLICT (workflow_id, status) DO UPDATE SET runs = run_counts.runs + excluded.runs"
)
_FORGET_ZEROS: Final = (
    "DELETE FROM run_counts WHERE runs = 0 AND (workflow_id, status) IN "
    "(SELECT * FROM unnest(%s::uuid[], %s::varchar[]))"
)


def _count(conn: Connection, moves: Counter[tuple[Any, str]]) -> None:
    """Add the batch's moves to ``run_counts``, whose rows are the (workflow, status) pairs
    with runs (a count that reaches 0 is deleted, so the table is the same however the events
    were batched). Plain SQL: a rebuild's search path points it at the fresh tables."""
    changes = sorted(((w, s, n) for (w, s), n in moves.items() if n), key=str)
    if not changes:
        return
    workflows, statuses, counts = (list(column) for column in zip(*changes, strict=True))
    with driver(conn).cursor() as cursor:
        cursor.execute(_COUNT, (workflows, statuses, counts))
        if any(n < 0 for n in counts):
            cursor.execute(_FORGET_ZEROS, (workflows, statuses))
