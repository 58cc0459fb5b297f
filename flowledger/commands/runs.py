"""Commands on runs from users: request (execute), cancel, retry, pause, resume, signal.

The executor's commands are the Run aggregate's own methods, called on the copy it drives
(see flowledger/executor/driver.py); it requests child runs (sub-workflows) with
:func:`request_run` too, naming their parent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.domain import Aggregate

from flowledger.commands import Outcome
from flowledger.commands.agents import find_agent_by_name
from flowledger.commands.names import holder_of
from flowledger.domain.agents import Agent
from flowledger.domain.errors import (
    ConcurrentModification,
    Conflict,
    DomainError,
    FieldProblem,
    InvalidInput,
    NotFound,
)
from flowledger.domain.limits import RunLimits
from flowledger.domain.names import NameClaim
from flowledger.domain.plans import WorkflowPlan
from flowledger.domain.runs import AgentBinding, RetryPlan, Run
from flowledger.domain.step_kinds import data_problems
from flowledger.domain.workflows import Workflow
from flowledger.eventlog.store import EventMetadata, EventStore, NotCached
from flowledger.eventlog.writer import StaleRead

IDEMPOTENCY_KIND = "run-request"
WORKFLOW_KIND = "workflow"
RETRIES_ON_CONFLICT = 5


class ParentStep(msgspec.Struct, frozen=True, kw_only=True):
    """The step instance of another run a child run is requested for; the child's id follows
    from it (:func:`~flowledger.domain.runs.child_run_id`)."""

    run_id: UUID
    step_id: str
    depth: int
    """How many parent runs the child has (the parent's depth + 1)."""


class RequestRun(msgspec.Struct, frozen=True, kw_only=True):
    workflow_id: UUID
    input_data: dict[str, Any]
    version: int | None = None
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    idempotency_key: str | None = None
    limits: RunLimits = msgspec.field(default_factory=RunLimits)
    """The limits the run keeps to (from the settings of the process that requests it)."""
    parent: ParentStep | None = None
    """The step of another run this run is a child of (a sub-workflow)."""


class PauseRun(msgspec.Struct, frozen=True, kw_only=True):
    run_id: UUID
    reason: str = "paused by request"


class ResumeRun(msgspec.Struct, frozen=True, kw_only=True):
    run_id: UUID


class SignalRun(msgspec.Struct, frozen=True, kw_only=True):
    run_id: UUID
    signal: str
    data: Any = None
    step_id: str | None = None
    """The waiting step instance to deliver to (default: the one waiting longest)."""


@dataclass(frozen=True)
class Signalled(Outcome[Run]):
    step_id: str = ""
    """The step instance the signal was delivered to."""


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
    """The workflow, its agents and the idempotency key are read from the process's cache and
    checked against the store when the run is recorded (:meth:`EventStore.decide`)."""
    return store.decide(lambda: _request_run(store, command, meta))


async def request_run_from_cache(
    store: EventStore, command: RequestRun, meta: EventMetadata
) -> RequestedRun | None:
    """:func:`request_run` for the event loop when the cache holds all it reads (the workflow,
    its agents and their names): decided from the cache, and recorded with those reads
    checked under the append lock as :meth:`EventStore.decide` checks them, without blocking
    the loop. None, having recorded nothing, when the cache cannot settle it alone; then
    :func:`request_run` (in a worker thread) does: an idempotency key (its claim is read from
    the store), a read not cached, a refusal (it stands only once what it read is found
    current), a read that moved on before the commit (decided again on the new state)."""
    if command.idempotency_key is not None:
        return None
    try:
        with store.deciding_from_cache() as reads:
            run, _ = new_run(store, command, meta)
    except (NotCached, DomainError):
        return None
    try:
        position = await store.record_async(run, metadata=meta, reads=reads, again_if_stale=False)
    except StaleRead:
        return None
    return RequestedRun(run, position)


def _request_run(store: EventStore, command: RequestRun, meta: EventMetadata) -> RequestedRun:
    if command.idempotency_key is not None:
        earlier = _run_for_key(store, command.workflow_id, command.idempotency_key)
        if earlier is not None:
            return RequestedRun(earlier, None, replayed=True)
    run, key_claim = new_run(store, command, meta)
    try:
        position = store.record(run, key_claim, metadata=meta)
    except Conflict:
        earlier = replayed_run(store, command)
        if earlier is None:
            raise
        return RequestedRun(earlier, None, replayed=True)
    return RequestedRun(run, position)


def new_run(
    store: EventStore, command: RequestRun, meta: EventMetadata
) -> tuple[Run, NameClaim | None]:
    """The run the command requests, and the claim on its idempotency key, to be recorded
    together (a second claim of the key conflicts: see :func:`replayed_run`). Records nothing;
    raises Conflict or InvalidInput when the workflow cannot run with this input."""
    workflow, version, plan = _runnable(store, command.workflow_id, command.version)
    variables = _variables(plan, command.variables)
    _check_input(plan, command.input_data)
    parent = command.parent
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
        limits=command.limits.to_dict(),
        parent_run_id=parent.run_id if parent else None,
        parent_step_id=parent.step_id if parent else None,
        depth=parent.depth if parent else 0,
    )
    key_claim = None
    if command.idempotency_key is not None:
        key_claim = NameClaim(
            kind=_key_kind(command.workflow_id), name=command.idempotency_key, owner_id=run.id
        )
    return run, key_claim


