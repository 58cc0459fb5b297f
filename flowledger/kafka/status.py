"""How far the Kafka relay is behind, and why it last retried or started over. Shown by
``/health/ready`` and ``flowledger events status``."""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import Connection, select

from flowledger.eventlog.store import APPLICATION_NAME
from flowledger.projections.tables import relay_state, relay_tracking


class RelayStatus(msgspec.Struct, omit_defaults=True):
    position: int
    """The last event the broker acknowledged."""
    lag_events: int
    """Events recorded but not yet published (positions, so an upper bound)."""
    cluster_id: str | None = None
    last_published_at: datetime | None = None
    last_error: str | None = None
    """Why the relay is retrying, why it started over, or what the broker refuses (naming the
    setting that changes it); cleared by the next publish."""
    leader: str | None = None
    """The relay process that publishes (``host:pid``); the others stand by."""


def relay_status(conn: Connection, head: int) -> RelayStatus | None:
    """The relay's progress, or None when it never ran (no Kafka configured)."""
    position = conn.execute(
        select(relay_tracking.c.notification_id).where(
            relay_tracking.c.application_name == APPLICATION_NAME
        )
    ).scalar_one_or_none()
    state = conn.execute(select(relay_state)).first()
    if state is None and position is None:
        return None
    reached = int(position or 0)
    return RelayStatus(
        position=reached,
        lag_events=max(head - reached, 0),
        cluster_id=state.cluster_id if state else None,
        last_published_at=state.last_published_at if state else None,
        last_error=state.last_error if state else None,
        leader=state.leader if state else None,
    )
