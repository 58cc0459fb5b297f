"""The access decision: may this principal use this permission (on this resource)?

The role is the ceiling: a principal never does what its role does not grant. A route may also
name the resource it acts on (``requires(Permission.EXECUTE, on=("workflow", "workflow_id"))``);
a :class:`ResourceRule` registered for that resource type may then narrow the decision (per
resource grants, owners): workflows, runs and the event stream have one
(``flowledger.http.grants.access``, ADR 0010).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from flowledger.domain.access import Permission, Principal

if TYPE_CHECKING:
    from flowledger.runtime.process import Runtime


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


@dataclass(frozen=True)
class ResourceRef:
    type: str
    """``workflow``, ``run``..."""
    id: str


class ResourceRule(Protocol):
    async def decide(
        self,
        principal: Principal,
        permission: Permission,
        resource: ResourceRef,
        runtime: Runtime,
    ) -> Decision | None:
        """A decision for this resource (its reason is the 403's detail when it refuses), or
        None to leave it to the role (and the route: a resource that does not exist is its
        404)."""


@dataclass(frozen=True)
class AccessPolicy:
    resource_rules: Mapping[str, ResourceRule] = field(default_factory=dict)

    async def decide(
        self,
        principal: Principal,
        permission: Permission,
        resource: ResourceRef | None,
        runtime: Runtime,
    ) -> Decision:
        if not principal.can(permission):
            if principal.permissions is not None and principal.role_can(permission):
                allowed = ", ".join(sorted(principal.permissions))
                return Decision(
                    False, f"This API key is limited to {allowed}: not the {permission} permission."
                )
            return Decision(
                False, f"Role {principal.role} does not have the {permission} permission."
            )
        rule = self.resource_rules.get(resource.type) if resource is not None else None
        if rule is None or resource is None or principal.is_admin:
            return Decision(True, f"role {principal.role}")
        verdict = await rule.decide(principal, permission, resource, runtime)
        return verdict if verdict is not None else Decision(True, f"role {principal.role}")
