"""The lifecycle agents, workflows and webhooks share: soft deletion, and switching on and off.

:class:`Deletable` is soft deletion: the record stays readable, ``delete`` records ``Deleted``
once, and a deleted aggregate refuses further changes. :class:`Switchable` adds ``activate`` and
``deactivate`` (status ``active`` / ``inactive``), each recorded only when it changes something.
An aggregate takes them as mixins before ``Aggregate``: ``class Agent(Switchable, Aggregate)``.

The event classes are declared here once. The event library gives every aggregate class that
inherits them its own copy, named after it, so their stored topics stay the aggregate's own
(``flowledger.domain.agents:Agent.Activated``, ``flowledger.domain.webhooks:Webhook.Deleted``).
The mixins are not aggregates themselves (no events of their own, none in the AsyncAPI
document). The state changes live in the events' ``apply``, so replay gives the same state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from eventsourcing.domain import Aggregate

from flowledger.domain.errors import Conflict

SwitchedStatus = Literal["active", "inactive"]
"""What a switchable aggregate can be switched to."""

if TYPE_CHECKING:
    _Mixin = Aggregate  # what the mixins are used with, for the type checker
else:
    _Mixin = object


class Deletable(_Mixin):
    """Soft deletion: the aggregate stays readable but can no longer be changed.

    The aggregate sets ``status`` when created and names itself in refusals with ``noun``.
    """

    noun = "aggregate"
    status: str

    class Deleted(Aggregate.Event):
        def apply(self, aggregate: Any) -> None:
            aggregate.status = "deleted"

    @property
    def is_deleted(self) -> bool:
        return self.status == "deleted"

    def delete(self) -> None:
        """Soft-delete. Deleting twice records one deletion."""
        if not self.is_deleted:
            self.trigger_event(self.Deleted)

    def _refuse_if_deleted(self, action: str) -> None:
        if self.is_deleted:
            raise Conflict(f"{self.noun} {self._label()} is deleted and cannot {action}")

    def _label(self) -> str:
        return str(self.id)


class Switchable(Deletable):
    """A named aggregate that can be deactivated (kept, but not used) and activated again;
    deleted, it refuses both."""

    name: str

    class Activated(Aggregate.Event):
        def apply(self, aggregate: Any) -> None:
            aggregate.status = "active"

    class Deactivated(Aggregate.Event):
        def apply(self, aggregate: Any) -> None:
            aggregate.status = "inactive"

    # The library copies the event classes of an aggregate's direct bases only: named here,
    # Deleted is copied onto Agent and Workflow too.
    Deleted = Deletable.Deleted

    def activate(self) -> None:
        self._refuse_if_deleted("activate")
        if self.status != "active":
            self.trigger_event(self.Activated)

    def deactivate(self) -> None:
        self._refuse_if_deleted("deactivate")
        if self.status != "inactive":
            self.trigger_event(self.Deactivated)

    def switch(self, status: SwitchedStatus | None) -> None:
        """Activate or deactivate as ``status`` says; None leaves the status as it is."""
        if status == "active":
            self.activate()
        elif status == "inactive":
            self.deactivate()

    def _label(self) -> str:
        return repr(self.name)
