"""Commands on runs from users: request (execute), cancel, retry.

The executor's commands are the Run aggregate's own methods, called on the copy it drives
(see flowledger/executor/driver.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from flowledger.commands import Outcome
from flowledger.commands.agents import find_agent_by_name
from flowledger.commands.names import holder_of
from flowledger.domain.agents import Agent
from flowledger.domain.errors import Conflict, FieldProblem, InvalidInput
from flowledger.domain.names import NameClaim
from flowledger.domain.plans import WorkflowPlan
from flowledger.domain.runs import AgentBinding, RetryPlan, Run
from flowledger.domain.workflows import Workflow
from flowledger.eventlog.store import EventMetadata, EventStore

IDEMPOTENCY_KIND = "run-request"


class RequestRun(msgspec.Struct, frozen=True, kw_only=True):
    workflow_id: UUID
    input_data: dict[str, Any]
    version: int | None = None
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    idempotency_key: str | None = None


class CancelRun(msgspec.Struct, frozen=True, kw_only=True):
    run_id: UUID
    reason: str = "cancelled by request"


class RetryRun(msgspec.Struct, frozen=True, kw_only=True):
    run_id: UUID


@dataclass(frozen=True)
class RequestedRun(Outcome[Run]):
    replayed: bool = False
    """True when the idempotency key named an earlier request: no new run was started."""


def request_run(store: EventStore, command: RequestRun, meta: EventMetadata) -> RequestedRun:
    if command.idempotency_key is not None:
        earlier = _run_for_key(store, command.workflow_id, command.idempotency_key)
        if earlier is not None:
            return RequestedRun(earlier, None, replayed=True)
    workflow, version, plan = _runnable(store, command.workflow_id, command.version)
    variables = _variables(plan, command.variables)
    _check_input(plan, command.input_data)
    run = Run(
        workflow_id=workflow.id,
        workflow_name=workflow.name,
        workflow_version=version,
        plan=plan.to_dict(),
        agents={name: b.to_dict() for name, b in pin_agents(store, plan).items()},
        input_data=command.input_data,
        variables=variables,
        triggered_by=meta.actor,
        idempotency_key=command.idempotency_key,
    )
    key_claim = None
    if command.idempotency_key is not None:
        key_claim = NameClaim(
            kind=_key_kind(command.workflow_id), name=command.idempotency_key, owner_id=run.id
        )
    try:
        position = store.record(run, key_claim, metadata=meta)
    except Conflict:
        if command.idempotency_key is None:
            raise
        earlier = _run_for_key(store, command.workflow_id, command.idempotency_key)
        if earlier is None:
            raise
        return RequestedRun(earlier, None, replayed=True)
    return RequestedRun(run, position)


def plan_to_try(
    store: EventStore,
    workflow_id: UUID,
    version: int | None,
    input_data: Mapping[str, Any],
    variables: Mapping[str, Any],
) -> tuple[int, WorkflowPlan, dict[str, Any]]:
    """What a dry run needs, checked as a real request would be: the version, its plan and the
    variables (defaults with overrides). Records nothing."""
    _, chosen, plan = _runnable(store, workflow_id, version)
    resolved = _variables(plan, variables)
    _check_input(plan, input_data)
    return chosen, plan, resolved


def _runnable(
    store: EventStore, workflow_id: UUID, version: int | None
) -> tuple[Workflow, int, WorkflowPlan]:
    workflow = store.get(Workflow, workflow_id, kind="workflow")
    if workflow.status != "active":
        raise Conflict(f"workflow {workflow.name!r} is {workflow.status} and cannot run")
    chosen = version or workflow.current_version
    return workflow, chosen, workflow.plan_of(chosen)


def cancel_run(store: EventStore, command: CancelRun, meta: EventMetadata) -> Outcome[Run]:
    run = store.get(Run, command.run_id, kind="run")
    run.cancel(command.reason)
    return Outcome(run, store.record(run, metadata=meta))


def retry_run(store: EventStore, command: RetryRun, meta: EventMetadata) -> Outcome[Run]:
    run = store.get(Run, command.run_id, kind="run")
    run.retry()
    return Outcome(run, store.record(run, metadata=meta))


def preview_retry(store: EventStore, run_id: UUID) -> RetryPlan:
    """What :func:`retry_run` would do to the run now, decided by the same rule on the same
    aggregate; records nothing."""
    return store.get(Run, run_id, kind="run").retry_plan()


def agent_statuses(store: EventStore, agent_ids: Iterable[UUID]) -> dict[UUID, str | None]:
    """Each agent's status now (None: no such agent)."""
    found = {agent_id: store.find(Agent, agent_id) for agent_id in agent_ids}
    return {agent_id: agent.status if agent else None for agent_id, agent in found.items()}


def pin_agents(store: EventStore, plan: WorkflowPlan) -> dict[str, AgentBinding]:
    """Each agent the plan names, as it is now; every one must exist and be active."""
    bindings: dict[str, AgentBinding] = {}
    for name in dict.fromkeys(step.agent_name for step in plan.steps):
        agent = find_agent_by_name(store, name)
        if agent is None:
            raise Conflict(f"agent {name!r} no longer exists; the workflow cannot run")
        if agent.status != "active":
            raise Conflict(f"agent {name!r} is {agent.status}; the workflow cannot run")
        bindings[name] = AgentBinding(agent.id, agent.url, agent.timeout_ms, agent.retry_config)
    return bindings


def _variables(plan: WorkflowPlan, overrides: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(plan.variables))
    if unknown:
        raise InvalidInput(
            [
                FieldProblem(f"variables.{name}", "is not a variable of this workflow")
                for name in unknown
            ]
        )
    return {**plan.variables, **overrides}


def _check_input(plan: WorkflowPlan, input_data: Mapping[str, Any]) -> None:
    if plan.input_schema is None:
        return
    validator_class = validator_for(plan.input_schema, default=Draft202012Validator)
    validator = validator_class(plan.input_schema)
    problems = [
        FieldProblem(
            ".".join(["input_data", *(str(p) for p in error.absolute_path)]), error.message
        )
        for error in sorted(validator.iter_errors(input_data), key=lambda e: list(e.absolute_path))
    ]
    if problems:
        raise InvalidInput(problems, detail="input_data does not match the workflow's input schema")


def _key_kind(workflow_id: UUID) -> str:
    return f"{IDEMPOTENCY_KIND}:{workflow_id}"


def _run_for_key(store: EventStore, workflow_id: UUID, key: str) -> Run | None:
    return holder_of(store, Run, _key_kind(workflow_id), key)
