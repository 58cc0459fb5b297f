"""Runs as users watch them: one row per run, per step (and step instance), and per attempt of a
step, with the counts and analytics kept beside them.

A batch is folded in memory: the rows its events change are read once (:meth:`prepare`: the
runs, the steps and attempts the events name, every step and attempt in flight of a run that a
run-wide event changes, and the body steps instances are made from), each event changes its
rows in place (one function per event type, in :data:`RunsProjection.HANDLERS`, the
control-flow ones from ``run_control.py``; a new event type is one more function there), and
the rows are written back together (:class:`~flowledger.projections.rowsets.RowSet`): however
many events a run had in the batch, its row is written once. ``run_counts`` (runs per workflow
and status) gets each run's move from the status it had before the batch to the one it has
after; the analytics rollups (``run_analytics.py``) lose the contribution of the runs the batch
changes before the rows are written and get it back after.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final

from sqlalchemy import Connection

from flowledger.domain.plans import WorkflowPlan
from flowledger.domain.run_state import split_key
from flowledger.domain.runs import Run
from flowledger.eventlog.store import metadata_of
from flowledger.projections import run_analytics, run_control
from flowledger.projections.projector import Applied, Projection
from flowledger.projections.rowsets import driver, json_text
from flowledger.projections.run_rows import (
    Handler,
    Row,
    RunRows,
    body_step_rows,
    json_value,
    ms_since,
    step_done,
)
from flowledger.projections.tables import (
    ANALYTICS_TABLES,
    run_body_steps,
    run_counts,
    run_step_attempts,
    run_steps,
    runs,
)

# ---------------------------------------------------------------------- one per event type
# Each changes the rows of one run (held in ``rows``) for one event; ``run`` is the run's row
# and ``at`` the event's time. Version, time and position of the run are set for every event.


def _started(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    run["status"] = "RUNNING"
    run["started_at"] = run["started_at"] or at


def _succeeded(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    _finish(run, at, status="SUCCEEDED", output=json_value(event.output), error=None)


def _failed(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    run_control.close_steps(rows, run["id"], at)
    _finish(run, at, status="FAILED", error=event.error, failed_step=event.step_id)


def _cancelled(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    run_control.close_steps(rows, run["id"], at)
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
    run_control.retried(rows, run["id"], event)


def _step_started(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    step = rows.instance(run["id"], event.step_id)
    step_input = json_value(event.input)
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
    output = json_value(event.output)
    attempt = rows.attempt(run["id"], event.step_id, event.attempt)
    if attempt is not None:
        attempt.update(outcome="succeeded", output=output, finished_at=at)
    step = rows.step(run["id"], event.step_id)
    if step is not None:
        step_done(step, at, status="SUCCEEDED", output=output, error=None)


def _step_failed(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    step = rows.instance(run["id"], event.step_id)
    if step is not None:
        step_done(step, at, status="FAILED", error=event.error)


def _finish(run: Row, at: datetime, **values: Any) -> None:
    run.update(finished_at=at, duration_ms=ms_since(run["started_at"], at), **values)


def _step_and_attempt(rows: RunRows, run: Row, event: Any) -> list[Row]:
    found = [
        rows.attempt(run["id"], event.step_id, event.attempt),
        rows.step(run["id"], event.step_id),
    ]
    return [row for row in found if row is not None]


class RunsProjection(Projection):
    name: ClassVar[str] = "runs"
    topic_prefixes = ("flowledger.domain.runs:",)
    tables = (runs, run_steps, run_step_attempts, run_counts, run_body_steps, *ANALYTICS_TABLES)
    settings: ClassVar[Mapping[str, str]] = {"enable_seqscan": "off"}
    """A batch's statements read and delete the rows of the runs it names, by key, at most a
    batch's worth in tables of every run there is: by index, whatever the planner believes of
    the tables' sizes. Filled faster than autovacuum analyzes them (a catch-up, a rebuild's
    fresh tables), tables have no statistics, and the planner read them whole for every batch,
    a cost that grew with the table: by 1M events, most of a catch-up's time. (A statement with
    no index to use still reads its table whole; the other projections, whose small batches
    share the transaction, also find their rows by key.)"""

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
        **run_control.HANDLERS,
    }
    """How each event (but ``Run.Requested``, which makes the rows) changes a run's rows."""
    RUN_WIDE: ClassVar[frozenset[type]] = frozenset({Run.Failed, Run.Cancelled, Run.Retried})
    """Events whose handler changes steps (or attempts) the event does not name: a batch with
    one of them reads every step of its run, and every attempt in flight."""

    def __init__(self) -> None:
        self.rows = RunRows()
        self._changed: set[Any] = set()
        """Runs requested before the batch that it changes: their analytics are taken out
        before the rows are written."""
        self._carried_at: int | None = None
        """The position written with the rows carried (see ``run_rows.py``); None when none
        are, or a batch began and has not written its rows yet."""
        self._plans = _PlanRows()

    def start_batch(self) -> None:
        self._changed = set()

    def resume(self, position: int) -> None:
        """The batch continues the log after ``position``: the carried rows are what the
        tables hold when the last batch's transaction wrote that position and committed (no
        other copy of the projection, no rollback, no reset since); otherwise they go."""
        if position != self._carried_at:
            self.rows.clear()
        self._carried_at = None

    def written(self, position: int, since: int | None = None) -> None:
        if since is None or since == self._carried_at:
            self._carried_at = position

    def abandoned(self) -> None:
        self._carried_at = None

    def prepare(self, conn: Connection, events: Sequence[Applied]) -> None:
        """Read the rows of runs requested before the batch that its events change."""
        requested: set[Any] = set()
        earlier: set[Any] = set()
        whole: set[Any] = set()
        steps: set[tuple[Any, str]] = set()
        attempts: set[tuple[Any, str, int]] = set()
        bodies: set[tuple[Any, str]] = set()
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
            keys = _step_keys(event)
            for key in keys:
                steps.add((run_id, key))
                scope, plan_id = split_key(key)
                if scope:
                    bodies.add((run_id, plan_id))
            attempt = getattr(event, "attempt", None)
            if type(attempt) is int and keys:
                attempts.add((run_id, keys[0], attempt))
        self.rows.load(conn, earlier, whole, steps, attempts, bodies)
        self._changed = set(self.rows.status_before)

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
        """Write the rows, with the analytics taken out before and put back after; when the
        rows are few (a live batch), every statement goes in one round trip: none of them
        returns what another needs."""
        rows = self.rows
        with driver(conn).pipeline() if rows.few else nullcontext():
            if not self.bulk:
                run_analytics.take_out(conn, self._changed)
            rows.write(conn)
            _count(conn, rows.count_moves())
            if not self.bulk:
                run_analytics.put_back(conn, rows.status_before.keys())
        rows.carry()
        self._changed = set()

    def replayed(self, conn: Connection) -> None:
        """The analytics of a bulk replay are counted once, from every run, at its end (each
        batch taking out and putting back its runs' contributions costs more in all)."""
        run_analytics.recount_all(conn)

    def _requested(self, event: Any, position: int) -> None:
        run_id = event.originator_id
        steps, body_steps = self._plans.rows(event)
        self.rows.runs.add(
            {
                "id": run_id,
                "workflow_id": event.workflow_id,
                "workflow_name": event.workflow_name,
                "workflow_version": event.workflow_version,
                "status": "PENDING",
                "input_data": json_value(event.input_data),
                "variables": json_value(event.variables),
                "triggered_by": event.triggered_by,
                "idempotency_key": event.idempotency_key,
                "retry_count": 0,
                "step_count": len(steps),
                "created_at": event.timestamp,
                "updated_at": event.timestamp,
                "version": event.originator_version,
                "position": position,
                "parent_run_id": event.parent_run_id,
                "parent_step_id": event.parent_step_id,
            }
        )
        self.rows.status_before[run_id] = (event.workflow_id, None)
        for step in steps:
            self.rows.steps.add({"run_id": run_id, **step})
        for step in body_steps:
            self.rows.body_steps.add({"run_id": run_id, **step})


