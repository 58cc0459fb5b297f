"""Runs as users watch them: one row per run, per step, and per attempt of a step."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import BigInteger, Connection, bindparam, case, func, insert, text, update
from sqlalchemy.dialects.postgresql import insert as upsert

from flowledger.domain.plans import WorkflowPlan
from flowledger.domain.runs import Run
from flowledger.eventlog.store import metadata_of
from flowledger.projections.projector import Projection, insert_rows
from flowledger.projections.run_analytics import RunAnalytics
from flowledger.projections.run_control import (
    CLOSED_STATUS,
    ControlFlowHandlers,
    body_step_rows,
    new_instance,
    retried,
)
from flowledger.projections.tables import (
    ANALYTICS_TABLES,
    run_body_steps,
    run_counts,
    run_step_attempts,
    run_steps,
    runs,
)

Handler = Callable[[Connection, Any, int], None]

# Statements of the frequent events, built once (building one per event cost more than
# running it); values are bound per execution.
_TOUCH = (
    update(runs)
    .where(runs.c.id == bindparam("rid"))
    .values(version=bindparam("v"), updated_at=bindparam("at"), position=bindparam("p"))
)
_STARTED = (
    update(runs)
    .where(runs.c.id == bindparam("rid"))
    .values(
        status="RUNNING",
        started_at=func.coalesce(runs.c.started_at, bindparam("at", type_=runs.c.started_at.type)),
    )
)
_STEP = (run_steps.c.run_id == bindparam("rid")) & (run_steps.c.step_id == bindparam("sid"))
_ATTEMPT = (
    (run_step_attempts.c.run_id == bindparam("rid"))
    & (run_step_attempts.c.step_id == bindparam("sid"))
    & (run_step_attempts.c.attempt == bindparam("n"))
)
_INSERT_ATTEMPT = insert(run_step_attempts).values(
    run_id=bindparam("rid"),
    step_id=bindparam("sid"),
    attempt=bindparam("n"),
    outcome="running",
    input=bindparam("b_input", type_=run_step_attempts.c.input.type),
    started_at=bindparam("at"),
)
_STEP_STARTED = (
    update(run_steps)
    .where(_STEP)
    .values(
        status="RUNNING",
        attempts=run_steps.c.attempts + 1,
        input=bindparam("b_input", type_=run_steps.c.input.type),
        task_id=None,
        retry_at=None,
        started_at=func.coalesce(
            run_steps.c.started_at, bindparam("at", type_=run_steps.c.started_at.type)
        ),
    )
)
_ATTEMPT_TASK = update(run_step_attempts).where(_ATTEMPT).values(task_id=bindparam("task"))
_STEP_TASK = update(run_steps).where(_STEP).values(task_id=bindparam("task"))
_MS = bindparam("ms", type_=BigInteger)
"""The event's time in epoch milliseconds, for durations."""


def _ms_since(started_at: Any) -> Any:
    """Milliseconds from ``started_at`` (a column) to the event's time (0 if never started)."""
    return _MS - func.coalesce(func.floor(func.extract("epoch", started_at) * 1000), _MS)


_STEP_SUCCEEDED = (
    update(run_steps)
    .where(_STEP)
    .values(
        finished_at=bindparam("at"),
        retry_at=None,
        duration_ms=_ms_since(run_steps.c.started_at),
        status="SUCCEEDED",
        output=bindparam("b_output", type_=run_steps.c.output.type),
        error=None,
    )
)
_RUN_SUCCEEDED = (
    update(runs)
    .where(runs.c.id == bindparam("rid"))
    .values(
        finished_at=bindparam("at"),
        duration_ms=_ms_since(runs.c.started_at),
        status="SUCCEEDED",
        output=bindparam("b_output", type_=runs.c.output.type),
        error=None,
    )
)
_ATTEMPT_SUCCEEDED = (
    update(run_step_attempts)
    .where(_ATTEMPT)
    .values(
        outcome="succeeded",
        output=bindparam("b_output", type_=run_step_attempts.c.output.type),
        finished_at=bindparam("at"),
    )
)


