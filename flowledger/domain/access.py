"""Who may do what: roles grant permissions, and a principal is who is asking.

Every ``/api/v1`` route declares the one permission it needs. Roles are cumulative:
viewer reads; operator also executes, cancels, retries, pauses and tests, and signals waiting
runs (approvals: a permission of its own, so a role may one day signal without executing);
editor also manages agents and workflows; admin may do everything, API keys, webhooks and the
audit log included.
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

CredentialKind = Literal["api_key", "jwt", "admin_env"]


def role_allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


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
    """``key:<api key id>``, ``jwt:<subject>`` or ``admin-env``."""
    role: Role
    kind: CredentialKind
    key_id: UUID | None = None
    subject: str | None = None
    expires_at: datetime | None = None

    def can(self, permission: Permission) -> bool:
        return role_allows(self.role, permission)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


def api_key_actor(key_id: UUID) -> str:
    return f"key:{key_id}"


def jwt_actor(subject: str) -> str:
    return f"jwt:{subject}"


ADMIN_ENV_ACTOR: Final = "admin-env"