def replayed_run(store: EventStore, command: RequestRun) -> Run | None:
    """The run an earlier request with the command's idempotency key started, if any."""
    if command.idempotency_key is None:
        return None
    return _run_for_key(store, command.workflow_id, command.idempotency_key)


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
    workflow = store.get(Workflow, workflow_id, kind="workflow", copy=False)
    if workflow.status != "active":
        raise Conflict(f"workflow {workflow.name!r} is {workflow.status} and cannot run")
    chosen = version or workflow.current_version
    return workflow, chosen, workflow.plan_of(chosen)


def workflow_named(store: EventStore, name: str) -> Workflow:
    """The live workflow holding ``name`` (NotFound if none)."""
    workflow = holder_of(store, Workflow, WORKFLOW_KIND, name)
    if workflow is None:
        raise NotFound(f"no workflow named {name!r} exists")
    return workflow


def cancel_run(store: EventStore, command: CancelRun, meta: EventMetadata) -> Outcome[Run]:
    """Cancel the run, and with it every child run its steps are following (in the same
    append: a cancelled parent never leaves a child running)."""

    def cancel(run: Run) -> list[Aggregate]:
        run.cancel(command.reason)
        return _cancelled_children(store, run, command.reason)

    return _on_newest(store, command.run_id, cancel, meta)


def _on_newest(
    store: EventStore,
    run_id: UUID,
    change: Callable[[Run], Sequence[Aggregate]],
    meta: EventMetadata,
) -> Outcome[Run]:
    """Apply a user's command to the newest state of a run and record it (with the other
    aggregates ``change`` returns). The executor appends to the runs it drives all the time:
    when it did so between our read and our write, the command is decided again on the new
    state (its guards too), a few times, before the conflict is the caller's (409)."""
    for attempt in range(1, RETRIES_ON_CONFLICT + 1):
        run = store.get(Run, run_id, kind="run")
        others = change(run)
        try:
            return Outcome(run, store.record(run, *others, metadata=meta))
        except ConcurrentModification:
            if attempt == RETRIES_ON_CONFLICT:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _alone(action: Callable[[Run], object]) -> Callable[[Run], list[Aggregate]]:
    """A change of the run alone (no other aggregate is recorded with it)."""

    def change(run: Run) -> list[Aggregate]:
        action(run)
        return []

    return change


def _cancelled_children(store: EventStore, run: Run, reason: str) -> list[Aggregate]:
    """The unfinished child runs of ``run``'s steps (and theirs), cancelled."""
    cancelled: list[Aggregate] = []
    pending = [run]
    while pending:
        parent = pending.pop()
        for child_id in parent.children_cut_off():
            child = store.find(Run, child_id)
            if child is not None and not child.is_finished:
                child.cancel(f"its parent run {run.id} was cancelled: {reason}")
                cancelled.append(child)
                pending.append(child)
    return cancelled


def pause_run(store: EventStore, command: PauseRun, meta: EventMetadata) -> Outcome[Run]:
    return _on_newest(store, command.run_id, _alone(lambda run: run.pause(command.reason)), meta)


def resume_run(store: EventStore, command: ResumeRun, meta: EventMetadata) -> Outcome[Run]:
    return _on_newest(store, command.run_id, _alone(Run.resume), meta)


def signal_run(store: EventStore, command: SignalRun, meta: EventMetadata) -> Signalled:
    delivered: list[str] = []

    def deliver(run: Run) -> list[Aggregate]:
        delivered[:] = [run.receive_signal(command.signal, command.data, command.step_id)]
        return []

    outcome = _on_newest(store, command.run_id, deliver, meta)
    return Signalled(outcome.aggregate, outcome.position, step_id=delivered[0])


def retry_run(store: EventStore, command: RetryRun, meta: EventMetadata) -> Outcome[Run]:
    return _on_newest(store, command.run_id, _alone(Run.retry), meta)


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
    for name in plan.agent_names():
        agent = find_agent_by_name(store, name)
        if agent is None:
            raise Conflict(f"agent {name!r} no longer exists; the workflow cannot run")
        if agent.status != "active":
            raise Conflict(f"agent {name!r} is {agent.status}; the workflow cannot run")
        bindings[name] = AgentBinding(
            agent.id, agent.url, agent.timeout_ms, agent.retry_config, agent.kind
        )
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
    problems = data_problems(plan.input_schema, input_data, "input_data")
    if problems:
        raise InvalidInput(problems, detail="input_data does not match the workflow's input schema")


def _key_kind(workflow_id: UUID) -> str:
    return f"{IDEMPOTENCY_KIND}:{workflow_id}"


def _run_for_key(store: EventStore, workflow_id: UUID, key: str) -> Run | None:
    return holder_of(store, Run, _key_kind(workflow_id), key)