class RunsProjection(Projection):
    name: ClassVar[str] = "runs"
    topic_prefixes = ("flowledger.domain.runs:",)
    tables = (runs, run_steps, run_step_attempts, run_counts, run_body_steps, *ANALYTICS_TABLES)
    pipelined = True  # its handlers only write

    def __init__(self) -> None:
        self.handlers: dict[type, Handler] = {
            Run.Started: self._started,
            Run.StepStarted: self._step_started,
            Run.StepTaskAssigned: self._task_assigned,
            Run.StepAttemptFailed: self._attempt_failed,
            Run.StepAttemptInterrupted: self._attempt_interrupted,
            Run.StepSucceeded: self._step_succeeded,
            Run.StepFailed: self._step_failed,
            Run.Succeeded: self._succeeded,
            Run.Failed: self._failed,
            Run.Cancelled: self._cancelled,
            Run.Retried: self._retried,
            **ControlFlowHandlers(_move).handlers(),
        }

        self._new_runs: list[dict[str, Any]] = []
        self._new_steps: list[dict[str, Any]] = []
        self._new_body_steps: list[dict[str, Any]] = []
        """Rows of runs requested in this batch, not written yet."""
        self._touched: dict[Any, dict[str, Any]] = {}
        """Each run's version, time and position after its last event in the batch."""
        self.analytics = RunAnalytics()

    def start_batch(self) -> None:
        self._new_runs, self._new_steps, self._touched = [], [], {}
        self._new_body_steps = []
        self.analytics.start_batch()

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        if isinstance(event, Run.Requested):
            self._requested(event, position)
            self.analytics.requested(event.originator_id)
            return
        # Any other event may change rows of a run requested earlier in this batch.
        self._insert_new_runs(conn)
        self.analytics.changing(conn, event.originator_id)
        self.handlers[type(event)](conn, event, position)
        # No handler reads these columns: one UPDATE per run at the end of the batch
        # leaves the row as one UPDATE per event would.
        self._touched[event.originator_id] = {
            "rid": event.originator_id,
            "v": event.originator_version,
            "at": event.timestamp,
            "p": position,
        }

    def finish_batch(self, conn: Connection) -> None:
        self._insert_new_runs(conn)
        touched = list(self._touched.values())
        if len(touched) == 1:
            conn.execute(_TOUCH, touched[0])
        elif touched:
            conn.execute(_TOUCH, touched)
        self._touched = {}
        self.analytics.finish_batch(conn)

    def _insert_new_runs(self, conn: Connection) -> None:
        """The runs requested since the last write: one INSERT for them, one for their steps."""
        if self._new_runs:
            insert_rows(conn, runs, self._new_runs)
            insert_rows(conn, run_steps, self._new_steps)
            insert_rows(conn, run_body_steps, self._new_body_steps)
            _count_new(conn, Counter(row["workflow_id"] for row in self._new_runs))
        self._new_runs, self._new_steps, self._new_body_steps = [], [], []

    # ------------------------------------------------------------------ run

    def _requested(self, event: Any, position: int) -> None:
        plan = WorkflowPlan.from_dict(event.plan)
        self._new_runs.append(
            {
                "id": event.originator_id,
                "workflow_id": event.workflow_id,
                "workflow_name": event.workflow_name,
                "workflow_version": event.workflow_version,
                "status": "PENDING",
                "input_data": event.input_data,
                "variables": event.variables,
                "triggered_by": event.triggered_by,
                "idempotency_key": event.idempotency_key,
                "retry_count": 0,
                "step_count": len(plan.steps),
                "created_at": event.timestamp,
                "updated_at": event.timestamp,
                "version": event.originator_version,
                "position": position,
                "parent_run_id": event.parent_run_id,
                "parent_step_id": event.parent_step_id,
            }
        )
        self._new_steps += [
            {
                "run_id": event.originator_id,
                "step_id": step.step_id,
                "step_order": order,
                "agent_name": step.agent_name,
                "depends_on": list(step.depends_on),
                "status": "PENDING",
                "attempts": 0,
                "kind": step.kind,
            }
            for order, step in enumerate(plan.steps)
        ]
        self._new_body_steps += body_step_rows(event.originator_id, plan)

    def _started(self, conn: Connection, event: Any, position: int) -> None:
        _move(conn, event.originator_id, "RUNNING")
        conn.execute(_STARTED, {"rid": event.originator_id, "at": event.timestamp})

    def _finished(self, conn: Connection, event: Any, **values: Any) -> None:
        _move(conn, event.originator_id, values["status"])
        conn.execute(
            update(runs)
            .where(runs.c.id == event.originator_id)
            .values(
                finished_at=event.timestamp, duration_ms=_ms_since(runs.c.started_at), **values
            ),
            {"ms": _epoch_ms(event.timestamp)},
        )

    def _succeeded(self, conn: Connection, event: Any, position: int) -> None:
        _move(conn, event.originator_id, "SUCCEEDED")
        conn.execute(
            _RUN_SUCCEEDED,
            {
                "rid": event.originator_id,
                "at": event.timestamp,
                "ms": _epoch_ms(event.timestamp),
                "b_output": event.output,
            },
        )

    def _failed(self, conn: Connection, event: Any, position: int) -> None:
        self._close_steps(conn, event)
        self._finished(conn, event, status="FAILED", error=event.error, failed_step=event.step_id)

    def _cancelled(self, conn: Connection, event: Any, position: int) -> None:
        self._close_steps(conn, event)
        self._finished(
            conn,
            event,
            status="CANCELLED",
            error=event.reason,
            cancelled_at=event.timestamp,
            cancelled_by=metadata_of(event).actor,
        )

    def _retried(self, conn: Connection, event: Any, position: int) -> None:
        _move(conn, event.originator_id, "PENDING")
        conn.execute(
            update(runs)
            .where(runs.c.id == event.originator_id)
            .values(
                status="PENDING",
                retry_count=event.retry_number,
                error=None,
                failed_step=None,
                finished_at=None,
                duration_ms=None,
                cancelled_at=None,
                cancelled_by=None,
            )
        )
        retried(conn, event)

    def _close_steps(self, conn: Connection, event: Any) -> None:
        run_id = event.originator_id
        conn.execute(
            update(run_step_attempts)
            .where(run_step_attempts.c.run_id == run_id, run_step_attempts.c.outcome == "running")
            .values(outcome="cancelled", finished_at=event.timestamp)
        )
        conn.execute(
            update(run_steps)
            .where(
                run_steps.c.run_id == run_id,
                run_steps.c.status.in_(["RUNNING", "WAITING", "PENDING"]),
            )
            .values(
                status=CLOSED_STATUS,
                retry_at=None,
                wake_at=None,
                finished_at=case(
                    (run_steps.c.status.in_(["RUNNING", "WAITING"]), event.timestamp),
                    else_=run_steps.c.finished_at,
                ),
            )
        )

    # ------------------------------------------------------------------ steps

    def _step_started(self, conn: Connection, event: Any, position: int) -> None:
        new_instance(conn, event.originator_id, event.step_id)
        values = {
            **_attempt_keys(event),
            "b_input": event.input,
            "at": event.timestamp,
        }
        conn.execute(_INSERT_ATTEMPT, values)
        conn.execute(_STEP_STARTED, values)

    def _task_assigned(self, conn: Connection, event: Any, position: int) -> None:
        values = {
            **_attempt_keys(event),
            "task": event.task_id,
        }
        conn.execute(_ATTEMPT_TASK, values)
        conn.execute(_STEP_TASK, values)

    def _attempt_failed(self, conn: Connection, event: Any, position: int) -> None:
        keys = _attempt_keys(event)
        conn.execute(
            update(run_step_attempts)
            .where(_ATTEMPT)
            .values(outcome="failed", error=event.error, finished_at=event.timestamp),
            keys,
        )
        retry_at = (
            event.timestamp + timedelta(milliseconds=event.retry_in_ms)
            if event.retry_in_ms is not None
            else None
        )
        conn.execute(
            update(run_steps).where(_STEP).values(error=event.error, retry_at=retry_at), keys
        )

    def _attempt_interrupted(self, conn: Connection, event: Any, position: int) -> None:
        conn.execute(
            update(run_step_attempts)
            .where(_ATTEMPT)
            .values(outcome="interrupted", finished_at=event.timestamp),
            _attempt_keys(event),
        )

    def _step_succeeded(self, conn: Connection, event: Any, position: int) -> None:
        values = {
            **_attempt_keys(event),
            "b_output": event.output,
            "at": event.timestamp,
            "ms": _epoch_ms(event.timestamp),
        }
        conn.execute(_ATTEMPT_SUCCEEDED, values)
        conn.execute(_STEP_SUCCEEDED, values)

    def _step_failed(self, conn: Connection, event: Any, position: int) -> None:
        new_instance(conn, event.originator_id, event.step_id)
        self._step_done(conn, event, status="FAILED", error=event.error)

    def _step_done(self, conn: Connection, event: Any, **values: Any) -> None:
        conn.execute(
            update(run_steps)
            .where(_STEP)
            .values(
                finished_at=event.timestamp,
                retry_at=None,
                duration_ms=_ms_since(run_steps.c.started_at),
                **values,
            ),
            {"rid": event.originator_id, "sid": event.step_id, "ms": _epoch_ms(event.timestamp)},
        )


