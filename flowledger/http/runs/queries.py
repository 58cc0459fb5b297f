"""Reading runs, their steps and logs from the run projections (never from the event store)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

from sqlalchemy import ColumnElement, Row, Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.http.pagination import Page, fetch_page
from flowledger.http.runs.schemas import (
    Attempt,
    ExecutionDetail,
    LogEntry,
    LogLevel,
    RunResponse,
    RunStatus,
    StepExecution,
)
from flowledger.projections.tables import run_counts, run_logs, run_step_attempts, run_steps, runs

RunSort = Literal[
    "created_at", "started_at", "finished_at", "status", "duration_ms", "workflow_name"
]
LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")


def to_run(row: Row[Any]) -> RunResponse:
    return RunResponse(
        id=row.id,
        run_id=row.id,
        workflow_id=row.workflow_id,
        workflow_name=row.workflow_name,
        workflow_version=row.workflow_version,
        status=row.status,
        input_data=row.input_data,
        variables=row.variables,
        output_data=row.output,
        error_message=row.error,
        failed_step=row.failed_step,
        triggered_by=row.triggered_by,
        idempotency_key=row.idempotency_key,
        retry_count=row.retry_count,
        step_count=row.step_count,
        created_at=row.created_at,
        started_at=row.started_at,
        completed_at=row.finished_at,
        duration_ms=row.duration_ms,
        cancelled_at=row.cancelled_at,
        cancelled_by=row.cancelled_by,
        updated_at=row.updated_at,
        version=row.version,
        parent_run_id=row.parent_run_id,
        parent_step_id=row.parent_step_id,
    )


async def find_run(conn: AsyncConnection, run_id: UUID) -> RunResponse | None:
    row = (await conn.execute(select(runs).where(runs.c.id == run_id))).one_or_none()
    return to_run(row) if row else None


def run_conditions(
    *,
    status: RunStatus | None = None,
    workflow_id: UUID | None = None,
    triggered_by: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    agent_name: str | None = None,
    parent_run_id: UUID | None = None,
    run_ids: Sequence[UUID] | None = None,
) -> list[ColumnElement[bool]]:
    """The runs filters (``GET /runs`` and bulk operations) as conditions on ``runs``."""
    conditions: list[ColumnElement[bool]] = []
    if status is not None:
        conditions.append(runs.c.status == status)
    if workflow_id is not None:
        conditions.append(runs.c.workflow_id == workflow_id)
    if triggered_by is not None:
        conditions.append(runs.c.triggered_by == triggered_by)
    if created_from is not None:
        conditions.append(runs.c.created_at >= created_from)
    if created_to is not None:
        conditions.append(runs.c.created_at < created_to)
    if agent_name is not None:
        calls_agent = select(run_steps.c.run_id).where(
            run_steps.c.agent_name == agent_name, run_steps.c.run_id == runs.c.id
        )
        conditions.append(calls_agent.exists())
    if parent_run_id is not None:
        conditions.append(runs.c.parent_run_id == parent_run_id)
    if run_ids is not None:
        conditions.append(runs.c.id.in_(list(run_ids)))
    return conditions


async def list_runs(
    conn: AsyncConnection,
    *,
    status: RunStatus | None = None,
    workflow_id: UUID | None = None,
    triggered_by: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    parent_run_id: UUID | None = None,
    agent_name: str | None = None,
    sort: RunSort = "created_at",
    order: Literal["asc", "desc"] = "desc",
    page: int = 1,
    page_size: int = 20,
    visible: ColumnElement[bool] | None = None,
) -> Page[RunResponse]:
    """``visible``: the caller's access (see ``flowledger.http.grants.access.Visibility``)."""
    query: Select[Any] = select(runs)
    if visible is not None:
        query = query.where(visible)
    conditions = run_conditions(
        status=status,
        workflow_id=workflow_id,
        triggered_by=triggered_by,
        created_from=created_from,
        created_to=created_to,
        agent_name=agent_name,
        parent_run_id=parent_run_id,
    )
    if conditions:
        query = query.where(*conditions)
    column = runs.c[sort]
    primary = column.desc() if order == "desc" else column.asc()
    if column.nullable:
        # Only where there can be NULLs: NULLS LAST on a NOT NULL column orders the same rows
        # the same way but stops PostgreSQL reading them in the order of an index.
        primary = primary.nulls_last()
    tie = runs.c.id.desc() if order == "desc" else runs.c.id.asc()
    counted = all(
        condition is None
        for condition in (
            visible,
            triggered_by,
            created_from,
            created_to,
            parent_run_id,
            agent_name,
        )
    )
    return await fetch_page(
        conn,
        query,
        order_by=[primary, tie],
        page=page,
        page_size=page_size,
        to_item=to_run,
        count=_counted_total(status, workflow_id) if counted else None,
    )


