"""What each route needs. Every ``/api/v1`` route declares one permission in its ``opt``;
roles grant permissions (viewer: read; operator: + execute; editor: + manage; admin: all)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Permission(StrEnum):
    READ = "read"
    EXECUTE = "execute"
    MANAGE = "manage"
    ADMIN = "admin"


def requires(permission: Permission) -> dict[str, Any]:
    """Route ``opt`` declaring the permission the route needs."""
    return {"permission": permission}
