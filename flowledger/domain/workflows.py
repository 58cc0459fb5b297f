"""Workflows: named, versioned definitions whose steps call agents.

Creating a workflow makes version 1 of its definition; every change to the definition makes the
next version, holding the complete definition as written and the plan it normalises to. Earlier
versions stay readable and runnable (:meth:`Workflow.plan_of`). The description and the status
are not versioned: changing them makes no new version. Names are unique among workflows that
are not deleted; deleting is soft.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from eventsourcing.domain import Aggregate, event

from flowledger.domain.agents import description_problems, name_problems
from flowledger.domain.definitions import (
    DEFINITION_FIELDS,
    agent_names,
    stored_definition,
    validated_plan,
    workflow_names,
)
from flowledger.domain.errors import FieldProblem, NotFound, raise_if_any
from flowledger.domain.grants import (
    Access,
    access_problems,
    normal_principal,
    owner_problems,
    principal_problems,
)
from flowledger.domain.lifecycle import Switchable
from flowledger.domain.limits import RunLimits
from flowledger.domain.plans import WorkflowPlan

WorkflowStatus = Literal["active", "inactive", "deleted"]
UPDATABLE_FIELDS: Final = ("description", *DEFINITION_FIELDS)


@dataclass(frozen=True)
class WorkflowVersion:
    version: int
    definition: dict[str, Any]
    """As the user wrote it (fields that are set)."""
    plan: dict[str, Any]
    """``WorkflowPlan.to_dict()`` of the definition."""


class Workflow(Switchable, Aggregate):
    """A versioned workflow definition.

    Activated, deactivated (kept, but no new runs start) and (softly) deleted as
    :class:`Switchable` says: every version of a deleted workflow stays readable.
    """

    noun = "workflow"

    class Created(Aggregate.Created):
        name: str
        description: str | None
        definition: dict[str, Any]
        plan: dict[str, Any]
        owner: str
        """Who has every permission on the workflow: its creator."""
        audit_omits = ("plan", "owner")
        """Left out of the audit log: the plan is derived from the definition; the owner is
        the row's actor (and events older than the field get it only when read)."""
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Workflows created before owners were recorded are owned by their creator."""
            state["owner"] = (state.get("metadata") or {}).get("actor") or "unknown"

    class Updated(Aggregate.Event):
        """A new version of the definition."""

        version: int
        definition: dict[str, Any]
        plan: dict[str, Any]
        changes: dict[str, Any]
        """What this version changed from the one before (see :func:`version_changes`)."""
        audit_omits = ("plan",)

    class DescriptionChanged(Aggregate.Event):
        description: str | None
        previous: str | None

    class AccessGranted(Aggregate.Event):
        """The principal's grant on this workflow is now exactly this."""

        principal: str
        can_view: bool
        can_execute: bool

    class AccessRevoked(Aggregate.Event):
        principal: str

    class OwnerChanged(Aggregate.Event):
        owner: str
        previous: str

    @classmethod
    def create(
        cls,
        *,
        name: str,
        definition: Mapping[str, Any],
        agents: Mapping[str, str],
        owner: str,
        description: str | None = None,
        workflows: Mapping[str, str] | None = None,
        limits: RunLimits | None = None,
    ) -> Workflow:
        """Version 1 of a new workflow, owned by ``owner`` (its creator's actor). ``agents``
        maps the names of the registered agents the definition uses to their status (see
        :func:`agent_names`), ``workflows`` those of the workflows it calls
        (:func:`workflow_names`); ``limits`` bounds how deep maps and loops nest."""
        definition = stored_definition(definition)
        plan, problems = validated_plan(definition, agents, workflows, limits)
        raise_if_any(name_problems(name) + description_problems(description) + problems)
        assert plan is not None
        return cls(
            name=name,
            description=description,
            definition=definition,
            plan=plan.to_dict(),
            owner=owner,
        )

    @event(Created)
    def __init__(
        self,
        name: str,
        description: str | None,
        definition: dict[str, Any],
        plan: dict[str, Any],
        owner: str,
    ) -> None:
        self.name = name
        self.description = description
        self.owner = owner
        self.grants: dict[str, Access] = {}
        self.status: WorkflowStatus = "active"
        self.versions: dict[int, WorkflowVersion] = {1: WorkflowVersion(1, definition, plan)}
        self.current_version = 1

    @property
    def definition(self) -> dict[str, Any]:
        """The current version's definition."""
        return self.versions[self.current_version].definition

    def plan_of(self, version: int | None = None) -> WorkflowPlan:
        """The plan of a version (the current one by default): what a run of it executes."""
        chosen = self.current_version if version is None else version
        if chosen not in self.versions:
            raise NotFound(f"workflow {self.id} has no version {chosen}")
        # A version never changes, and a plan is immutable: parse it once per aggregate (an
        # aggregate read from the store's cache serves many run requests).
        parsed: dict[int, WorkflowPlan] = self.__dict__.setdefault("_parsed_plans", {})
        if chosen not in parsed:
            parsed[chosen] = WorkflowPlan.from_dict(self.versions[chosen].plan)
        return parsed[chosen]

    def agents_to_check(self, changes: Mapping[str, Any]) -> set[str]:
        """The agents whose status :meth:`update` needs for these changes."""
        if not any(field in changes for field in DEFINITION_FIELDS):
            return set()
        return agent_names({**self.definition, **changes})

    def workflows_to_check(self, changes: Mapping[str, Any]) -> set[str]:
        """The workflows whose status :meth:`update` needs for these changes."""
        if not any(field in changes for field in DEFINITION_FIELDS):
            return set()
        return workflow_names({**self.definition, **changes})

    def update(
        self,
        changes: Mapping[str, Any],
        agents: Mapping[str, str],
        workflows: Mapping[str, str] | None = None,
        limits: RunLimits | None = None,
    ) -> None:
        """Change the description and/or the definition.

        Definition fields given replace the current ones whole (``steps`` are never merged step
        by step; null removes an optional field); the others are kept. If the resulting
        definition differs from the current one it is validated (against ``agents``, as for
        :meth:`create`) and becomes the next version. Nothing is recorded when nothing changes.
        """
        self._refuse_if_deleted("change")
        problems = [
            FieldProblem(key, "is not an updatable field")
            for key in changes
            if key not in UPDATABLE_FIELDS
        ]
        if "description" in changes:
            problems += description_problems(changes["description"])
        proposed = stored_definition(
            {**self.definition, **{k: v for k, v in changes.items() if k in DEFINITION_FIELDS}}
        )
        plan = None
        if proposed != self.definition:
            plan, definition_problems = validated_plan(proposed, agents, workflows, limits)
            problems += definition_problems
        raise_if_any(problems)
        if "description" in changes and changes["description"] != self.description:
            self._change_description(changes["description"], self.description)
        if plan is not None:
            self._add_version(
                version=self.current_version + 1,
                definition=proposed,
                plan=plan.to_dict(),
                changes=version_changes(self.definition, proposed, self.current_version),
            )

    @event(Updated)
    def _add_version(
        self,
        version: int,
        definition: dict[str, Any],
        plan: dict[str, Any],
        changes: dict[str, Any],
    ) -> None:
        self.versions[version] = WorkflowVersion(version, definition, plan)
        self.current_version = version

    @event(DescriptionChanged)
    def _change_description(self, description: str | None, previous: str | None) -> None:
        self.description = description

    # -- who may do what (see flowledger.domain.grants) ----------------------------------------

    def grant(self, principal: str, *, can_view: bool, can_execute: bool) -> None:
        """Give ``principal`` exactly this access (replacing its grant, if any). Granting what
        it already has records nothing."""
        self._refuse_if_deleted("grant access")
        principal = normal_principal(principal)
        problems = principal_problems(principal) + access_problems(can_view, can_execute)
        if principal == self.owner:
            problems.append(
                FieldProblem("principal", "is the workflow's owner, who has every permission")
            )
        raise_if_any(problems)
        if self.grants.get(principal) != Access(can_view, can_execute):
            self._grant(principal, can_view, can_execute)

    @event(AccessGranted)
    def _grant(self, principal: str, can_view: bool, can_execute: bool) -> None:
        self.grants[principal] = Access(can_view, can_execute)

    def revoke(self, principal: str) -> None:
        """Take the principal's grant away (also on a deleted workflow). Revoking what was
        not granted records nothing."""
        principal = normal_principal(principal)
        if principal in self.grants:
            self._revoke(principal)

    @event(AccessRevoked)
    def _revoke(self, principal: str) -> None:
        del self.grants[principal]

    def transfer_ownership(self, owner: str) -> None:
        """Make ``owner`` (an API key or JWT subject actor) the owner; the previous owner keeps
        only what grants give it. Grants are kept."""
        self._refuse_if_deleted("change owner")
        owner = normal_principal(owner)
        raise_if_any(owner_problems(owner))
        if owner != self.owner:
            self._change_owner(owner, self.owner)

    @event(OwnerChanged)
    def _change_owner(self, owner: str, previous: str) -> None:
        self.owner = owner


def version_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], from_version: int
) -> dict[str, Any]:
    """What a new version changed, as the audit log and the versions list show it::

        {"from_version": 1, "steps_added": ["notify"], "steps_removed": [],
         "steps_changed": {"fetch": ["input_mapping"]}, "fields_changed": ["variables"]}

    Step fields and definition fields are compared as written.
    """
    old_steps: Mapping[str, Any] = before.get("steps") or {}
    new_steps: Mapping[str, Any] = after.get("steps") or {}
    changed_steps = {}
    for step_id in new_steps:
        if step_id in old_steps and old_steps[step_id] != new_steps[step_id]:
            old, new = old_steps[step_id], new_steps[step_id]
            changed_steps[step_id] = sorted(
                key for key in {*old, *new} if old.get(key) != new.get(key)
            )
    return {
        "from_version": from_version,
        "steps_added": [s for s in new_steps if s not in old_steps],
        "steps_removed": [s for s in old_steps if s not in new_steps],
        "steps_changed": changed_steps,
        "fields_changed": [
            field
            for field in DEFINITION_FIELDS
            if field != "steps" and before.get(field) != after.get(field)
        ],
    }
