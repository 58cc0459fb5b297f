"""Commands on integrations: record a sync of an n8n instance's workflows.

The caller reads the instance (``flowledger.n8n.api``) and hands over what it found, or why it
could not; the sync is recorded in one append: the integration's ``Synced`` (or ``SyncFailed``),
the agents it registers (with their name claims), updates, activates again or deactivates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import msgspec
from eventsourcing.domain import Aggregate

from flowledger.commands import Outcome
from flowledger.commands.agents import KIND as AGENT_KIND
from flowledger.commands.names import claim_name
from flowledger.domain.agents import Agent
from flowledger.domain.errors import NameTaken
from flowledger.domain.integrations import (
    ExternalWorkflow,
    Integration,
    agent_name_for,
    integration_id,
    plan_sync,
)
from flowledger.eventlog.store import EventMetadata, EventStore

N8N = "n8n"


class SyncIntegration(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    api_key: str
    workflow_ids: list[str] | None = None
    fetched: list[ExternalWorkflow] = msgspec.field(default_factory=list)
    fetch_error: str | None = None
    """Why the instance could not be read; then nothing but the failure is recorded."""


@dataclass(frozen=True)
class Synced(Outcome[Integration]):
    synced_count: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)


def sync_integration(store: EventStore, command: SyncIntegration, meta: EventMetadata) -> Synced:
    integration = store.find(Integration, integration_id(N8N, command.url))
    if integration is None:
        integration = Integration.connect(kind=N8N, url=command.url, api_key=command.api_key)
    integration.use_credentials(command.api_key)
    if command.fetch_error is not None:
        integration.record_failure(command.fetch_error)
        error = {"workflow_id": "", "name": "", "reason": command.fetch_error}
        return Synced(integration, store.record(integration, metadata=meta), 0, [error])
    plan = plan_sync(integration.known_agents(), command.fetched, command.workflow_ids)
    changed: list[Aggregate] = []
    synced: dict[str, UUID] = {}
    errors = list(plan.errors)
    origin = {"integration_id": str(integration.id)}
    for workflow in plan.register:
        agent = _register(store, workflow, origin, changed, errors)
        if agent is not None:
            synced[workflow.id] = agent
    for agent_id, workflow in plan.update:
        existing = store.find(Agent, agent_id)
        if existing is None or existing.is_deleted:  # deleted by hand: register it again
            agent = _register(store, workflow, origin, changed, errors)
            if agent is not None:
                synced[workflow.id] = agent
            continue
        existing.update({"url": workflow.webhook_url})
        existing.activate()
        changed.append(existing)
        synced[workflow.id] = existing.id
    deactivated = []
    for external_id, agent_id, _reason in plan.deactivate:
        existing = store.find(Agent, agent_id)
        if existing is not None and not existing.is_deleted:
            existing.deactivate()
            changed.append(existing)
            deactivated.append(external_id)
    integration.record_sync(synced, errors, deactivated)
    position = store.record(integration, *changed, metadata=meta)
    return Synced(integration, position, len(synced), errors)


def _register(
    store: EventStore,
    workflow: ExternalWorkflow,
    origin: dict[str, str],
    changed: list[Aggregate],
    errors: list[dict[str, str]],
) -> UUID | None:
    name = agent_name_for(workflow)
    assert workflow.webhook_url is not None
    agent = Agent.register(
        name=name,
        url=workflow.webhook_url,
        description=f"n8n workflow {workflow.name!r} ({workflow.id})",
        kind="n8n",
        origin={**origin, "workflow_id": workflow.id},
    )
    try:
        claim = claim_name(store, AGENT_KIND, name, agent.id)
    except NameTaken:
        reason = f"another agent is named {name!r}"
        errors.append({"workflow_id": workflow.id, "name": workflow.name, "reason": reason})
        return None
    changed += [agent, claim]
    return agent.id
