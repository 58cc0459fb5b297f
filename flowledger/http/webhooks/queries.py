"""Reading webhooks and their deliveries from the webhooks projection and the outbox."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.http.pagination import Page, fetch_page
from flowledger.http.webhooks.schemas import (
    DeliveryAttempt,
    DeliveryStatus,
    WebhookDelivery,
    WebhookResponse,
)
from flowledger.projections.tables import webhook_deliveries, webhook_delivery_attempts, webhooks

WebhookStatusFilter = Literal["active", "deleted", "all"]
_PUBLIC_COLUMNS = [c for c in webhooks.c if c.name != "secret"]


def to_response(row: Row[Any]) -> WebhookResponse:
    return WebhookResponse(
        id=row.id,
        url=row.url,
        description=row.description,
        event_types=list(row.event_types),
        status=row.status,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def find_webhook(conn: AsyncConnection, webhook_id: UUID) -> WebhookResponse | None:
    row = (
        await conn.execute(select(*_PUBLIC_COLUMNS).where(webhooks.c.id == webhook_id))
    ).one_or_none()
    return to_response(row) if row else None


async def list_webhooks(
    conn: AsyncConnection, *, status: WebhookStatusFilter | None, page: int, page_size: int
) -> Page[WebhookResponse]:
    query: Select[Any] = select(*_PUBLIC_COLUMNS)
    if status is None:
        query = query.where(webhooks.c.status != "deleted")
    elif status != "all":
        query = query.where(webhooks.c.status == status)
    return await fetch_page(
        conn,
        query,
        order_by=[webhooks.c.created_at.asc(), webhooks.c.id.asc()],
        page=page,
        page_size=page_size,
        to_item=to_response,
    )


async def list_deliveries(
    conn: AsyncConnection,
    webhook_id: UUID,
    *,
    status: DeliveryStatus | None,
    order: Literal["asc", "desc"],
    page: int,
    page_size: int,
) -> Page[WebhookDelivery]:
    d = webhook_deliveries.c
    query: Select[Any] = select(webhook_deliveries).where(d.webhook_id == webhook_id)
    if status is not None:
        query = query.where(d.status == status)
    result = await fetch_page(
        conn,
        query,
        order_by=[d.position.desc() if order == "desc" else d.position.asc()],
        page=page,
        page_size=page_size,
        to_item=lambda row: row,
    )
    attempts = await _attempts(conn, [row.id for row in result.items])
    return Page(
        items=[_delivery(row, attempts[row.id]) for row in result.items],
        total=result.total,
        page=result.page,
        page_size=result.page_size,
        total_pages=result.total_pages,
    )


async def _attempts(conn: AsyncConnection, ids: list[UUID]) -> dict[UUID, list[DeliveryAttempt]]:
    found: dict[UUID, list[DeliveryAttempt]] = defaultdict(list)
    if not ids:
        return found
    a = webhook_delivery_attempts.c
    rows = await conn.execute(
        select(webhook_delivery_attempts)
        .where(a.delivery_id.in_(ids))
        .order_by(a.delivery_id, a.attempt)
    )
    for row in rows:
        found[row.delivery_id].append(
            DeliveryAttempt(
                attempt=row.attempt,
                started_at=row.started_at,
                duration_ms=row.duration_ms,
                succeeded=row.succeeded,
                status_code=row.status_code,
                error=row.error,
                response_excerpt=row.response_excerpt,
            )
        )
    return found


def _delivery(row: Row[Any], attempts: list[DeliveryAttempt]) -> WebhookDelivery:
    return WebhookDelivery(
        id=row.id,
        webhook_id=row.webhook_id,
        event_id=row.event_id,
        event_type=row.event_type,
        aggregate_type=row.aggregate_type,
        aggregate_id=row.aggregate_id,
        position=row.position,
        status=row.status,
        attempt_count=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        completed_at=row.completed_at,
        attempts=attempts,
    )
