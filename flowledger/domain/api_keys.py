"""API keys: named credentials with a role, an optional expiry, and a revocation.

The secret is shown once, when the key is issued; only its SHA-256 hash is kept (keys are 256
random bits, so a fast hash is as good as a slow one), with a short visible prefix to tell
keys apart (``flk_3f9a1c2b``). A revoked or expired key authenticates nothing.

A key may belong to a user (spec 003): it then acts as that user, with at most the user's role
(checked on every request, so lowering the user's role lowers the key's), and is refused once
the user is disabled or deleted. A key may also be limited to some permissions of its role.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Final, Literal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from flowledger.domain.access import (
    PERMISSIONS,
    ROLE_PERMISSIONS,
    ROLES,
    Permission,
    Role,
)
from flowledger.domain.errors import FieldProblem, InvalidInput

KEY_SCHEME: Final = "flk_"
"""Every flowledger key starts with this, then its visible prefix, ``_`` and the secret."""
PREFIX_CHARS: Final = 8
NAME_MAX_LENGTH: Final = 100
ApiKeyStatus = Literal["active", "expired", "revoked"]
_PREFIX = re.compile(rf"^{KEY_SCHEME}[0-9a-f]{{{PREFIX_CHARS}}}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def hash_api_key(key: str) -> str:
    """What is stored and looked up instead of the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def visible_prefix(key: str) -> str:
    """The part of a key that may be shown (``flk_3f9a1c2b``)."""
    return key[: len(KEY_SCHEME) + PREFIX_CHARS]


def _problems(name: object, role: object, prefix: str, key_hash: str) -> list[FieldProblem]:
    found = []
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX_LENGTH:
        found.append(FieldProblem("name", f"must be 1 to {NAME_MAX_LENGTH} characters long"))
    elif name != name.strip() or _CONTROL.search(name):
        found.append(FieldProblem("name", "must not have outer whitespace or control characters"))
    if role not in ROLES:
        found.append(FieldProblem("role", f"must be one of {', '.join(ROLES)}"))
    if not _PREFIX.match(prefix):
        found.append(FieldProblem("prefix", "is not a flowledger key prefix"))
    if not re.fullmatch(r"[0-9a-f]{64}", key_hash):
        found.append(FieldProblem("key_hash", "must be a SHA-256 hex digest"))
    return found


def permissions_problems(permissions: object, role: object) -> list[FieldProblem]:
    """A key's own permissions: some of its role's (none given: all of them)."""
    if permissions is None:
        return []
    if not isinstance(permissions, list | tuple) or not permissions:
        return [FieldProblem("permissions", "must list at least one permission (or be left out)")]
    unknown = [p for p in permissions if p not in PERMISSIONS]
    if unknown:
        return [FieldProblem("permissions", f"must be among {', '.join(PERMISSIONS)}")]
    if role in ROLES:
        beyond = sorted(set(permissions) - {p.value for p in ROLE_PERMISSIONS[Role(role)]})
        if beyond:
            return [
                FieldProblem(
                    "permissions",
                    f"role {role} does not have {', '.join(beyond)}: a key's "
                    "permissions are some of its role's",
                )
            ]
    return []


class ApiKey(Aggregate):
    """A credential for the API, with the role it acts in."""

    class Issued(Aggregate.Created):
        name: str
        role: str
        prefix: str
        key_hash: str
        expires_at: datetime | None
        user_id: UUID | None
        """The user the key acts as (None: a key of its own, acting as ``key:<id>``)."""
        permissions: list[str] | None
        """Some of the role's permissions, the only ones the key may use (None: all)."""
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            """Keys issued before users existed belong to nobody and have their role's
            permissions."""
            state["user_id"] = None
            state["permissions"] = None

    class Revoked(Aggregate.Event):
        pass

    @classmethod
    def issue(
        cls,
        *,
        name: str,
        role: str,
        prefix: str,
        key_hash: str,
        expires_at: datetime | None,
        now: datetime,
        user_id: UUID | None = None,
        permissions: list[str] | None = None,
    ) -> ApiKey:
        problems = _problems(name, role, prefix, key_hash) + permissions_problems(permissions, role)
        if expires_at is not None:
            if expires_at.tzinfo is None:
                problems.append(FieldProblem("expires_at", "must include a time zone"))
            elif expires_at <= now:
                problems.append(FieldProblem("expires_at", "must be in the future"))
        if problems:
            raise InvalidInput(problems)
        chosen = sorted(set(permissions), key=PERMISSIONS.index) if permissions else None
        return cls(
            name=name,
            role=role,
            prefix=prefix,
            key_hash=key_hash,
            expires_at=expires_at,
            user_id=user_id,
            permissions=chosen,
        )

    @event(Issued)
    def __init__(
        self,
        name: str,
        role: str,
        prefix: str,
        key_hash: str,
        expires_at: datetime | None,
        user_id: UUID | None,
        permissions: list[str] | None,
    ) -> None:
        self.name = name
        self.role = Role(role)
        self.prefix = prefix
        self.key_hash = key_hash
        self.expires_at = expires_at
        self.user_id = user_id
        self.permissions = (
            frozenset(Permission(p) for p in permissions) if permissions is not None else None
        )
        self.revoked = False

    def revoke(self) -> None:
        """Refuse the key from now on. Revoking a revoked key changes nothing."""
        if not self.revoked:
            self._revoke()

    @event(Revoked)
    def _revoke(self) -> None:
        self.revoked = True

    @property
    def revoked_at(self) -> datetime | None:
        return self.modified_on if self.revoked else None

    def status_at(self, now: datetime) -> ApiKeyStatus:
        if self.revoked:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
