"""The integrations read table: each external service instance, its status and last sync.

The credentials are never projected (they stay in the event store, masked wherever event
data is shown)."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Connection, insert, update

from flowledger.domain.integrations import Integration
from flowledger.projections.projector import Projection
from flowledger.projections.tables import integrations


class IntegrationsProjection(Projection):
    name: ClassVar[str] = "integrations"
    topic_prefixes = ("flowledger.domain.integrations:",)
    tables = (integrations,)

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        if isinstance(event, Integration.Connected):
            conn.execute(
                insert(integrations).values(
                    id=event.originator_id,
                    kind=event.kind,
                    url=event.url,
                    status="inactive",
                    synced_count=0,
                    agents={},
                    errors=[],
                    created_at=event.timestamp,
                    updated_at=event.timestamp,
                    position=position,
                )
            )
            return
        changes: dict[str, Any] = {}
        if isinstance(event, Integration.Synced):
            changes = {
                "status": "active",
                "last_sync": event.timestamp,
                "last_error": None,
                "synced_count": event.synced_count,
                "agents": event.agents,
                "errors": event.errors,
            }
        elif isinstance(event, Integration.SyncFailed):
            changes = {"status": "error", "last_sync": event.timestamp, "last_error": event.error}
        conn.execute(
            update(integrations)
            .where(integrations.c.id == event.originator_id)
            .values(**changes, updated_at=event.timestamp, position=position)
        )
