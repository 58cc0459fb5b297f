"""Runs as users watch them: one row per run, per step, and per attempt of a step."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import Connection, case, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as upsert

from flowledger.domain.plans import WorkflowPlan
from flowledger.domain.runs import Run
from flowledger.eventstore import metadata_of
from flowledger.projections.projector import Projection
from flowledger.projections.tables import run_counts, run_step_attempts, run_steps, runs

Handler = Callable[[Connection, Any, int], None]


class RunsProjection(Projection):
    name: ClassVar[str] = "runs"
    topic_prefixes = ("flowledger.domain.runs:",)
    tables = (runs, run_steps, run_step_attempts, run_counts)

    def __init__(self) -> None:
        self.handlers: dict[type, Handler] = {
            Run.Requested: self._requested,
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
        }

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        self.handlers[type(event)](conn, event, position)
        if not isinstance(event, Run.Requested):
            conn.execute(
                update(runs)
                .where(runs.c.id == event.originator_id)
                .values(
                    version=event.originator_version, updated_at=event.timestamp, position=position
                )
            )

    # ------------------------------------------------------------------ run

    def _requested(self, conn: Connection, event: Any, position: int) -> None:
        plan = WorkflowPlan.from_dict(event.plan)
        conn.execute(
            insert(runs).values(
                id=event.originator_id,
                workflow_id=event.workflow_id,
                workflow_name=event.workflow_name,
                workflow_version=event.workflow_version,
                status="PENDING",
                input_data=event.input_data,
                variables=event.variables,
                triggered_by=event.triggered_by,
                idempotency_key=event.idempotency_key,
                retry_count=0,
                step_count=len(plan.steps),
                created_at=event.timestamp,
                updated_at=event.timestamp,
                version=event.originator_version,
                position=position,
            )
        )
        _count(conn, event.workflow_id, {"PENDING": 1})
        conn.execute(
            insert(run_steps),
            [
                {
                    "run_id": event.originator_id,
                    "step_id": step.step_id,
                    "step_order": order,
                    "agent_name": step.agent_name,
                    "depends_on": list(step.depends_on),
                    "status": "PENDING",
                    "attempts": 0,
                }
                for order, step in enumerate(plan.steps)
            ],
        )

    def _started(self, conn: Connection, event: Any, position: int) -> None:
        _move(conn, event.originator_id, "RUNNING")
        conn.execute(
            update(runs)
            .where(runs.c.id == event.originator_id)
            .values(
                status="RUNNING",
                started_at=case(
                    (runs.c.started_at.is_(None), event.timestamp), else_=runs.c.started_at
                ),
            )
        )

    def _finished(self, conn: Connection, event: Any, **values: Any) -> None:
        _move(conn, event.originator_id, values["status"])
        conn.execute(
            update(runs)
            .where(runs.c.id == event.originator_id)
            .values(
                finished_at=event.timestamp,
                duration_ms=(
                    _epoch_ms(event.timestamp)
                    - _epoch_ms_column(runs.c.started_at, event.timestamp)
                ),
                **values,
            )
        )

    def _succeeded(self, conn: Connection, event: Any, position: int) -> None:
        self._finished(conn, event, status="SUCCEEDED", output=event.output, error=None)

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
        conn.execute(
            update(run_steps)
            .where(run_steps.c.run_id == event.originator_id, run_steps.c.status != "SUCCEEDED")
            .values(status="PENDING", error=None, finished_at=None, duration_ms=None, retry_at=None)
        )

    def _close_steps(self, conn: Connection, event: Any) -> None:
        run_id = event.originator_id
        conn.execute(
            update(run_step_attempts)
            .where(run_step_attempts.c.run_id == run_id, run_step_attempts.c.outcome == "running")
            .values(outcome="cancelled", finished_at=event.timestamp)
        )
        conn.execute(
            update(run_steps)
            .where(run_steps.c.run_id == run_id, run_steps.c.status.in_(["RUNNING", "PENDING"]))
            .values(
                status=case(
                    (run_steps.c.status == "RUNNING", literal("CANCELLED")),
                    else_=literal("SKIPPED"),
                ),
                retry_at=None,
                finished_at=case(
                    (run_steps.c.status == "RUNNING", event.timestamp),
                    else_=run_steps.c.finished_at,
                ),
            )
        )

    # ------------------------------------------------------------------ steps

    def _step(self, event: Any) -> Any:
        return (run_steps.c.run_id == event.originator_id) & (run_steps.c.step_id == event.step_id)

    def _attempt(self, event: Any) -> Any:
        return (
            (run_step_attempts.c.run_id == event.originator_id)
            & (run_step_attempts.c.step_id == event.step_id)
            & (run_step_attempts.c.attempt == event.attempt)
        )

    def _step_started(self, conn: Connection, event: Any, position: int) -> None:
        conn.execute(
            insert(run_step_attempts).values(
                run_id=event.originator_id,
                step_id=event.step_id,
                attempt=event.attempt,
                outcome="running",
                input=event.input,
                started_at=event.timestamp,
            )
        )
        conn.execute(
            update(run_steps)
            .where(self._step(event))
            .values(
                status="RUNNING",
                attempts=run_steps.c.attempts + 1,
                input=event.input,
                task_id=None,
                retry_at=None,
                started_at=case(
                    (run_steps.c.started_at.is_(None), event.timestamp),
                    else_=run_steps.c.started_at,
                ),
            )
        )

    def _task_assigned(self, conn: Connection, event: Any, position: int) -> None:
        conn.execute(
            update(run_step_attempts).where(self._attempt(event)).values(task_id=event.task_id)
        )
        conn.execute(update(run_steps).where(self._step(event)).values(task_id=event.task_id))

    def _attempt_failed(self, conn: Connection, event: Any, position: int) -> None:
        conn.execute(
            update(run_step_attempts)
            .where(self._attempt(event))
            .values(outcome="failed", error=event.error, finished_at=event.timestamp)
        )
        retry_at = (
            event.timestamp + timedelta(milliseconds=event.retry_in_ms)
            if event.retry_in_ms is not None
            else None
        )
        conn.execute(
            update(run_steps).where(self._step(event)).values(error=event.error, retry_at=retry_at)
        )

    def _attempt_interrupted(self, conn: Connection, event: Any, position: int) -> None:
        conn.execute(
            update(run_step_attempts)
            .where(self._attempt(event))
            .values(outcome="interrupted", finished_at=event.timestamp)
        )

    def _step_succeeded(self, conn: Connection, event: Any, position: int) -> None:
        conn.execute(
            update(run_step_attempts)
            .where(self._attempt(event))
            .values(outcome="succeeded", output=event.output, finished_at=event.timestamp)
        )
        self._step_done(conn, event, status="SUCCEEDED", output=event.output, error=None)

    def _step_failed(self, conn: Connection, event: Any, position: int) -> None:
        self._step_done(conn, event, status="FAILED", error=event.error)

    def _step_done(self, conn: Connection, event: Any, **values: Any) -> None:
        conn.execute(
            update(run_steps)
            .where(self._step(event))
            .values(
                finished_at=event.timestamp,
                retry_at=None,
                duration_ms=(
                    _epoch_ms(event.timestamp)
                    - _epoch_ms_column(run_steps.c.started_at, event.timestamp)
                ),
                **values,
            )
        )


def _move(conn: Connection, run_id: Any, status: str) -> None:
    """Count a run out of its status and into ``status`` (in ``run_counts``), before the update
    that changes it; the projection is the only writer of ``runs``, so nothing moves it between
    the read and the update."""
    query = select(runs.c.workflow_id, runs.c.status).where(runs.c.id == run_id)
    row = conn.execute(query).one_or_none()
    if row is not None and row.status != status:
        _count(conn, row.workflow_id, {row.status: -1, status: 1})


def _count(conn: Connection, workflow_id: Any, deltas: dict[str, int]) -> None:
    """Add ``deltas`` (by status) to a workflow's counts, in one statement."""
    statement = upsert(run_counts).values(
        [{"workflow_id": workflow_id, "status": s, "runs": n} for s, n in deltas.items()]
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[run_counts.c.workflow_id, run_counts.c.status],
            set_={"runs": run_counts.c.runs + statement.excluded.runs},
        )
    )


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _epoch_ms_column(column: Any, fallback: datetime) -> Any:
    return func.coalesce(func.floor(func.extract("epoch", column) * 1000), _epoch_ms(fallback))
