"""The audit log: one row per change, who made it, when, and what changed (secrets masked).

Every event that leaves the system gets a row, whatever its aggregate, so new aggregates are
audited without touching this module. ``action`` uses the spec's words where they exist.
``changes`` is the event's data, less the fields its class names in ``audit_omits`` (data
derived from the rest, such as a workflow version's plan).

Retention: rows older than the configured retention (at least 90 days) are deleted by
:func:`purge_expired` (the projections worker runs it periodically). The event store keeps
every event, so ``flowledger audit verify`` and a rebuild can always recompute any row.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar, Final

from sqlalchemy import Engine, delete, select

from flowledger.domain.redaction import redact
from flowledger.eventlog.store import (
    aggregate_type,
    event_data,
    event_type,
    is_internal,
    metadata_of,
    snake_case,
)
from flowledger.projections.projector import AppendOnlyProjection
from flowledger.projections.tables import audit_log

ACTIONS_BY_SUFFIX: Final = {
    "Registered": "create",
    "Created": "create",
    "Updated": "update",
    "Deleted": "delete",
    "Activated": "activate",
    "Deactivated": "deactivate",
    "Issued": "create",
    "Revoked": "revoke",
}
MIN_RETENTION_DAYS: Final = 90
"""The spec's minimum: audit rows are kept at least this long."""


def audit_action(public_event_type: str, entity_type: str) -> str:
    """``AgentRegistered`` is ``create``; ``RunCancelled`` (no spec word) is ``cancelled``."""
    suffix = public_event_type.removeprefix(_camel(entity_type))
    if suffix in ACTIONS_BY_SUFFIX:
        return ACTIONS_BY_SUFFIX[suffix]
    return snake_case(suffix or public_event_type)


def audit_row(event: Any, position: int) -> dict[str, Any]:
    """The audit row an event makes; also what ``audit verify`` recomputes."""
    topic = f"{type(event).__module__}:{type(event).__qualname__}"
    entity = aggregate_type(topic)
    name = event_type(topic)
    meta = metadata_of(event)
    data = event_data(event)
    for field in getattr(event, "audit_omits", ()):  # derived data an event class leaves out
        data.pop(field, None)
    return {
        "position": position,
        "entity_type": entity,
        "entity_id": event.originator_id,
        "entity_version": event.originator_version,
        "action": audit_action(name, entity),
        "event_type": name,
        "actor": meta.actor,
        "correlation_id": meta.correlation_id or None,
        "changes": redact(data) or None,
        "occurred_at": event.timestamp,
    }


class AuditLogProjection(AppendOnlyProjection):
    name: ClassVar[str] = "audit_log"
    tables = (audit_log,)

    def wants(self, topic: str) -> bool:
        return not is_internal(topic)

    def row(self, event: Any, position: int) -> dict[str, Any]:
        return audit_row(event, position)


def retention_cutoff(now: datetime, retention_days: int | None) -> datetime | None:
    """Rows of events before this time may be deleted (None: keep every row)."""
    if retention_days is None:
        return None
    if retention_days < MIN_RETENTION_DAYS:
        raise ValueError(f"audit retention must be at least {MIN_RETENTION_DAYS} days")
    return now - timedelta(days=retention_days)


def purge_expired(engine: Engine, cutoff: datetime, batch_size: int = 5_000) -> int:
    """Delete audit rows of events that happened before ``cutoff``, a batch per transaction
    (short locks); the number deleted."""
    deleted = 0
    while True:
        with engine.begin() as conn:
            oldest = (
                select(audit_log.c.position)
                .where(audit_log.c.occurred_at < cutoff)
                .order_by(audit_log.c.position)
                .limit(batch_size)
                .scalar_subquery()
            )
            count = conn.execute(delete(audit_log).where(audit_log.c.position.in_(oldest)))
        deleted += count.rowcount
        if count.rowcount < batch_size:
            return deleted


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))
