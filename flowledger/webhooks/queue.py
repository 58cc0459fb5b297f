"""The delivery queue's state, in PostgreSQL: which webhooks have a delivery due, the next one
of a webhook, recording an attempt (and scheduling the retry or giving up), and the lease that
keeps one sender per webhook. Operational rows only: nothing here records an event."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from flowledger.projections.tables import (
    webhook_deliveries,
    webhook_delivery_attempts,
    webhook_leases,
    webhooks,
)
from flowledger.webhooks.settings import WebhookSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    delivery_id: UUID
    webhook_id: UUID
    position: int
    event_id: UUID
    event_type: str
    payload: str
    attempts: int
    due: bool
    url: str | None
    secret: str | None
    webhook_status: str | None


@dataclass(frozen=True)
class Attempt:
    started_at: datetime
    duration_ms: float
    succeeded: bool
    status_code: int | None = None
    error: str | None = None
    excerpt: str | None = None


DUE_WEBHOOKS = text(
    """
    SELECT head.webhook_id FROM (
        SELECT DISTINCT ON (webhook_id) webhook_id, next_attempt_at
        FROM webhook_deliveries WHERE status = 'pending'
        ORDER BY webhook_id, position
    ) AS head
    LEFT JOIN webhook_leases AS lease ON lease.webhook_id = head.webhook_id
    WHERE head.next_attempt_at <= now()
      AND (lease.webhook_id IS NULL OR lease.lease_until < now() OR lease.owner = :owner)
    ORDER BY head.next_attempt_at
    LIMIT :limit
    """
)


class DeliveryQueue:
    def __init__(self, engine: AsyncEngine, config: WebhookSettings, owner: str) -> None:
        self.engine = engine
        self.config = config
        self.owner = owner

    async def due_webhooks(self, limit: int) -> list[UUID]:
        """Webhooks whose oldest pending delivery is due and that no other sender holds."""
        async with self.engine.connect() as conn:
            found = await conn.execute(DUE_WEBHOOKS, {"owner": self.owner, "limit": limit})
            return list(found.scalars())

    async def next(self, hook: UUID) -> Job | None:
        d = webhook_deliveries.c
        query = (
            select(
                d.id,
                d.webhook_id,
                d.position,
                d.event_id,
                d.event_type,
                d.payload,
                d.attempts,
                (d.next_attempt_at <= func.now()).label("due"),
                webhooks.c.url,
                webhooks.c.secret,
                webhooks.c.status.label("webhook_status"),
            )
            .select_from(webhook_deliveries.outerjoin(webhooks, webhooks.c.id == d.webhook_id))
            .where(d.webhook_id == hook, d.status == "pending")
            .order_by(d.position)
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return Job(
            delivery_id=row.id,
            webhook_id=row.webhook_id,
            position=row.position,
            event_id=row.event_id,
            event_type=row.event_type,
            payload=row.payload,
            attempts=row.attempts,
            due=bool(row.due),
            url=row.url,
            secret=row.secret,
            webhook_status=row.webhook_status,
        )

    async def record(self, job: Job, attempt: Attempt) -> None:
        number = job.attempts + 1
        values: dict[str, Any] = {
            "attempts": number,
            "last_attempt_at": attempt.started_at,
            "last_status_code": attempt.status_code,
            "last_error": attempt.error,
        }
        if attempt.succeeded:
            values.update(status="succeeded", completed_at=func.now())
        elif number >= self.config.max_attempts:
            values.update(status="failed", completed_at=func.now())
            log.warning(
                "webhook %s: delivery of event %s failed after %d attempts (%s)",
                job.webhook_id,
                job.position,
                number,
                attempt.error,
            )
        else:
            values["next_attempt_at"] = func.now() + timedelta(seconds=self.config.delay_s(number))
        async with self.engine.begin() as conn:
            await conn.execute(
                pg_insert(webhook_delivery_attempts)
                .values(
                    delivery_id=job.delivery_id,
                    attempt=number,
                    started_at=attempt.started_at,
                    duration_ms=attempt.duration_ms,
                    succeeded=attempt.succeeded,
                    status_code=attempt.status_code,
                    error=attempt.error,
                    response_excerpt=attempt.excerpt,
                )
                .on_conflict_do_nothing()
            )
            await conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.id == job.delivery_id,
                    webhook_deliveries.c.status == "pending",
                )
                .values(**values)
            )

    async def cancel(self, job: Job) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.id == job.delivery_id,
                    webhook_deliveries.c.status == "pending",
                )
                .values(status="cancelled", completed_at=func.now())
            )

    async def lease(self, hook: UUID) -> bool:
        """Take or renew this webhook's lease; False when another sender holds it."""
        lease = webhook_leases.c
        claim = pg_insert(webhook_leases).values(
            webhook_id=hook,
            owner=self.owner,
            lease_until=func.now() + timedelta(seconds=self.config.lease_s),
        )
        statement = claim.on_conflict_do_update(
            index_elements=["webhook_id"],
            set_={"owner": claim.excluded.owner, "lease_until": claim.excluded.lease_until},
            where=or_(lease.owner == self.owner, lease.lease_until < func.now()),
        ).returning(lease.owner)
        async with self.engine.begin() as conn:
            return (await conn.execute(statement)).first() is not None

    async def release(self, hook: UUID) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(webhook_leases).where(
                    webhook_leases.c.webhook_id == hook, webhook_leases.c.owner == self.owner
                )
            )
