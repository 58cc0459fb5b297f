"""The webhook deliveries still to make, and those given up on. Shown by ``/health/ready`` and
``flowledger events status``."""

from __future__ import annotations

import msgspec
from sqlalchemy import Connection, func, select

from flowledger.projections.tables import webhook_deliveries


class WebhookBacklog(msgspec.Struct):
    pending: int
    """Deliveries waiting for their first or next attempt."""
    failed: int
    """Deliveries that used up their attempts."""


def webhook_backlog(conn: Connection) -> WebhookBacklog:
    d = webhook_deliveries.c
    rows = conn.execute(
        select(d.status, func.count()).where(d.status.in_(("pending", "failed"))).group_by(d.status)
    )
    counts = {status: count for status, count in rows}
    return WebhookBacklog(pending=counts.get("pending", 0), failed=counts.get("failed", 0))
