"""How far the subscribers' feeds are behind: the Kafka relay's lag and error, and the webhook
delivery backlog. Shown by ``/health/ready`` and ``flowledger events status``."""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.eventlog.store import APPLICATION_NAME
from flowledger.projections.tables import relay_state, relay_tracking, webhook_deliveries


class RelayStatus(msgspec.Struct, omit_defaults=True):
    position: int
    """The last event the broker acknowledged."""
    lag_events: int
    """Events recorded but not yet published (positions, so an upper bound)."""
    cluster_id: str | None = None
    last_published_at: datetime | None = None
    last_error: str | None = None
    """Why the relay is retrying, or why it started over; cleared by the next publish."""


class WebhookBacklog(msgspec.Struct):
    pending: int
    """Deliveries waiting for their first or next attempt."""
    failed: int
    """Deliveries that used up their attempts."""


async def relay_status(conn: AsyncConnection, head: int) -> RelayStatus | None:
    """The relay's progress, or None when it never ran (no Kafka configured)."""
    position = (
        await conn.execute(
            select(relay_tracking.c.notification_id).where(
                relay_tracking.c.application_name == APPLICATION_NAME
            )
        )
    ).scalar_one_or_none()
    state = (await conn.execute(select(relay_state))).first()
    if state is None and position is None:
        return None
    reached = int(position or 0)
    return RelayStatus(
        position=reached,
        lag_events=max(head - reached, 0),
        cluster_id=state.cluster_id if state else None,
        last_published_at=state.last_published_at if state else None,
        last_error=state.last_error if state else None,
    )


async def webhook_backlog(conn: AsyncConnection) -> WebhookBacklog:
    d = webhook_deliveries.c
    rows = await conn.execute(
        select(d.status, func.count()).where(d.status.in_(("pending", "failed"))).group_by(d.status)
    )
    counts = {status: count for status, count in rows}
    return WebhookBacklog(pending=counts.get("pending", 0), failed=counts.get("failed", 0))
