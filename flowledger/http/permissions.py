"""What each route needs. Every ``/api/v1`` route declares one permission in its ``opt``
(``opt=requires(Permission.READ)``); the app refuses to start when one does not. Roles grant
permissions (viewer: read; operator: + execute; editor: + manage; admin: all), see
:mod:`flowledger.domain.access`."""

from __future__ import annotations

from typing import Any, Final

from flowledger.domain.access import Permission, Role

__all__ = [
    "PERMISSION_OPT",
    "PUBLIC_OPT",
    "RESOURCE_OPT",
    "Permission",
    "Role",
    "public",
    "requires",
]

PERMISSION_OPT: Final = "permission"
RESOURCE_OPT: Final = "resource"
PUBLIC_OPT: Final = "exclude_from_auth"
"""Litestar's own key: its authentication middleware lets such a route's requests through."""


def requires(permission: Permission, *, on: tuple[str, str] | None = None) -> dict[str, Any]:
    """Route ``opt`` declaring the permission the route needs.

    ``on=("workflow", "workflow_id")`` also names the resource the route acts on (its type and
    the path parameter holding its id), so a per-resource rule can narrow the decision.
    """
    opt: dict[str, Any] = {PERMISSION_OPT: permission}
    if on is not None:
        opt[RESOURCE_OPT] = on
    return opt


def public() -> dict[str, Any]:
    """Route ``opt`` of an ``/api/v1`` route that takes no credential because it is where
    credentials come from (the OAuth2 token endpoint): the only kind of API route without a
    permission."""
    return {PUBLIC_OPT: True}
