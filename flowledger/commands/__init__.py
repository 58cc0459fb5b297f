"""The write side: one short handler per command, over the event store.

A handler loads aggregates, calls one domain method, and appends the new events with the
caller's :class:`~flowledger.eventlog.store.EventMetadata`. It answers with an :class:`Outcome`:
the aggregate after the command and the position of its last event (for read-your-writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from eventsourcing.domain import Aggregate

A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class Outcome(Generic[A]):
    aggregate: A
    position: int | None
    """Global position of the last event appended; None when the command changed nothing."""
