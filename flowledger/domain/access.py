"""Who may do what: roles grant permissions, and a principal is who is asking.

Every ``/api/v1`` route declares the one permission it needs. Roles are cumulative:
viewer reads; operator also executes, cancels, retries, pauses and tests, and signals waiting
runs (approvals: a permission of its own, so a role may one day signal without executing);
editor also manages agents and workflows; admin may do everything, API keys, webhooks and the
audit log included.

A principal may carry ``permissions`` narrower than its role's (an API key given only some of
them, spec 003): it may then use only those. Spec 003's roles are ours under other names
(:data:`SPEC_003_ROLES`, ADR 0018).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal
from uuid import UUID


class Permission(StrEnum):
    READ = "read"
    EXECUTE = "execute"
    SIGNAL = "signal"
    """Deliver a signal (an approval, data) to a run that waits for one."""
    MANAGE = "manage"
    ADMIN = "admin"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    EDITOR = "editor"
    ADMIN = "admin"


ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.EXECUTE, Permission.SIGNAL}),
    Role.EDITOR: frozenset(
        {Permission.READ, Permission.EXECUTE, Permission.SIGNAL, Permission.MANAGE}
    ),
    Role.ADMIN: frozenset(Permission),
}
ROLES: Final = tuple(role.value for role in Role)
PERMISSIONS: Final = tuple(permission.value for permission in Permission)
SPEC_003_ROLES: Final[dict[str, Role]] = {
    "admin": Role.ADMIN,
    "developer": Role.EDITOR,
    "user": Role.OPERATOR,
}
"""Spec 003's user roles, and ours that do the same (ADR 0018)."""

CredentialKind = Literal["api_key", "jwt", "admin_env", "session"]


def role_allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def lower_role(first: Role, second: Role) -> Role:
    """The less powerful of two roles (a user's key acts with at most its user's role)."""
    order = list(Role)
    return min(first, second, key=order.index)


def role_problem(role: object) -> str | None:
    """Why ``role`` is not one of ours, naming spec 003's equivalent when it is one of those."""
    if role in ROLES:
        return None
    known = ", ".join(ROLES)
    if isinstance(role, str) and role in SPEC_003_ROLES:
        return f"must be one of {known} (spec 003's {role!r} is {SPEC_003_ROLES[role].value!r})"
    return f"must be one of {known}"


def highest_role(names: object) -> Role | None:
    """The most powerful known role among ``names`` (a role name or a list of them)."""
    candidates = [names] if isinstance(names, str) else names
    if not isinstance(candidates, list | tuple):
        return None
    known = [Role(name) for name in candidates if isinstance(name, str) and name in ROLES]
    return max(known, key=list(Role).index) if known else None


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``actor`` is what every event it causes records."""

    actor: str
    """``key:<api key id>``, ``jwt:<subject>``, ``user:<user id>`` or ``admin-env``."""
    role: Role
    kind: CredentialKind
    key_id: UUID | None = None
    subject: str | None = None
    expires_at: datetime | None = None
    user_id: UUID | None = None
    """The user behind a session, or behind an API key that belongs to a user."""
    session_id: UUID | None = None
    permissions: frozenset[Permission] | None = None
    """Narrower than the role's (an API key limited to some permissions); None: the role's."""

    def can(self, permission: Permission) -> bool:
        allowed = self.permissions is None or permission in self.permissions
        return allowed and role_allows(self.role, permission)

    def role_can(self, permission: Permission) -> bool:
        return role_allows(self.role, permission)

    @property
    def effective_permissions(self) -> frozenset[Permission]:
        return frozenset(p for p in ROLE_PERMISSIONS[self.role] if self.can(p))

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


def api_key_actor(key_id: UUID) -> str:
    return f"key:{key_id}"


def jwt_actor(subject: str) -> str:
    return f"jwt:{subject}"


def user_actor(user_id: UUID) -> str:
    return f"user:{user_id}"


ADMIN_ENV_ACTOR: Final = "admin-env"
