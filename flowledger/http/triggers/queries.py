"""Reading triggers and their firings from the triggers projection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.domain.schedules import Schedule
from flowledger.http.pagination import Page, fetch_page
from flowledger.http.triggers.schemas import (
    TriggerFiringResponse,
    TriggerResponse,
    TriggerStatus,
    TriggerType,
    hook_method,
    hook_url,
    shown_config,
)
from flowledger.projections.tables import trigger_firings, triggers

NEXT_TIMES: Final = 5
LAST_RUNS: Final = 10


def status_of(row: Row[Any]) -> TriggerStatus:
    if row.removed:
        return "removed"
    if row.paused:
        return "paused"
    return "active" if row.enabled else "disabled"


def to_response(row: Row[Any], firings: list[TriggerFiringResponse]) -> TriggerResponse:
    status = status_of(row)
    upcoming: list[datetime] = []
    if row.type == "schedule" and status == "active":
        upcoming = Schedule.of(row.config).next_times(datetime.now(UTC), NEXT_TIMES)
    return TriggerResponse(
        id=row.id,
        workflow_id=row.workflow_id,
        key=row.key,
        type=row.type,
        status=status,
        config=shown_config(row.config),
        url_path=hook_url(row.path),
        method=hook_method(row.type, row.config),
        workflow_version=row.workflow_version,
        next_fire_times=upcoming,
        last_tick=row.last_tick,
        last_fired_at=row.last_fired_at,
        fired_count=row.fired_count,
        failed_count=row.failed_count,
        last_runs=firings,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def firing_response(row: Row[Any]) -> TriggerFiringResponse:
    return TriggerFiringResponse(
        id=row.id,
        scheduled_for=row.scheduled_for,
        run_id=row.run_id,
        error=row.error,
        fired_at=row.fired_at,
        actor=row.actor,
    )


async def last_firings(
    conn: AsyncConnection, trigger_id: UUID, limit: int = LAST_RUNS
) -> list[TriggerFiringResponse]:
    rows = await conn.execute(
        select(trigger_firings)
        .where(trigger_firings.c.trigger_id == trigger_id)
        .order_by(trigger_firings.c.fired_at.desc(), trigger_firings.c.position.desc())
        .limit(limit)
    )
    return [firing_response(row) for row in rows]


async def find_trigger(conn: AsyncConnection, trigger_id: UUID) -> TriggerResponse | None:
    row = (await conn.execute(select(triggers).where(triggers.c.id == trigger_id))).one_or_none()
    if row is None:
        return None
    return to_response(row, await last_firings(conn, trigger_id))


async def list_triggers(
    conn: AsyncConnection,
    *,
    workflow_id: UUID | None,
    kind: TriggerType | None,
    status: TriggerStatus | None,
    page: int,
    page_size: int,
) -> Page[TriggerResponse]:
    query: Select[Any] = select(triggers)
    if workflow_id is not None:
        query = query.where(triggers.c.workflow_id == workflow_id)
    if kind is not None:
        query = query.where(triggers.c.type == kind)
    if status == "removed":
        query = query.where(triggers.c.removed.is_(True))
    else:
        query = query.where(triggers.c.removed.is_(False))
        if status == "paused":
            query = query.where(triggers.c.paused.is_(True))
        elif status in ("active", "disabled"):
            query = query.where(
                triggers.c.paused.is_(False), triggers.c.enabled.is_(status == "active")
            )
    page_of_rows = await fetch_page(
        conn,
        query,
        order_by=[triggers.c.created_at.asc(), triggers.c.id.asc()],
        page=page,
        page_size=page_size,
        to_item=lambda row: row,
    )
    items = [to_response(row, await last_firings(conn, row.id, 3)) for row in page_of_rows.items]
    return Page(
        items=items,
        total=page_of_rows.total,
        page=page_of_rows.page,
        page_size=page_of_rows.page_size,
        total_pages=page_of_rows.total_pages,
    )


async def find_hook(conn: AsyncConnection, path: str) -> Row[Any] | None:
    """The live webhook trigger at ``path`` (with its secrets, to check a call)."""
    query = select(triggers).where(
        triggers.c.path == path, triggers.c.type == "webhook", triggers.c.removed.is_(False)
    )
    return (await conn.execute(query)).first()
