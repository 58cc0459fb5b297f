"""Claiming and releasing unique names through the name index aggregate."""

from __future__ import annotations

from uuid import UUID

from flowledger.domain.names import NameClaim, name_claim_id
from flowledger.eventlog.store import EventStore


def claim_name(store: EventStore, kind: str, name: str, owner_id: UUID) -> NameClaim:
    """The claim to save with the owner; raises NameTaken when a live owner holds the name."""
    claim = store.find(NameClaim, name_claim_id(kind, name))
    if claim is None:
        return NameClaim(kind=kind, name=name, owner_id=owner_id)
    claim.claim(owner_id)
    return claim


def release_name(store: EventStore, kind: str, name: str, owner_id: UUID) -> NameClaim | None:
    claim = store.find(NameClaim, name_claim_id(kind, name))
    if claim is not None:
        claim.release(owner_id)
    return claim