class _PlanRows:
    """The step rows a run's plan makes (less the run's id), made once per workflow version:
    runs of one version carry the same plan, and comparing it with the one the rows were made
    from costs a fraction of parsing it again. A plan that differs (the same version with
    another plan, which no command records) is parsed as it is."""

    def __init__(self) -> None:
        self._made: dict[tuple[Any, Any], tuple[Any, list[Row], list[Row]]] = {}

    def rows(self, event: Any) -> tuple[list[Row], list[Row]]:
        """The ``run_steps`` and ``run_body_steps`` rows of the plan of ``event`` (a
        ``Run.Requested``), without ``run_id``; fresh dictionaries are the caller's to make."""
        key = (event.workflow_id, event.workflow_version)
        made = self._made.get(key)
        if made is not None and made[0] == event.plan:
            return made[1], made[2]
        plan = WorkflowPlan.from_dict(event.plan)
        steps: list[Row] = [
            {
                "step_id": step.step_id,
                "step_order": order,
                "agent_name": step.agent_name,
                "depends_on": json_text(list(step.depends_on)),
                "status": "PENDING",
                "attempts": 0,
                "kind": step.kind,
            }
            for order, step in enumerate(plan.steps)
        ]
        body_steps = body_step_rows(None, plan)
        for row in body_steps:
            del row["run_id"]
        if len(self._made) >= MAX_PLANS:
            self._made.clear()
        self._made[key] = (event.plan, steps, body_steps)
        return steps, body_steps


MAX_PLANS: Final = 1024
"""The most workflow versions whose step rows :class:`_PlanRows` keeps (then it starts over)."""


def _step_keys(event: Any) -> list[str]:
    """The step instances an event names (the first one is its attempts' step)."""
    step_id = getattr(event, "step_id", None)
    if type(step_id) is str:
        return [step_id]
    return list(getattr(event, "step_ids", None) or [])


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
