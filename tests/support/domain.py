"""Given/when/then for aggregates: build an aggregate from past events, run one command,
and look at the events it records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from eventsourcing.domain import Aggregate

A = TypeVar("A", bound=Aggregate)


def replay(events: Sequence[Any]) -> Any:
    """The aggregate the events describe, as the repository would rebuild it."""
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def history(aggregate: A) -> list[Any]:
    """Collect (and clear) the aggregate's pending events."""
    return list(aggregate.collect_events())


def given(events: Sequence[Any]) -> Any:
    return replay(events)


def when(aggregate: A, command: Callable[[A], object]) -> list[Any]:
    """Run a command on the aggregate; the events it recorded."""
    command(aggregate)
    return history(aggregate)


def names(events: Sequence[Any]) -> list[str]:
    return [type(event).__qualname__ for event in events]
