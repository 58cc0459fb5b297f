"""``flowledger audit replay``: an entity's history from the event store, with its state after
each version (secrets masked), optionally only up to a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from flowledger.domain.errors import NotFound
from flowledger.domain.redaction import redact
from flowledger.eventlog.store import (
    EVENTS_TABLE,
    EventStore,
    aggregate_type,
    is_internal,
    metadata_of,
)
from flowledger.projections.audit import audit_row


@dataclass(frozen=True)
class VersionView:
    version: int
    position: int | None
    occurred_at: datetime
    event_type: str
    action: str
    actor: str
    correlation_id: str | None
    changes: Any
    state: dict[str, Any]
    """The entity after this version: its public attributes, secrets masked."""


def state_of(aggregate: Any) -> dict[str, Any]:
    public = {k: v for k, v in vars(aggregate).items() if not k.startswith("_")}
    fields = {"id": aggregate.id, "version": aggregate.version, **public}
    state: dict[str, Any] = redact(msgspec.to_builtins(fields))
    return state


def replay_entity(
    store: EventStore, entity_type: str, entity_id: UUID, until: datetime | None = None
) -> list[VersionView]:
    """Every version of the entity (up to ``until``), oldest first; NotFound when there is no
    such entity of that type."""
    events: list[Any] = list(store.events.get(entity_id))
    topic = f"{type(events[0]).__module__}:{type(events[0]).__qualname__}" if events else ""
    if not events or is_internal(topic) or aggregate_type(topic) != entity_type:
        raise NotFound(f"{entity_type} {entity_id} not found in the event store")
    positions = _positions(store, entity_id)
    history = []
    aggregate = None
    for event in events:
        if until is not None and event.timestamp > until:
            break
        aggregate = event.mutate(aggregate)
        row = audit_row(event, positions.get(event.originator_version, 0))
        history.append(
            VersionView(
                version=event.originator_version,
                position=positions.get(event.originator_version),
                occurred_at=event.timestamp,
                event_type=row["event_type"],
                action=row["action"],
                actor=metadata_of(event).actor,
                correlation_id=row["correlation_id"],
                changes=row["changes"],
                state=state_of(aggregate),
            )
        )
    return history


def _positions(store: EventStore, entity_id: UUID) -> dict[int, int]:
    """Each version's global position (the notification id of its stored event)."""
    with store.database.connect() as conn:
        rows = conn.execute(
            f"SELECT originator_version, notification_id FROM {EVENTS_TABLE} "  # noqa: S608
            "WHERE originator_id = %s",
            (entity_id,),
        ).fetchall()
    return {int(str(version)): int(str(position)) for version, position in rows}
