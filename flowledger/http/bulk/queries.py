"""Reading for bulk operations: the runs a request matches (from ``runs``), and operations
and their items (from the bulk operations projection)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from uuid import UUID

from sqlalchemy import ColumnElement, Row, Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.http.bulk.schemas import (
    BulkItemResponse,
    BulkOperationResponse,
    BulkOperationSummary,
    ItemOutcome,
    OperationStatus,
)
from flowledger.http.pagination import Page, fetch_page
from flowledger.projections.tables import bulk_operation_items, bulk_operations, runs

FAILURES_SHOWN: Final = 100


class Matching:
    """The runs some conditions match, in a bulk operation's order (oldest first), at most
    ``limit`` of them."""

    def __init__(self, conditions: Sequence[ColumnElement[bool]], limit: int | None) -> None:
        query: Select[Any] = select(runs).where(*conditions)
        self.all = query
        self.chosen = query.order_by(runs.c.created_at, runs.c.id).limit(limit).subquery()

    async def total(self, conn: AsyncConnection) -> int:
        """Every match, the limit aside."""
        count = select(func.count()).select_from(self.all.subquery())
        return int((await conn.execute(count)).scalar_one())

    async def ids(self, conn: AsyncConnection) -> list[UUID]:
        rows = await conn.execute(
            select(self.chosen.c.id).order_by(self.chosen.c.created_at, self.chosen.c.id)
        )
        return [row.id for row in rows]

    async def by_status(self, conn: AsyncConnection) -> dict[str, int]:
        rows = await conn.execute(
            select(self.chosen.c.status, func.count()).group_by(self.chosen.c.status)
        )
        return {row[0]: int(row[1]) for row in rows}

    async def page(self, conn: AsyncConnection, page: int, page_size: int) -> Page[Row[Any]]:
        return await fetch_page(
            conn,
            select(self.chosen),
            order_by=[self.chosen.c.created_at, self.chosen.c.id],
            page=page,
            page_size=page_size,
            to_item=lambda row: row,
        )


def _summary_fields(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "action": row.action,
        "status": row.status,
        "filters": row.filters,
        "reason": row.reason,
        "matched": row.matched,
        "done": row.done,
        "skipped": row.skipped,
        "failed": row.failed,
        "pending": row.matched - row.done - row.skipped - row.failed,
        "requested_by": row.requested_by,
        "correlation_id": row.correlation_id,
        "stop_reason": row.stop_reason,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "finished_at": row.finished_at,
    }


def _item(row: Row[Any]) -> BulkItemResponse:
    return BulkItemResponse(
        run_id=row.run_id,
        seq=row.seq,
        outcome=row.outcome,
        reason=row.reason,
        run_status=row.run_status,
        recorded_at=row.recorded_at,
    )


async def find_operation(conn: AsyncConnection, operation_id: UUID) -> BulkOperationResponse | None:
    row = (
        await conn.execute(select(bulk_operations).where(bulk_operations.c.id == operation_id))
    ).one_or_none()
    if row is None:
        return None
    of_operation = bulk_operation_items.c.operation_id == operation_id
    skipped = await conn.execute(
        select(bulk_operation_items.c.run_status, func.count())
        .where(of_operation, bulk_operation_items.c.outcome == "skipped")
        .group_by(bulk_operation_items.c.run_status)
    )
    failures = await conn.execute(
        select(bulk_operation_items)
        .where(of_operation, bulk_operation_items.c.outcome == "failed")
        .order_by(bulk_operation_items.c.seq)
        .limit(FAILURES_SHOWN)
    )
    return BulkOperationResponse(
        **_summary_fields(row),
        skipped_by_status={str(status): int(count) for status, count in skipped},
        failures=[_item(item) for item in failures],
    )


async def list_operations(
    conn: AsyncConnection,
    *,
    status: OperationStatus | None,
    action: str | None,
    page: int,
    page_size: int,
) -> Page[BulkOperationSummary]:
    query: Select[Any] = select(bulk_operations)
    if status is not None:
        query = query.where(bulk_operations.c.status == status)
    if action is not None:
        query = query.where(bulk_operations.c.action == action)
    return await fetch_page(
        conn,
        query,
        order_by=[bulk_operations.c.created_at.desc(), bulk_operations.c.id.desc()],
        page=page,
        page_size=page_size,
        to_item=lambda row: BulkOperationSummary(**_summary_fields(row)),
    )


async def list_items(
    conn: AsyncConnection,
    operation_id: UUID,
    *,
    outcome: ItemOutcome | None,
    page: int,
    page_size: int,
) -> Page[BulkItemResponse]:
    query: Select[Any] = select(bulk_operation_items).where(
        bulk_operation_items.c.operation_id == operation_id
    )
    if outcome is not None:
        query = query.where(bulk_operation_items.c.outcome == outcome)
    return await fetch_page(
        conn,
        query,
        order_by=[bulk_operation_items.c.seq],
        page=page,
        page_size=page_size,
        to_item=_item,
    )


async def operation_exists(conn: AsyncConnection, operation_id: UUID) -> bool:
    found = await conn.execute(
        select(bulk_operations.c.id).where(bulk_operations.c.id == operation_id)
    )
    return found.first() is not None
