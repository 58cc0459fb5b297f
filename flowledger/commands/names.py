"""Unique names: a named aggregate is recorded together with its claim on the name.

The claim is the name index aggregate (:mod:`flowledger.domain.names`). Creating a named
aggregate claims the name in the same append, so of two concurrent claims one is recorded and
the other is told the name is taken; deleting one releases the name in the same append.
"""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from flowledger.domain.errors import ConcurrentModification, NameTaken
from flowledger.domain.names import NameClaim, name_claim_id
from flowledger.eventlog.store import EventMetadata, EventStore

A = TypeVar("A", bound=Aggregate)


def record_claiming_name(
    store: EventStore, owner: Aggregate, kind: str, name: str, meta: EventMetadata
) -> int | None:
    """Record ``owner`` with its claim on ``name``; NameTaken when a live owner holds the name,
    also when one claimed it meanwhile. The position of the last event appended."""
    claim = _claim_name(store, kind, name, owner.id)
    try:
        return store.record(owner, claim, metadata=meta)
    except ConcurrentModification:
        raise NameTaken(f"{kind} name {name!r} is already taken") from None


def record_releasing_name(
    store: EventStore,
    owner: Aggregate,
    kind: str,
    name: str,
    meta: EventMetadata,
    *also: Aggregate,
) -> int | None:
    """Record ``owner`` (just deleted) with the release of its claim on ``name``, and the
    changes of ``also`` (aggregates the deletion changed too) in the same append."""
    claim = _release_name(store, kind, name, owner.id)
    return store.record(owner, claim, *also, metadata=meta)


def holder_of(store: EventStore, holder_class: type[A], kind: str, name: str) -> A | None:
    """The ``holder_class`` aggregate holding ``name`` now, read from the write side."""
    claim = store.find(NameClaim, name_claim_id(kind, name))
    if claim is None or claim.owner_id is None:
        return None
    return store.find(holder_class, claim.owner_id)


def _claim_name(store: EventStore, kind: str, name: str, owner_id: UUID) -> NameClaim:
    """The claim to save with the owner; raises NameTaken when a live owner holds the name."""
    claim = store.find(NameClaim, name_claim_id(kind, name))
    if claim is None:
        return NameClaim(kind=kind, name=name, owner_id=owner_id)
    claim.claim(owner_id)
    return claim


def _release_name(store: EventStore, kind: str, name: str, owner_id: UUID) -> NameClaim | None:
    claim = store.find(NameClaim, name_claim_id(kind, name))
    if claim is not None:
        claim.release(owner_id)
    return claim
