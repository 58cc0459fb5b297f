"""Commands on API keys: issue one (its secret is answered once), revoke one.

A key issued for a user must not have a role above the user's, and the user must exist and not
be deleted; checked against the user aggregate (the truth), not a read table."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import msgspec

from flowledger.commands import Outcome
from flowledger.domain.access import ROLES, Role
from flowledger.domain.api_keys import (
    KEY_SCHEME,
    PREFIX_CHARS,
    ApiKey,
    hash_api_key,
    visible_prefix,
)
from flowledger.domain.errors import FieldProblem, raise_if_any
from flowledger.domain.users import User, refuse_unless_user
from flowledger.eventlog.store import EventMetadata, EventStore

KIND = "api key"


class IssueApiKey(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    role: str
    expires_at: datetime | None = None
    user_id: UUID | None = None
    permissions: list[str] | None = None


class RevokeApiKey(msgspec.Struct, frozen=True, kw_only=True):
    key_id: UUID


@dataclass(frozen=True)
class IssuedApiKey(Outcome[ApiKey]):
    key: str
    """The secret: answered this once, never stored."""


def new_api_key() -> str:
    """``flk_<8 hex>_<43 url-safe characters>``: 32 random bytes behind a visible prefix."""
    return f"{KEY_SCHEME}{secrets.token_hex(PREFIX_CHARS // 2)}_{secrets.token_urlsafe(32)}"


def issue_api_key(store: EventStore, command: IssueApiKey, meta: EventMetadata) -> IssuedApiKey:
    if command.user_id is not None:
        user = refuse_unless_user(store.find(User, command.user_id), command.user_id)
        raise_if_any(role_within_users(command.role, user))
    key = new_api_key()
    api_key = ApiKey.issue(
        name=command.name,
        role=command.role,
        prefix=visible_prefix(key),
        key_hash=hash_api_key(key),
        expires_at=command.expires_at,
        now=datetime.now(UTC),
        user_id=command.user_id,
        permissions=command.permissions,
    )
    return IssuedApiKey(api_key, store.record(api_key, metadata=meta), key=key)


def revoke_api_key(
    store: EventStore, command: RevokeApiKey, meta: EventMetadata
) -> Outcome[ApiKey]:
    api_key = store.get(ApiKey, command.key_id, kind=KIND)
    api_key.revoke()
    return Outcome(api_key, store.record(api_key, metadata=meta))


def role_within_users(role: str, user: User) -> list[FieldProblem]:
    """A user's key acts as the user: its role may not be above the user's."""
    if role in ROLES and list(Role).index(Role(role)) > list(Role).index(user.role):
        return [FieldProblem("role", f"must not be above the user's role, {user.role}")]
    return []