_MOVE = text(
    "INSERT INTO run_counts (workflow_id, status, runs) "
    "SELECT r.workflow_id, d.status, d.delta FROM runs AS r "
    "CROSS JOIN LATERAL (VALUES (r.status, -1), (CAST(:status AS varchar), 1)) AS d(status, delta) "
    "WHERE r.id = :rid AND r.status <> :status "
    "ON CONFLICT (workflow_id, status) DO UPDATE SET runs = run_counts.runs + excluded.runs"
)


def _move(conn: Connection, run_id: Any, status: str) -> None:
    """Count a run out of its current status and into ``status`` (in ``run_counts``), before
    the update that changes it. One statement that reads the old status on the server, so the
    projection's pipeline never waits for a result; plain SQL, which a rebuild's search path
    points at the fresh tables."""
    conn.execute(_MOVE, {"rid": run_id, "status": status})


def _count_new(conn: Connection, by_workflow: Counter[Any]) -> None:
    """Count newly requested runs in as PENDING, one row per workflow."""
    statement = upsert(run_counts).values(
        [{"workflow_id": w, "status": "PENDING", "runs": n} for w, n in by_workflow.items()]
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[run_counts.c.workflow_id, run_counts.c.status],
            set_={"runs": run_counts.c.runs + statement.excluded.runs},
        )
    )


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _attempt_keys(event: Any) -> dict[str, Any]:
    """The values of ``_STEP`` and ``_ATTEMPT`` for a step event."""
    return {"rid": event.originator_id, "sid": event.step_id, "n": event.attempt}
