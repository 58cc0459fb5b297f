"""Reading the audit log projection, filtered and paginated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.http.audit.schemas import AuditEntry
from flowledger.http.pagination import Page, fetch_page
from flowledger.projections.tables import audit_log


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    entity_type: str | None = None
    entity_id: UUID | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        equal = {
            "actor": self.actor,
            "action": self.action,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "correlation_id": self.correlation_id,
        }
        for column, value in equal.items():
            if value is not None:
                query = query.where(audit_log.c[column] == value)
        if self.since is not None:
            query = query.where(audit_log.c.occurred_at >= _aware(self.since))
        if self.until is not None:
            query = query.where(audit_log.c.occurred_at <= _aware(self.until))
        return query


def _aware(moment: datetime) -> datetime:
    """Times without a zone are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def to_entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        position=row.position,
        entity_type=row.entity_type,
        entity_id=row.entity_id,
        entity_version=row.entity_version,
        action=row.action,
        event_type=row.event_type,
        actor=row.actor,
        correlation_id=row.correlation_id,
        changes=row.changes,
        occurred_at=row.occurred_at,
    )


async def list_audit_entries(
    conn: AsyncConnection,
    where: AuditFilter,
    *,
    order: Literal["asc", "desc"],
    page: int,
    page_size: int,
) -> Page[AuditEntry]:
    position = audit_log.c.position
    return await fetch_page(
        conn,
        where.apply(select(audit_log)),
        order_by=[position.desc() if order == "desc" else position.asc()],
        page=page,
        page_size=page_size,
        to_item=to_entry,
    )
