"""The triggers read tables: every schedule and webhook trigger, and each of its firings.

``triggers.last_tick`` is the newest tick fired (the scheduler's watermark, with ``fire_from``:
when the trigger was defined, last changed or resumed); the counts and ``last_fired_at`` are
for the API. A firing that could not start its run is counted as failed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Connection, func, insert, update

from flowledger.domain.triggering import Trigger, TriggerFiring
from flowledger.eventlog.store import metadata_of
from flowledger.projections.projector import Projection
from flowledger.projections.tables import trigger_firings, triggers


class TriggersProjection(Projection):
    name: ClassVar[str] = "triggers"
    topic_prefixes = ("flowledger.domain.triggering:",)
    tables = (triggers, trigger_firings)

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        if isinstance(event, TriggerFiring.Recorded):
            self._fired(conn, event, position)
            return
        if isinstance(event, Trigger.Defined):
            conn.execute(
                insert(triggers).values(
                    id=event.originator_id,
                    workflow_id=event.workflow_id,
                    key=event.key,
                    type=event.kind,
                    config=event.config,
                    path=event.config.get("path") if event.kind == "webhook" else None,
                    enabled=bool(event.config.get("enabled", True)),
                    paused=False,
                    removed=False,
                    workflow_version=event.workflow_version,
                    fire_from=event.timestamp,
                    fired_count=0,
                    failed_count=0,
                    version=event.originator_version,
                    created_at=event.timestamp,
                    updated_at=event.timestamp,
                    position=position,
                )
            )
            return
        changes: dict[str, Any] = {}
        if isinstance(event, Trigger.Redefined):
            kind_is_webhook = event.config.get("type") == "webhook"
            changes = {
                "config": event.config,
                "path": event.config.get("path") if kind_is_webhook else None,
                "enabled": bool(event.config.get("enabled", True)),
                "removed": False,
                "workflow_version": event.workflow_version,
                "fire_from": event.timestamp,
            }
        elif isinstance(event, Trigger.Removed):
            changes = {"removed": True}
        elif isinstance(event, Trigger.Paused):
            changes = {"paused": True}
        elif isinstance(event, Trigger.Resumed):
            changes = {"paused": False, "fire_from": event.timestamp}
        conn.execute(
            update(triggers)
            .where(triggers.c.id == event.originator_id)
            .values(
                **changes,
                version=event.originator_version,
                updated_at=event.timestamp,
                position=position,
            )
        )

    def _fired(self, conn: Connection, event: Any, position: int) -> None:
        conn.execute(
            insert(trigger_firings).values(
                id=event.originator_id,
                trigger_id=event.trigger_id,
                workflow_id=event.workflow_id,
                scheduled_for=event.scheduled_for,
                run_id=event.run_id,
                error=event.error,
                fired_at=event.timestamp,
                actor=metadata_of(event).actor,
                position=position,
            )
        )
        failed = event.run_id is None
        tick = event.scheduled_for
        conn.execute(
            update(triggers)
            .where(triggers.c.id == event.trigger_id)
            .values(
                fired_count=triggers.c.fired_count + (0 if failed else 1),
                failed_count=triggers.c.failed_count + (1 if failed else 0),
                last_fired_at=event.timestamp,
                # GREATEST ignores NULLs: the first tick, then the newest one
                last_tick=triggers.c.last_tick
                if tick is None
                else func.greatest(triggers.c.last_tick, tick),
            )
        )
