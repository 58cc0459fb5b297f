"""Integrations: external workflow services whose workflows become agents (n8n).

An :class:`Integration` is one service instance (kind and base URL; its id is derived from
both, so syncing the same instance again updates the same integration). Its credentials are
stored to call it again and never shown (``api_key`` is masked wherever event data is shown).

A sync reads the instance's workflows (as :class:`ExternalWorkflow` values the caller fetched)
and decides, workflow by workflow, what becomes of its agent (:func:`plan_sync`): callable
workflows (active, started by a webhook that takes a POST) are registered or updated as agents
of kind ``n8n``; agents of workflows that are gone or no longer callable are deactivated; the
others are reported as errors with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from flowledger.domain.agents import url_problems
from flowledger.domain.errors import FieldProblem, raise_if_any

IntegrationKind = Literal["n8n"]
INTEGRATION_NAMESPACE: Final = uuid5(NAMESPACE_URL, "https://flowledger.dev/integrations")
AGENT_NAME_PREFIX: Final = "n8n:"


def integration_id(kind: str, url: str) -> UUID:
    return uuid5(INTEGRATION_NAMESPACE, f"{kind}:{normal_url(url)}")


def normal_url(url: str) -> str:
    return url.rstrip("/")


@dataclass(frozen=True)
class ExternalWorkflow:
    """A workflow of the external service, as the sync read it."""

    id: str
    name: str
    active: bool
    webhook_url: str | None
    """Where the workflow's webhook takes a POST; None when it has no such trigger."""
    problem: str | None = None
    """Why it cannot be called, when it cannot (no webhook, not active, another method...)."""
    description: str | None = None

    @property
    def callable(self) -> bool:
        return self.problem is None and self.webhook_url is not None and self.active


@dataclass(frozen=True)
class SyncPlan:
    """What a sync changes: agents to register or update, agents to deactivate, errors."""

    register: list[ExternalWorkflow] = field(default_factory=list)
    update: list[tuple[UUID, ExternalWorkflow]] = field(default_factory=list)
    deactivate: list[tuple[str, UUID, str]] = field(default_factory=list)
    """(external id, agent id, reason)."""
    errors: list[dict[str, str]] = field(default_factory=list)


def agent_name_for(workflow: ExternalWorkflow) -> str:
    return f"{AGENT_NAME_PREFIX}{workflow.name}"[:255]


def plan_sync(
    known: Mapping[str, UUID], fetched: Iterable[ExternalWorkflow], only: Iterable[str] | None
) -> SyncPlan:
    """Decide a sync. ``known``: external workflow id → agent id of earlier syncs; ``only``:
    the workflow ids asked for (None: all of them, and agents of vanished ones are
    deactivated)."""
    plan = SyncPlan()
    seen: set[str] = set()
    for workflow in fetched:
        seen.add(workflow.id)
        agent = known.get(workflow.id)
        if workflow.callable:
            if agent is None:
                plan.register.append(workflow)
            else:
                plan.update.append((agent, workflow))
            continue
        reason = workflow.problem or "it is not active"
        plan.errors.append({"workflow_id": workflow.id, "name": workflow.name, "reason": reason})
        if agent is not None:
            plan.deactivate.append((workflow.id, agent, reason))
    wanted = None if only is None else set(only)
    for external_id in sorted(set(known) - seen):
        if wanted is None or external_id in wanted:
            plan.deactivate.append((external_id, known[external_id], "it no longer exists"))
    for external_id in sorted((wanted or set()) - seen - set(known)):
        plan.errors.append(
            {"workflow_id": external_id, "name": "", "reason": "no such workflow in n8n"}
        )
    return plan


class Integration(Aggregate):
    """One external service instance."""

    class Connected(Aggregate.Created):
        kind: str
        url: str
        api_key: str
        """Stored to call the service again; masked wherever event data is shown."""

    class CredentialsChanged(Aggregate.Event):
        api_key: str

    class Synced(Aggregate.Event):
        synced_count: int
        agents: dict[str, str]
        """External workflow id → agent id, for every workflow synced so far."""
        errors: list[dict[str, str]]
        deactivated: list[str]

    class SyncFailed(Aggregate.Event):
        error: str

    @staticmethod
    def create_id(kind: str, url: str, **_: Any) -> UUID:
        return integration_id(kind, url)

    @classmethod
    def connect(cls, *, kind: str, url: str, api_key: str) -> Integration:
        problems = url_problems(url, "n8n_url")
        if not api_key or len(api_key) > 4096:
            problems.append(FieldProblem("api_key", "must be a string of 1 to 4096 characters"))
        raise_if_any(problems)
        return cls(kind=kind, url=normal_url(url), api_key=api_key)

    @event(Connected)
    def __init__(self, kind: str, url: str, api_key: str) -> None:
        self.kind = kind
        self.url = url
        self.api_key = api_key
        self.agents: dict[str, str] = {}
        self.status = "inactive"
        self.last_error: str | None = None

    def use_credentials(self, api_key: str) -> None:
        if api_key != self.api_key:
            self._change_credentials(api_key)

    @event(CredentialsChanged)
    def _change_credentials(self, api_key: str) -> None:
        self.api_key = api_key

    def record_sync(
        self,
        synced: Mapping[str, UUID],
        errors: list[dict[str, str]],
        deactivated: Iterable[str],
    ) -> None:
        gone = list(deactivated)
        agents = {**self.agents, **{k: str(v) for k, v in synced.items()}}
        self._synced(len(synced), agents, errors, gone)

    @event(Synced)
    def _synced(
        self,
        synced_count: int,
        agents: dict[str, str],
        errors: list[dict[str, str]],
        deactivated: list[str],
    ) -> None:
        self.agents = agents
        self.status = "active"
        self.last_error = None

    def record_failure(self, error: str) -> None:
        self._sync_failed(error)

    @event(SyncFailed)
    def _sync_failed(self, error: str) -> None:
        self.status = "error"
        self.last_error = error

    def known_agents(self) -> dict[str, UUID]:
        return {external: UUID(agent) for external, agent in self.agents.items()}