def _counted_total(status: RunStatus | None, workflow_id: UUID | None) -> Select[Any]:
    """The number of runs of a status and/or a workflow, from ``run_counts`` (a few rows) instead
    of counting the runs themselves (up to every run: 50 to 150 ms at a million)."""
    query = select(func.coalesce(func.sum(run_counts.c.runs), 0))
    if status is not None:
        query = query.where(run_counts.c.status == status)
    if workflow_id is not None:
        query = query.where(run_counts.c.workflow_id == workflow_id)
    return query


async def run_steps_of(conn: AsyncConnection, run_id: UUID) -> list[StepExecution]:
    """Every step instance: the top-level steps in plan order, each map or loop followed by
    the instances of its body in the order they began."""
    attempts: dict[str, list[Attempt]] = defaultdict(list)
    attempt_rows = await conn.execute(
        select(run_step_attempts)
        .where(run_step_attempts.c.run_id == run_id)
        .order_by(run_step_attempts.c.step_id, run_step_attempts.c.attempt)
    )
    for row in attempt_rows:
        attempts[row.step_id].append(
            Attempt(
                attempt=row.attempt,
                outcome=row.outcome,
                input_data=row.input,
                output_data=row.output,
                error_message=row.error,
                task_id=row.task_id,
                started_at=row.started_at,
                completed_at=row.finished_at,
                child_run_id=row.child_run_id,
            )
        )
    top = run_steps.alias("top")
    top_id = func.split_part(func.split_part(run_steps.c.step_id, "[", 1), ".", 1)
    step_rows = await conn.execute(
        select(run_steps)
        .join(top, (top.c.run_id == run_steps.c.run_id) & (top.c.step_id == top_id))
        .where(run_steps.c.run_id == run_id)
        .order_by(
            top.c.step_order,
            (run_steps.c.step_id != top.c.step_id),
            func.coalesce(run_steps.c.started_at, run_steps.c.finished_at).nulls_last(),
            run_steps.c.step_order,
            run_steps.c.step_id,
        )
    )
    return [
        StepExecution(
            id=f"{run_id}:{row.step_id}",
            step_id=row.step_id,
            agent_name=row.agent_name,
            depends_on=list(row.depends_on),
            status=row.status,
            attempts=row.attempts,
            input_data=row.input,
            output_data=row.output,
            error_message=row.error,
            task_id=row.task_id,
            started_at=row.started_at,
            completed_at=row.finished_at,
            duration_ms=row.duration_ms,
            next_retry_at=row.retry_at,
            attempt_history=attempts.get(row.step_id, []),
            kind=row.kind,
            definition_step_id=row.step_id.rpartition(".")[2],
            parent_step_id=row.parent_step_id,
            index=row.item_index,
            items=row.items,
            child_run_id=row.child_run_id,
            signal=row.signal,
            waiting_until=row.wake_at,
        )
        for row in step_rows
    ]


async def execution_detail(conn: AsyncConnection, run_id: UUID) -> ExecutionDetail | None:
    run = await find_run(conn, run_id)
    if run is None:
        return None
    steps = await run_steps_of(conn, run_id)
    fields = {f: getattr(run, f) for f in run.__struct_fields__}
    return ExecutionDetail(**fields, steps=steps)


async def logs_of(
    conn: AsyncConnection,
    run_id: UUID,
    *,
    level: LogLevel | None,
    step_id: str | None,
    page: int,
    page_size: int,
) -> Page[LogEntry]:
    query: Select[Any] = select(run_logs).where(run_logs.c.run_id == run_id)
    if level is not None:
        query = query.where(run_logs.c.level.in_(LEVELS[LEVELS.index(level) :]))
    if step_id is not None:
        query = query.where(run_logs.c.step_id == step_id)
    return await fetch_page(
        conn,
        query,
        order_by=[run_logs.c.position.asc()],
        page=page,
        page_size=page_size,
        to_item=lambda row: LogEntry(
            id=row.position,
            level=row.level,
            step_id=row.step_id,
            message=row.message,
            timestamp=row.logged_at,
        ),
    )
