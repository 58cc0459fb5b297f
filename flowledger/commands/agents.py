"""Commands on agents: register, update (including activate/deactivate), delete."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from flowledger.commands import Outcome
from flowledger.commands.names import holder_of, record_claiming_name, record_releasing_name
from flowledger.domain.agents import DEFAULT_TIMEOUT_MS, Agent
from flowledger.domain.lifecycle import SwitchedStatus
from flowledger.eventlog.store import EventMetadata, EventStore

KIND = "agent"


class RegisterAgent(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    url: str
    description: str | None = None
    auth_type: str = "none"
    auth_config: dict[str, str] | None = None
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    retry_config: dict[str, Any] | None = None


class UpdateAgent(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: UUID
    changes: dict[str, Any]
    status: SwitchedStatus | None = None


class DeleteAgent(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: UUID


def register_agent(
    store: EventStore, command: RegisterAgent, meta: EventMetadata
) -> Outcome[Agent]:
    agent = Agent.register(**msgspec.structs.asdict(command))
    return Outcome(agent, record_claiming_name(store, agent, KIND, agent.name, meta))


def update_agent(store: EventStore, command: UpdateAgent, meta: EventMetadata) -> Outcome[Agent]:
    agent = store.get(Agent, command.agent_id, kind=KIND)
    agent.update(command.changes)
    agent.switch(command.status)
    return Outcome(agent, store.record(agent, metadata=meta))


def delete_agent(store: EventStore, command: DeleteAgent, meta: EventMetadata) -> Outcome[Agent]:
    agent = store.get(Agent, command.agent_id, kind=KIND)
    agent.delete()
    return Outcome(agent, record_releasing_name(store, agent, KIND, agent.name, meta))


def find_agent_by_name(store: EventStore, name: str) -> Agent | None:
    """The live (not deleted) agent holding ``name``, read from the write side (for reading
    only)."""
    return holder_of(store, Agent, KIND, name)
