"""The webhooks read table, and the delivery outbox.

For every public event, in log order, one ``webhook_deliveries`` row is enqueued for each
webhook active at that point whose filter matches, in the same transaction as the projection's
position: no event is skipped and none enqueued twice. A webhook's own registration is its
first delivery (when its filter admits it), a ping that shows the set-up works.

A rebuild (``reset``) forgets the webhooks table only: replaying re-enqueues nothing, because a
delivery's row is keyed by (webhook, position). The sender (``flowledger.webhooks``) only reads
and updates delivery rows; deliveries never record events, so they cannot feed back.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final
from uuid import UUID, uuid5

import msgspec
from psycopg import sql
from sqlalchemy import Connection, MetaData, func, insert, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from flowledger.domain.webhooks import Webhook
from flowledger.eventlog.envelope import encode, envelope_of, type_matches
from flowledger.eventlog.store import is_internal, metadata_of
from flowledger.projections.projector import Projection
from flowledger.projections.rowsets import driver
from flowledger.projections.tables import webhook_deliveries, webhooks
from flowledger.runtime.database import composed

DELIVERIES_CHANNEL: Final = "flowledger_webhook_deliveries"
"""NOTIFY channel that wakes the sender when deliveries are enqueued."""

_deliveries: Final = webhook_deliveries.to_metadata(MetaData(), schema="public")
"""The outbox, named with its schema: it is not this projection's table, so a rebuild (whose
statements put unqualified tables in its side schema) enqueues into the live outbox, where the
(webhook, position) key makes a replayed delivery a no-op."""

_ACTIVE: Final = composed(
    sql.SQL("SELECT id, event_types::text FROM {} WHERE status = 'active'").format(
        sql.Identifier(webhooks.name)
    )
)
"""The active webhooks, read once per batch: sent by psycopg, composed once (through
SQLAlchemy it was compiled and executed again in every live batch). Unqualified, as the
projection's own table: a rebuild's search path points it at the side schema's copy."""
_json: Final = msgspec.json.Decoder()


def delivery_id(webhook_id: UUID, event_id: UUID) -> UUID:
    return uuid5(webhook_id, str(event_id))


class WebhooksProjection(Projection):
    name: ClassVar[str] = "webhooks"
    tables = (webhooks,)

    def __init__(self) -> None:
        self._cache_conn: Connection | None = None
        self._active: list[tuple[UUID, list[str]]] = []

    def wants(self, topic: str) -> bool:
        return not is_internal(topic)

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        if isinstance(event, Webhook.Registered):
            actor = metadata_of(event).actor
            conn.execute(
                insert(webhooks).values(
                    id=event.originator_id,
                    url=event.url,
                    description=event.description,
                    event_types=list(event.event_types),
                    secret=event.secret,
                    status="active",
                    version=event.originator_version,
                    created_at=event.timestamp,
                    updated_at=event.timestamp,
                    created_by=actor,
                    updated_by=actor,
                    position=position,
                )
            )
            self._cache_conn = None
        elif isinstance(event, Webhook.Deleted):
            conn.execute(
                update(webhooks)
                .where(webhooks.c.id == event.originator_id)
                .values(
                    status="deleted",
                    version=event.originator_version,
                    updated_at=event.timestamp,
                    updated_by=metadata_of(event).actor,
                    position=position,
                )
            )
            conn.execute(
                update(_deliveries)
                .where(
                    _deliveries.c.webhook_id == event.originator_id,
                    _deliveries.c.status == "pending",
                )
                .values(status="cancelled", completed_at=func.now())
            )
            self._cache_conn = None
        self._enqueue(conn, event, position)

    def _active_webhooks(self, conn: Connection) -> list[tuple[UUID, list[str]]]:
        # Cached for the batch's transaction; webhook events above invalidate it. Holding the
        # connection object keeps its identity from being reused by a later one.
        if self._cache_conn is not conn:
            rows = driver(conn).execute(_ACTIVE).fetchall()
            self._active = [(hook, list(_json.decode(types))) for hook, types in rows]
            self._cache_conn = conn
        return self._active

    def _enqueue(self, conn: Connection, event: Any, position: int) -> None:
        active = self._active_webhooks(conn)
        if not active:
            return
        envelope = envelope_of(event, position)
        targets = [hook for hook, types in active if type_matches(types, envelope.event_type)]
        if not targets:
            return
        payload = encode(envelope).decode()
        rows = [
            {
                "id": delivery_id(hook, envelope.event_id),
                "webhook_id": hook,
                "position": position,
                "event_id": envelope.event_id,
                "event_type": envelope.event_type,
                "aggregate_type": envelope.aggregate_type,
                "aggregate_id": envelope.aggregate_id,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": func.now(),
                "created_at": func.now(),
            }
            for hook in targets
        ]
        conn.execute(pg_insert(_deliveries).values(rows).on_conflict_do_nothing())
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": DELIVERIES_CHANNEL})
