"""The agents read table: one row per agent, its current configuration and status."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Connection, insert, update

from flowledger.domain.agents import Agent
from flowledger.eventlog.store import metadata_of
from flowledger.projections.projector import Projection
from flowledger.projections.tables import agents


class AgentsProjection(Projection):
    name: ClassVar[str] = "agents"
    topic_prefixes = ("flowledger.domain.agents:",)
    tables = (agents,)

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        actor = metadata_of(event).actor
        if isinstance(event, Agent.Registered):
            conn.execute(
                insert(agents).values(
                    id=event.originator_id,
                    name=event.name,
                    url=event.url,
                    description=event.description,
                    auth_type=event.auth_type,
                    auth_config=event.auth_config,
                    timeout_ms=event.timeout_ms,
                    retry_config=event.retry_config,
                    kind=event.kind,
                    status="active",
                    version=event.originator_version,
                    created_at=event.timestamp,
                    updated_at=event.timestamp,
                    created_by=actor,
                    updated_by=actor,
                    position=position,
                )
            )
            return
        changes: dict[str, Any] = {}
        if isinstance(event, Agent.Updated):
            changes = dict(event.changes)
        elif isinstance(event, Agent.Activated):
            changes = {"status": "active"}
        elif isinstance(event, Agent.Deactivated):
            changes = {"status": "inactive"}
        elif isinstance(event, Agent.Deleted):
            changes = {"status": "deleted"}
        conn.execute(
            update(agents)
            .where(agents.c.id == event.originator_id)
            .values(
                **changes,
                version=event.originator_version,
                updated_at=event.timestamp,
                updated_by=actor,
                position=position,
            )
        )
