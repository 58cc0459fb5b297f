"""Commands on workflows: create, update (a new version, description, status), delete."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import msgspec

from flowledger.commands import Outcome
from flowledger.commands.agents import find_agent_by_name
from flowledger.commands.names import holder_of, record_claiming_name, record_releasing_name
from flowledger.commands.triggers import triggers_of
from flowledger.domain.definitions import agent_names, workflow_names
from flowledger.domain.lifecycle import SwitchedStatus
from flowledger.domain.limits import RunLimits
from flowledger.domain.triggering import Trigger
from flowledger.domain.workflows import Workflow
from flowledger.eventlog.store import EventMetadata, EventStore

KIND = "workflow"


class CreateWorkflow(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    definition: dict[str, Any]
    """See :mod:`flowledger.domain.definitions`."""
    description: str | None = None
    limits: RunLimits = msgspec.field(default_factory=RunLimits)
    """The limits runs will keep to (``MAX_LOOP_DEPTH`` bounds how deep loops nest)."""


class UpdateWorkflow(msgspec.Struct, frozen=True, kw_only=True):
    workflow_id: UUID
    changes: dict[str, Any]
    """``description`` and definition fields to replace (null removes an optional one)."""
    status: SwitchedStatus | None = None
    limits: RunLimits = msgspec.field(default_factory=RunLimits)


class DeleteWorkflow(msgspec.Struct, frozen=True, kw_only=True):
    workflow_id: UUID


def agent_statuses(store: EventStore, names: Iterable[str]) -> dict[str, str]:
    """The status of each live agent among ``names``; names with no live agent are left out."""
    return {name: agent.status for name in names if (agent := find_agent_by_name(store, name))}


def workflow_statuses(store: EventStore, names: Iterable[str]) -> dict[str, str]:
    """The status of each live workflow among ``names`` (those a definition's sub-workflow
    steps call); names with no live workflow are left out."""
    return {
        name: workflow.status
        for name in names
        if (workflow := holder_of(store, Workflow, KIND, name)) is not None
    }


def create_workflow(
    store: EventStore, command: CreateWorkflow, meta: EventMetadata
) -> Outcome[Workflow]:
    workflow = Workflow.create(
        name=command.name,
        description=command.description,
        definition=command.definition,
        agents=agent_statuses(store, agent_names(command.definition)),
        owner=meta.actor,
        workflows=workflow_statuses(store, workflow_names(command.definition)),
        limits=command.limits,
    )
    triggers = triggers_of(store, workflow)
    position = record_claiming_name(store, workflow, KIND, workflow.name, meta, triggers)
    return Outcome(workflow, position)


def update_workflow(
    store: EventStore, command: UpdateWorkflow, meta: EventMetadata
) -> Outcome[Workflow]:
    workflow = store.get(Workflow, command.workflow_id, kind=KIND)
    agents = agent_statuses(store, workflow.agents_to_check(command.changes))
    workflows = workflow_statuses(store, workflow.workflows_to_check(command.changes))
    workflow.update(command.changes, agents=agents, workflows=workflows, limits=command.limits)
    workflow.switch(command.status)
    return Outcome(workflow, store.record(workflow, *triggers_of(store, workflow), metadata=meta))


def delete_workflow(
    store: EventStore, command: DeleteWorkflow, meta: EventMetadata
) -> Outcome[Workflow]:
    workflow = store.get(Workflow, command.workflow_id, kind=KIND)
    workflow.delete()
    triggers = triggers_of(store, workflow)
    position = record_releasing_name(store, workflow, KIND, workflow.name, meta, triggers)
    return Outcome(workflow, position)


class AddWebhookTrigger(msgspec.Struct, frozen=True, kw_only=True):
    workflow_id: UUID
    trigger: dict[str, Any]
    """A webhook trigger as a definition holds it (with its ``path``)."""


def add_webhook_trigger(
    store: EventStore, command: AddWebhookTrigger, meta: EventMetadata
) -> Outcome[Trigger]:
    """Spec 003's ``POST /webhooks``: the workflow's next version has one more trigger."""
    workflow = store.get(Workflow, command.workflow_id, kind=KIND)
    triggers = [*(workflow.definition.get("triggers") or []), dict(command.trigger)]
    agents = agent_statuses(store, workflow.agents_to_check({"triggers": triggers}))
    workflow.update({"triggers": triggers}, agents=agents)
    changed = triggers_of(store, workflow)
    position = store.record(workflow, *changed, metadata=meta)
    key = str(command.trigger.get("id") or command.trigger["path"])
    trigger = next(t for t in changed if isinstance(t, Trigger) and t.key == key)
    return Outcome(trigger, position)
