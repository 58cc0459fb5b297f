"""Per-workflow permissions: the owner, and grants of ``can_view`` / ``can_execute``.

Every workflow has an **owner** (the actor who created it, until ownership is transferred),
who has every permission on it. Admins have every permission on every workflow. Anyone else
needs a **grant**: ``can_view`` to read the workflow, its versions and its runs;
``can_execute`` to execute and test it and to cancel, retry, pause, resume and signal its runs
(it implies ``can_view``). Only the owner (or an admin) changes a workflow or its grants.

A grant names a **principal**: an actor (``user:<user id>``, ``key:<api key id>``,
``jwt:<subject>``), or every
caller of at least a role (``role:viewer``, ``role:operator``, ``role:editor``). The role stays
the ceiling: a grant never lets a caller do what its role does not allow (a viewer granted
``can_execute`` still cannot execute).

:func:`permits` is the whole rule; the HTTP layer asks the same question of the read tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from flowledger.domain.access import Permission, Principal, Role
from flowledger.domain.errors import FieldProblem

GRANTABLE_ROLES: Final = (Role.VIEWER, Role.OPERATOR, Role.EDITOR)
"""Roles a grant may name; admins have every permission already."""
SUBJECT_MAX_LENGTH: Final = 255
PRINCIPAL_MAX_LENGTH: Final = len("jwt:") + SUBJECT_MAX_LENGTH
PRINCIPAL_FORMS: Final = (
    "user:<user id>, key:<api key id>, jwt:<subject> or role:<viewer|operator|editor>"
)
ID_KINDS: Final = {"key": "an API key id", "user": "a user id"}
"""Principals naming one caller by a uuid: an API key, or a user (and its keys)."""
_SUBJECT_REFUSED = re.compile(r"[\x00-\x1f\x7f/]")
"""Control characters, and ``/`` (a principal travels as one URL path segment)."""


@dataclass(frozen=True)
class Access:
    """What a grant allows."""

    can_view: bool
    can_execute: bool

    def allows(self, permission: Permission) -> bool:
        if permission is Permission.READ:
            return self.can_view
        if permission in (Permission.EXECUTE, Permission.SIGNAL):
            return self.can_execute
        return False  # changing a workflow or its grants is the owner's alone


def grant_name(permission: Permission) -> str:
    """What a caller lacks when refused ``permission`` on a workflow it does not own."""
    return {
        Permission.READ: "can_view",
        Permission.EXECUTE: "can_execute",
        Permission.SIGNAL: "can_execute",
    }.get(permission, "ownership")


def normal_principal(principal: str) -> str:
    """The principal as actors are written (an API key or user id in lower case)."""
    kind, _, rest = principal.partition(":")
    if kind in ID_KINDS:
        try:
            return f"{kind}:{UUID(rest)}"
        except ValueError:
            return principal
    return principal


def principal_problems(principal: str, field: str = "principal") -> list[FieldProblem]:
    kind, sep, rest = principal.partition(":")
    if sep and kind in ID_KINDS:
        try:
            UUID(rest)
        except ValueError:
            return [FieldProblem(field, f"{rest!r} is not {ID_KINDS[kind]}")]
        return []
    if sep and kind == "jwt":
        if not rest or len(rest) > SUBJECT_MAX_LENGTH:
            return [FieldProblem(field, f"a JWT subject has 1 to {SUBJECT_MAX_LENGTH} characters")]
        if _SUBJECT_REFUSED.search(rest):
            return [FieldProblem(field, "a JWT subject here cannot hold / or control characters")]
        return []
    if sep and kind == "role":
        if rest == Role.ADMIN:
            return [FieldProblem(field, "admins have every permission on every workflow already")]
        if rest not in GRANTABLE_ROLES:
            return [FieldProblem(field, "the role must be viewer, operator or editor")]
        return []
    return [FieldProblem(field, f"must be {PRINCIPAL_FORMS}")]


def owner_problems(owner: str) -> list[FieldProblem]:
    """An owner is one actor: a user, an API key or a JWT subject, not a role."""
    if not owner.startswith(("user:", "key:", "jwt:")):
        return [
            FieldProblem(
                "owner", "must be user:<user id>, key:<api key id> or jwt:<subject>, not a role"
            )
        ]
    return principal_problems(owner, "owner")


def access_problems(can_view: bool, can_execute: bool) -> list[FieldProblem]:
    if can_execute and not can_view:
        return [FieldProblem("can_view", "can_execute implies can_view: it cannot be false")]
    if not can_view:
        return [FieldProblem("can_view", "a grant allows something: to take it away, revoke it")]
    return []


def principals_of(principal: Principal) -> tuple[str, ...]:
    """The grant principals that apply to a caller: its actor, and every role up to its own."""
    rank = list(Role).index(principal.role)
    return (principal.actor, *(f"role:{r}" for r in GRANTABLE_ROLES if list(Role).index(r) <= rank))


def permits(
    principal: Principal,
    permission: Permission,
    owner: str | None,
    grants: Mapping[str, Access],
) -> bool:
    """May ``principal`` use ``permission`` on a workflow with this owner and these grants
    (keyed by principal)? The role is the ceiling; admins and the owner may do everything."""
    if not principal.can(permission):
        return False
    if principal.is_admin or (owner is not None and owner == principal.actor):
        return True
    return any(
        grants[name].allows(permission) for name in principals_of(principal) if name in grants
    )
