"""Per-workflow grants in the access policy and in lists (ADR 0010).

The policy asks a rule per resource type once the role has allowed the permission (admins are
never asked): ``workflow`` routes name the workflow id, ``run`` routes the run id (its
workflow decides), ``workflow_grants`` routes (the grants and the owner) the workflow id, and
the global event stream names ``events``.

A decision on one workflow is taken on the workflow aggregate itself, read from the event
store: the truth, so a grant or a revocation holds on the very next request on every API
process, and a workflow its owner has just created is the owner's at once (no projection to
wait for). Lists cannot read every aggregate: they are filtered on the read tables
(``workflows.owner``, ``workflow_grants``), which follow within milliseconds; a caller who
must see its own change sends ``X-Flowledger-Min-Position``.

With ``FLOWLEDGER_WORKFLOW_GRANTS`` off (the default) the ``workflow``, ``run`` and ``events``
rules leave every decision to the role, and lists are not filtered; grants and the owner are
still recorded, and managed by the owner or an admin only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID

from litestar import Request
from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.domain.access import Permission, Principal
from flowledger.domain.grants import grant_name, permits
from flowledger.domain.runs import Run
from flowledger.domain.workflows import Workflow
from flowledger.http.consistency import wait_for_position
from flowledger.http.grants import queries
from flowledger.projections.tables import runs
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from flowledger.security.policy import AccessPolicy, Decision, ResourceRef
from flowledger.security.settings import SecuritySettings


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


async def _workflow(runtime: Runtime, workflow_id: UUID | None) -> Workflow | None:
    if workflow_id is None:
        return None
    return await asyncio.to_thread(partial(runtime.store.find, Workflow, workflow_id, copy=False))


async def _workflow_of_run(runtime: Runtime, run_id: UUID | None) -> UUID | None:
    """A run's workflow never changes: the runs table has it, or (a run so new that the
    projection has not seen it yet) the run aggregate."""
    if run_id is None:
        return None
    async with runtime.async_engine.connect() as conn:
        found = await queries.workflow_of_run(conn, run_id)
    if found is not None:
        return found
    run = await asyncio.to_thread(partial(runtime.store.find, Run, run_id, copy=False))
    return run.workflow_id if run is not None else None


def verdict(
    principal: Principal, permission: Permission, workflow: Workflow, via: str = ""
) -> Decision:
    """The decision on one workflow, for a principal whose role allows ``permission``."""
    label = f"workflow {workflow.id}"
    if permits(principal, permission, workflow.owner, workflow.grants):
        if workflow.owner == principal.actor:
            return Decision(True, f"owner of {label}")
        return Decision(True, f"{grant_name(permission)} grant on {label}")
    needed = grant_name(permission)
    if needed == "ownership":
        return Decision(False, f"Only the owner of {label} or an admin may change it{via}.")
    return Decision(False, f"No {needed} permission on {label}{via}.")


@dataclass(frozen=True)
class WorkflowAccess:
    """The grants' settings and their rules: one per app (``create_app``)."""

    enforced: bool = False
    """``FLOWLEDGER_WORKFLOW_GRANTS``."""
    wait_timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkflowAccess:
        return cls(
            enforced=SecuritySettings.from_settings(settings).workflow_grants,
            wait_timeout_s=settings.read_wait_timeout_s,
        )

    def policy(self) -> AccessPolicy:
        return AccessPolicy(
            {
                "workflow": WorkflowRule(self),
                "run": RunRule(self),
                "workflow_grants": GrantsRule(),
                "events": EventStreamRule(self),
            }
        )

    def visibility(self, request: Request[Any, Any, Any]) -> Visibility:
        """The ``visibility`` dependency: what the caller's lists may show."""
        user = request.scope.get("user")
        return Visibility(user if isinstance(user, Principal) else None, self)


@dataclass(frozen=True)
class WorkflowRule:
    """``can_view`` to read a workflow, ``can_execute`` to execute or test it, ownership to
    change it; when grants are enforced."""

    access: WorkflowAccess

    async def decide(
        self, principal: Principal, permission: Permission, resource: ResourceRef, runtime: Runtime
    ) -> Decision | None:
        if not self.access.enforced:
            return None
        workflow = await _workflow(runtime, _uuid(resource.id))
        return None if workflow is None else verdict(principal, permission, workflow)


@dataclass(frozen=True)
class RunRule:
    """A run's workflow decides: ``can_view`` to read the run, ``can_execute`` to cancel or
    retry it; when grants are enforced."""

    access: WorkflowAccess

    async def decide(
        self, principal: Principal, permission: Permission, resource: ResourceRef, runtime: Runtime
    ) -> Decision | None:
        if not self.access.enforced:
            return None
        workflow = await _workflow(runtime, await _workflow_of_run(runtime, _uuid(resource.id)))
        if workflow is None:
            return None
        return verdict(principal, permission, workflow, f" (run {resource.id} is one of its runs)")


@dataclass(frozen=True)
class GrantsRule:
    """A workflow's grants and owner are the owner's (and admins') to see and change, whether
    grants are enforced or not."""

    async def decide(
        self, principal: Principal, permission: Permission, resource: ResourceRef, runtime: Runtime
    ) -> Decision | None:
        workflow = await _workflow(runtime, _uuid(resource.id))
        if workflow is None:
            return None
        if workflow.owner == principal.actor:
            return Decision(True, f"owner of workflow {resource.id}")
        return Decision(
            False,
            f"Only the owner of workflow {resource.id} ({workflow.owner}) or an admin may see "
            "or change its grants and owner.",
        )


@dataclass(frozen=True)
class EventStreamRule:
    """The stream of every event carries every workflow's runs: when grants are enforced it is
    for admins, and others follow the runs they may view (``/runs/{id}/events/stream``)."""

    access: WorkflowAccess

    async def decide(
        self, principal: Principal, permission: Permission, resource: ResourceRef, runtime: Runtime
    ) -> Decision | None:
        if not self.access.enforced:
            return None
        return Decision(
            False,
            "Per-workflow grants are enforced: the stream of every event is for admins; "
            "follow a run you may view at /api/v1/runs/{run_id}/events/stream.",
        )


@dataclass(frozen=True)
class Visibility:
    """Which workflows, and so which runs, a caller's lists may show."""

    principal: Principal | None
    access: WorkflowAccess

    @property
    def filters(self) -> bool:
        return self.access.enforced and not (self.principal and self.principal.is_admin)

    def workflows(self) -> ColumnElement[bool] | None:
        """A condition on the ``workflows`` table; None: every workflow."""
        return queries.viewable(self.principal) if self.filters else None

    def runs(self) -> ColumnElement[bool] | None:
        """A condition on the ``runs`` table; None: every run."""
        if not self.filters:
            return None
        return runs.c.workflow_id.in_(queries.viewable_workflow_ids(self.principal))

    def executable_runs(self) -> ColumnElement[bool] | None:
        """A condition on the ``runs`` table: the runs the caller may cancel and retry; None:
        every run."""
        if not self.filters:
            return None
        return runs.c.workflow_id.in_(queries.executable_workflow_ids(self.principal))

    async def wait(self, conn: AsyncConnection, min_position: int | None) -> None:
        """Wait for what the filter reads to reach the position the caller has seen."""
        if self.filters:
            for projection in queries.ACCESS_PROJECTIONS:
                await wait_for_position(conn, projection, min_position, self.access.wait_timeout_s)
