"""Triggers at work: each schedule or webhook trigger of a workflow, and each time one fires.

A :class:`Trigger` is kept for every schedule and webhook trigger the current version of a
workflow defines (see :mod:`flowledger.domain.triggers` for the definition). Its id is derived
from the workflow and the trigger's key, so a new version that keeps the trigger updates the
same one (``Redefined``), and one that drops it removes it. Pausing and resuming are the
trigger's own events: they make no new workflow version.

A :class:`TriggerFiring` is one firing: a schedule tick or a webhook request, and the run it
started (or why it could not). Its id is derived from the trigger and the occurrence (the tick's
time, or the request's idempotency key or signature), so of two schedulers firing the same tick
only one is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from flowledger.domain.errors import Conflict

TriggerKind = Literal["schedule", "webhook"]
TRIGGER_NAMESPACE: Final = uuid5(NAMESPACE_URL, "https://flowledger.dev/triggers")
WEBHOOK_PATH_KIND: Final = "webhook-path"
"""The name-claim kind that keeps webhook paths unique across workflows."""


def trigger_id(workflow_id: UUID, key: str) -> UUID:
    return uuid5(TRIGGER_NAMESPACE, f"{workflow_id}:{key}")


def firing_id(trigger: UUID, occurrence: str) -> UUID:
    return uuid5(trigger, occurrence)


def tick_occurrence(tick: datetime) -> str:
    """The occurrence of a schedule tick: its time, which also makes the run's idempotency key."""
    return f"tick:{tick.isoformat()}"


class Trigger(Aggregate):
    """A schedule or webhook trigger of a workflow, as its current version defines it."""

    class Event(Aggregate.Event):
        def mutate(self, aggregate: Any) -> Any:
            # The @event method body runs before the library sets modified_on: it reads the
            # time of the event being applied here instead.
            if aggregate is not None:
                aggregate.event_time = self.timestamp
            return super().mutate(aggregate)

    class Defined(Aggregate.Created):
        workflow_id: UUID
        key: str
        kind: str
        config: dict[str, Any]
        """The trigger as written in the definition (secrets masked when shown)."""
        workflow_version: int

    class Redefined(Event):
        """A new workflow version changed the trigger (or brought it back)."""

        config: dict[str, Any]
        workflow_version: int

    class Removed(Event):
        """The workflow's new version no longer has it, or the workflow was deleted."""

        workflow_version: int | None

    class Paused(Event):
        pass

    class Resumed(Event):
        pass

    @staticmethod
    def create_id(workflow_id: UUID, key: str, **_: Any) -> UUID:
        return trigger_id(workflow_id, key)

    @event(Defined)
    def __init__(
        self, workflow_id: UUID, key: str, kind: str, config: dict[str, Any], workflow_version: int
    ) -> None:
        self.workflow_id = workflow_id
        self.key = key
        self.kind = kind
        self.config = config
        self.workflow_version = workflow_version
        self.paused = False
        self.removed = False
        self.event_time: datetime = self.created_on
        self.fire_from: datetime = self.created_on
        """Ticks after this are due: when it was defined, last changed or resumed."""

    @property
    def enabled(self) -> bool:
        return bool(self.config.get("enabled", True))

    @property
    def path(self) -> str | None:
        return self.config.get("path") if self.kind == "webhook" else None

    @property
    def status(self) -> str:
        if self.removed:
            return "removed"
        if self.paused:
            return "paused"
        return "active" if self.enabled else "disabled"

    def redefine(self, config: Mapping[str, Any], workflow_version: int) -> None:
        if self.removed or dict(config) != self.config:
            self._redefine(dict(config), workflow_version)

    @event(Redefined)
    def _redefine(self, config: dict[str, Any], workflow_version: int) -> None:
        self.config = config
        self.workflow_version = workflow_version
        self.removed = False
        self.fire_from = self.event_time

    def remove(self, workflow_version: int | None) -> None:
        if not self.removed:
            self._remove(workflow_version)

    @event(Removed)
    def _remove(self, workflow_version: int | None) -> None:
        self.removed = True

    def pause(self) -> None:
        self._refuse_if_removed("be paused")
        if not self.paused:
            self._pause()

    @event(Paused)
    def _pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        """Resume; ticks that fell while it was paused are not caught up."""
        self._refuse_if_removed("be resumed")
        if self.paused:
            self._resume()

    @event(Resumed)
    def _resume(self) -> None:
        self.paused = False
        self.fire_from = self.event_time

    def check_can_fire(self, *, backfill: bool = False) -> None:
        """Conflict unless the trigger may start a run now (a backfill may while the trigger
        is paused or disabled, not once it is removed)."""
        self._refuse_if_removed("fire")
        if backfill:
            return
        if self.paused:
            raise Conflict(f"trigger {self.key!r} is paused")
        if not self.enabled:
            raise Conflict(f"trigger {self.key!r} is disabled in the workflow's definition")

    def _refuse_if_removed(self, action: str) -> None:
        if self.removed:
            raise Conflict(
                f"trigger {self.key!r} was removed from its workflow and cannot {action}"
            )


class TriggerFiring(Aggregate):
    """One firing of a trigger: the run it started, or the error that kept it from starting."""

    class Recorded(Aggregate.Created):
        trigger_id: UUID
        workflow_id: UUID
        kind: str
        occurrence: str
        scheduled_for: datetime | None
        """The tick, for a schedule trigger."""
        run_id: UUID | None
        error: str | None

    @staticmethod
    def create_id(trigger_id: UUID, occurrence: str, **_: Any) -> UUID:
        return firing_id(trigger_id, occurrence)

    @event(Recorded)
    def __init__(
        self,
        trigger_id: UUID,
        workflow_id: UUID,
        kind: str,
        occurrence: str,
        scheduled_for: datetime | None,
        run_id: UUID | None,
        error: str | None,
    ) -> None:
        self.trigger_id = trigger_id
        self.workflow_id = workflow_id
        self.kind = kind
        self.occurrence = occurrence
        self.scheduled_for = scheduled_for
        self.run_id = run_id
        self.error = error
