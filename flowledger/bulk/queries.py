"""What the bulk runner reads from the read tables (hints: the event store decides)."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Engine, func, select

from flowledger.eventlog.store import APPLICATION_NAME
from flowledger.projections.tables import (
    bulk_operation_items,
    bulk_operations,
    run_counts,
    tracking_table,
)

ACTIVE_STATUSES = ("PENDING", "RUNNING")


def running_operations(engine: Engine) -> list[UUID]:
    """Operations not yet completed or stopped, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(bulk_operations.c.id)
            .where(bulk_operations.c.status == "RUNNING")
            .order_by(bulk_operations.c.created_at, bulk_operations.c.id)
        )
        return [row.id for row in rows]


def settled_runs(engine: Engine, operation_id: UUID) -> set[UUID]:
    """Runs of the operation whose item the projection has seen (it may not have seen all)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(bulk_operation_items.c.run_id).where(
                bulk_operation_items.c.operation_id == operation_id,
                bulk_operation_items.c.outcome != "pending",
            )
        )
        return {row.run_id for row in rows}


def runs_position(engine: Engine) -> int:
    """The position the runs projection (and so ``run_counts``) has reached."""
    tracking = tracking_table("runs")
    with engine.connect() as conn:
        value = conn.execute(
            select(tracking.c.notification_id).where(
                tracking.c.application_name == APPLICATION_NAME
            )
        ).scalar_one_or_none()
    return int(value or 0)


def active_runs(engine: Engine) -> int:
    """Runs PENDING or RUNNING, of every workflow."""
    with engine.connect() as conn:
        value = conn.execute(
            select(func.coalesce(func.sum(run_counts.c.runs), 0)).where(
                run_counts.c.status.in_(ACTIVE_STATUSES)
            )
        ).scalar_one()
    return int(value)
