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

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, ClassVar, Final, cast

import msgspec
from sqlalchemy import Engine, delete, select

from flowledger.eventlog.envelope import data_json
from flowledger.eventlog.store import (
    aggregate_type,
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


COLUMNS: Final = (
    "position",
    "entity_type",
    "entity_id",
    "entity_version",
    "action",
    "event_type",
    "actor",
    "correlation_id",
    "changes",
    "occurred_at",
)
_decoder = msgspec.json.Decoder()


@dataclass(frozen=True)
class _Kind:
    """What the audit log says of every event of one class."""

    entity: str
    event_type: str
    action: str
    omits: tuple[str, ...]


@lru_cache(maxsize=512)
def _kind(event_class: type[Any]) -> _Kind:
    topic = f"{event_class.__module__}:{event_class.__qualname__}"
    entity, name = aggregate_type(topic), event_type(topic)
    # derived data an event class leaves out (a workflow version's plan)
    omits = tuple(getattr(event_class, "audit_omits", ()))
    return _Kind(entity, name, audit_action(name, entity), omits)


def audit_record(event: Any, position: int) -> tuple[Any, ...]:
    """The audit row an event makes, its values in :data:`COLUMNS` order, ``changes`` as JSON
    text (what the projection copies in)."""
    kind = _kind(cast(Hashable, type(event)))
    meta = metadata_of(event)
    changes = data_json(event, kind.omits)
    return (
        position,
        kind.entity,
        event.originator_id,
        event.originator_version,
        kind.action,
        kind.event_type,
        meta.actor,
        meta.correlation_id or None,
        None if changes == b"{}" else changes.decode(),
        event.timestamp,
    )


def audit_row(event: Any, position: int) -> dict[str, Any]:
    """The audit row an event makes, ``changes`` as an object; also what ``audit verify``
    recomputes."""
    row = dict(zip(COLUMNS, audit_record(event, position), strict=True))
    if row["changes"] is not None:
        row["changes"] = _decoder.decode(row["changes"])
    return row


class AuditLogProjection(AppendOnlyProjection):
    name: ClassVar[str] = "audit_log"
    tables = (audit_log,)
    columns = COLUMNS

    def wants(self, topic: str) -> bool:
        return not is_internal(topic)

    def record(self, event: Any, position: int) -> tuple[Any, ...]:
        return audit_record(event, position)


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
