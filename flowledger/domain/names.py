"""Unique names, kept by an index aggregate per (kind, name).

The claim's id is derived from the name, so two concurrent claims of one name write version 1
(or the same next version) of the same aggregate: the event store accepts only one of them.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from flowledger.domain.errors import NameTaken

NAME_NAMESPACE = uuid5(NAMESPACE_URL, "https://flowledger.dev/names")


class NameClaim(Aggregate):
    """Who holds a name of a kind (``agent``, ``workflow``), if anyone."""

    @staticmethod
    def create_id(kind: str, name: str, owner_id: UUID) -> UUID:
        return name_claim_id(kind, name)

    @event("Claimed")
    def __init__(self, kind: str, name: str, owner_id: UUID) -> None:
        self.kind = kind
        self.name = name
        self.owner_id: UUID | None = owner_id

    def claim(self, owner_id: UUID) -> None:
        if self.owner_id is not None and self.owner_id != owner_id:
            raise NameTaken(f"{self.kind} name {self.name!r} is already taken")
        if self.owner_id is None:
            self._reclaim(owner_id)

    @event("Reclaimed")
    def _reclaim(self, owner_id: UUID) -> None:
        self.owner_id = owner_id

    def release(self, owner_id: UUID) -> None:
        if self.owner_id == owner_id:
            self._release()

    @event("Released")
    def _release(self) -> None:
        self.owner_id = None


def name_claim_id(kind: str, name: str) -> UUID:
    return uuid5(NAME_NAMESPACE, f"{kind}:{name}")
