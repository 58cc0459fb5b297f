"""The event store on PostgreSQL: metadata on every event, one global order, and optimistic
concurrency that turns a conflicting write into a conflict instead of a lost update."""

from __future__ import annotations

import pytest

from flowledger.domain.agents import Agent
from flowledger.domain.errors import ConcurrentModification
from flowledger.eventlog.store import (
    EventMetadata,
    EventStore,
    aggregate_type,
    event_type,
    metadata_of,
)
from flowledger.runtime.process import Runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def store(runtime: Runtime) -> EventStore:
    return runtime.store


def test_every_event_carries_who_which_request_and_when(store: EventStore) -> None:
    agent = Agent.register(name="echo", url="http://echo")
    meta = EventMetadata(
        actor="key:ops",
        correlation_id="req-1",
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )
    position = store.record(agent, metadata=meta)

    [stored] = store.read(None, 10)
    event = store.decode(stored)
    assert stored.id == position
    assert metadata_of(event) == meta
    assert event.timestamp.tzinfo is not None
    assert (event_type(event), aggregate_type(event)) == ("AgentRegistered", "agent")


def test_positions_grow_in_the_order_commands_committed(store: EventStore) -> None:
    meta = EventMetadata.system()
    positions = [
        store.record(Agent.register(name=f"a{i}", url="http://a"), metadata=meta) for i in range(5)
    ]
    assert positions == sorted(positions)
    assert [n.id for n in store.read(None, 100)] == positions
    assert [n.id for n in store.read(positions[1], 2)] == positions[2:4]
    assert store.head() == positions[-1]


def test_the_second_of_two_concurrent_writers_gets_a_conflict(store: EventStore) -> None:
    agent = Agent.register(name="echo", url="http://echo")
    store.record(agent, metadata=EventMetadata.system())

    first = store.get(Agent, agent.id)
    second = store.get(Agent, agent.id)
    first.update({"timeout_ms": 2000})
    second.update({"timeout_ms": 3000})
    store.record(first, metadata=EventMetadata.system())
    with pytest.raises(ConcurrentModification):
        store.record(second, metadata=EventMetadata.system())

    assert store.get(Agent, agent.id).timeout_ms == 2000
