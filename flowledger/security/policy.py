"""The access decision: may this principal use this permission (on this resource)?

The role is the ceiling: a principal never does what its role does not grant. A route may also
name the resource it acts on (``requires(Permission.EXECUTE, on=("workflow", "workflow_id"))``);
a :class:`ResourceRule` registered for that resource type may then narrow the decision (per
resource grants, owners). Today no resource type has a rule; see ADR 0006.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from flowledger.domain.access import Permission, Principal


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
        engine: AsyncEngine,
    ) -> bool | None:
        """True or False to decide for this resource; None to leave the decision to the role."""


@dataclass(frozen=True)
class AccessPolicy:
    resource_rules: Mapping[str, ResourceRule] = field(default_factory=dict)

    async def decide(
        self,
        principal: Principal,
        permission: Permission,
        resource: ResourceRef | None,
        engine: AsyncEngine,
    ) -> Decision:
        if not principal.can(permission):
            return Decision(
                False, f"Role {principal.role} does not have the {permission} permission."
            )
        rule = self.resource_rules.get(resource.type) if resource is not None else None
        if rule is None or resource is None or principal.is_admin:
            return Decision(True, f"role {principal.role}")
        verdict = await rule.decide(principal, permission, resource, engine)
        if verdict is False:
            return Decision(False, f"No {permission} permission on {resource.type} {resource.id}.")
        return Decision(True, f"{resource.type} grant" if verdict else f"role {principal.role}")
