"""API keys: named credentials with a role, an optional expiry, and a revocation.

The secret is shown once, when the key is issued; only its SHA-256 hash is kept (keys are 256
random bits, so a fast hash is as good as a slow one), with a short visible prefix to tell
keys apart (``flk_3f9a1c2b``). A revoked or expired key authenticates nothing.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Final, Literal

from eventsourcing.domain import Aggregate, event

from flowledger.domain.access import ROLES, Role
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


class ApiKey(Aggregate):
    """A credential for the API, with the role it acts in."""

    class Issued(Aggregate.Created):
        name: str
        role: str
        prefix: str
        key_hash: str
        expires_at: datetime | None

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
    ) -> ApiKey:
        problems = _problems(name, role, prefix, key_hash)
        if expires_at is not None:
            if expires_at.tzinfo is None:
                problems.append(FieldProblem("expires_at", "must include a time zone"))
            elif expires_at <= now:
                problems.append(FieldProblem("expires_at", "must be in the future"))
        if problems:
            raise InvalidInput(problems)
        return cls(name=name, role=role, prefix=prefix, key_hash=key_hash, expires_at=expires_at)

    @event(Issued)
    def __init__(
        self, name: str, role: str, prefix: str, key_hash: str, expires_at: datetime | None
    ) -> None:
        self.name = name
        self.role = Role(role)
        self.prefix = prefix
        self.key_hash = key_hash
        self.expires_at = expires_at
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
