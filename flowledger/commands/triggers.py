"""Commands on triggers: keep them in step with their workflow, fire, pause, resume, backfill.

A workflow's schedule and webhook triggers are :class:`Trigger` aggregates recorded in the same
append as the workflow version that defines them (:func:`triggers_of`), with the claims that keep
webhook paths unique across workflows. Firing records the run and the :class:`TriggerFiring`
together; the firing's id (trigger and occurrence) and the run's idempotency key (the same)
make a second firing of one occurrence a replay instead of a second run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import msgspec
from eventsourcing.domain import Aggregate

from flowledger.commands import Outcome
from flowledger.commands.names import claim_name, release_name
from flowledger.commands.runs import RequestRun, new_run
from flowledger.domain.errors import Conflict, FieldProblem, InvalidInput, NameTaken
from flowledger.domain.schedules import Schedule
from flowledger.domain.triggering import (
    WEBHOOK_PATH_KIND,
    Trigger,
    TriggerFiring,
    firing_id,
    tick_occurrence,
    trigger_id,
)
from flowledger.domain.triggers import trigger_entries
from flowledger.domain.workflows import Workflow
from flowledger.eventlog.store import EventMetadata, EventStore

KIND = "trigger"
MAX_BACKFILL = 1000


def trigger_actor(trigger: UUID) -> str:
    """Who the runs a trigger starts are attributed to."""
    return f"trigger:{trigger}"


def triggers_of(store: EventStore, workflow: Workflow) -> list[Aggregate]:
    """The triggers (and webhook path claims) to record with ``workflow`` as it is now: its
    current version's triggers defined or redefined, the others removed (all, once it is
    deleted). NameTaken when another workflow's trigger holds a webhook path."""
    wanted: dict[UUID, tuple[str, dict[str, Any]]] = {}
    if not workflow.is_deleted:
        for key, config in trigger_entries(workflow.definition.get("triggers")):
            wanted[trigger_id(workflow.id, key)] = (key, config)
    every_key = {
        key
        for version in workflow.versions.values()
        for key, _ in trigger_entries(version.definition.get("triggers"))
    }
    changed: list[Aggregate] = []
    for key in sorted(every_key):
        tid = trigger_id(workflow.id, key)
        trigger = store.find(Trigger, tid)
        if tid in wanted:
            _, config = wanted[tid]
            old_path = trigger.path if trigger is not None and not trigger.removed else None
            if trigger is None:
                trigger = Trigger(
                    workflow_id=workflow.id,
                    key=key,
                    kind=config["type"],
                    config=config,
                    workflow_version=workflow.current_version,
                )
            else:
                trigger.redefine(config, workflow.current_version)
            changed += _path_changes(store, tid, old_path, trigger.path)
        elif trigger is not None and not trigger.removed:
            trigger.remove(None if workflow.is_deleted else workflow.current_version)
            changed += _path_changes(store, tid, trigger.path, None)
        if trigger is not None:
            changed.append(trigger)
    return changed


def _path_changes(
    store: EventStore, trigger: UUID, old: str | None, new: str | None
) -> list[Aggregate]:
    if old == new:
        return []
    changes: list[Aggregate] = []
    if old is not None and (release := release_name(store, WEBHOOK_PATH_KIND, old, trigger)):
        changes.append(release)
    if new is not None:
        try:
            changes.append(claim_name(store, WEBHOOK_PATH_KIND, new, trigger))
        except NameTaken:
            raise NameTaken(f"webhook path {new!r} is used by another workflow") from None
    return changes


# ------------------------------------------------------------------------------- firing


class FireTrigger(msgspec.Struct, frozen=True, kw_only=True):
    trigger_id: UUID
    input_data: dict[str, Any] | None = None
    """The run input; None: the trigger's own ``input`` (schedules)."""
    occurrence: str | None = None
    """What makes this firing unique (a tick, an idempotency key); None: a new one."""
    scheduled_for: datetime | None = None
    record_failure: bool = False
    """Record a firing whose run could not start (schedules) instead of raising."""
    backfill: bool = False
    """Fire even while paused or disabled (not once removed)."""


@dataclass(frozen=True)
class Fired(Outcome[TriggerFiring]):
    replayed: bool = False
    """True when this occurrence had fired before: nothing new was recorded."""


def fire_trigger(store: EventStore, command: FireTrigger, meta: EventMetadata) -> Fired:
    trigger = store.get(Trigger, command.trigger_id, kind=KIND)
    occurrence = command.occurrence or f"request:{uuid4()}"
    earlier = store.find(TriggerFiring, firing_id(trigger.id, occurrence))
    if earlier is not None:
        return Fired(earlier, None, replayed=True)
    trigger.check_can_fire(backfill=command.backfill)
    given = command.input_data
    request = RequestRun(
        workflow_id=trigger.workflow_id,
        input_data=dict(trigger.config.get("input") or {}) if given is None else given,
        idempotency_key=f"{trigger_actor(trigger.id)}:{occurrence}",
    )
    try:
        run, key_claim = new_run(store, request, meta)
    except (Conflict, InvalidInput) as refused:
        if not command.record_failure:
            raise
        return _record(store, trigger, occurrence, command, None, refused.detail, (), meta)
    return _record(store, trigger, occurrence, command, run.id, None, (run, key_claim), meta)


def _record(
    store: EventStore,
    trigger: Trigger,
    occurrence: str,
    command: FireTrigger,
    run_id: UUID | None,
    error: str | None,
    others: tuple[Aggregate | None, ...],
    meta: EventMetadata,
) -> Fired:
    firing = TriggerFiring(
        trigger_id=trigger.id,
        workflow_id=trigger.workflow_id,
        kind=trigger.kind,
        occurrence=occurrence,
        scheduled_for=command.scheduled_for,
        run_id=run_id,
        error=error,
    )
    try:
        position = store.record(*others, firing, metadata=meta)
    except Conflict:
        earlier = store.find(TriggerFiring, firing.id)
        if earlier is None:
            raise
        return Fired(earlier, None, replayed=True)
    return Fired(firing, position)


def fire_tick(store: EventStore, trigger: UUID, tick: datetime) -> Fired:
    """Fire a schedule tick (as the scheduler does): a failure to start the run is recorded."""
    command = FireTrigger(
        trigger_id=trigger,
        occurrence=tick_occurrence(tick),
        scheduled_for=tick,
        record_failure=True,
    )
    return fire_trigger(store, command, EventMetadata.system(trigger_actor(trigger)))


# ------------------------------------------------------------------------ pause, resume


class PauseTrigger(msgspec.Struct, frozen=True, kw_only=True):
    trigger_id: UUID


class ResumeTrigger(msgspec.Struct, frozen=True, kw_only=True):
    trigger_id: UUID


def pause_trigger(
    store: EventStore, command: PauseTrigger, meta: EventMetadata
) -> Outcome[Trigger]:
    trigger = store.get(Trigger, command.trigger_id, kind=KIND)
    trigger.pause()
    return Outcome(trigger, store.record(trigger, metadata=meta))


def resume_trigger(
    store: EventStore, command: ResumeTrigger, meta: EventMetadata
) -> Outcome[Trigger]:
    trigger = store.get(Trigger, command.trigger_id, kind=KIND)
    trigger.resume()
    return Outcome(trigger, store.record(trigger, metadata=meta))


# ----------------------------------------------------------------------------- backfill


class Backfill(msgspec.Struct, frozen=True, kw_only=True):
    trigger_id: UUID
    start: datetime
    end: datetime
    limit: int = MAX_BACKFILL


@dataclass(frozen=True)
class BackfillResult(Outcome[Trigger]):
    ticks: list[datetime] = field(default_factory=list)
    fired: list[Fired] = field(default_factory=list)

    @property
    def started(self) -> int:
        return sum(1 for f in self.fired if not f.replayed and f.aggregate.run_id is not None)


def backfill(store: EventStore, command: Backfill, meta: EventMetadata) -> BackfillResult:
    """Fire every tick of a schedule trigger in ``(start, end]`` that has not fired yet, oldest
    first (at most ``limit``). Ticks that fired before are left as they are; paused or
    disabled triggers are backfilled too."""
    trigger = store.get(Trigger, command.trigger_id, kind=KIND)
    problems = []
    if trigger.kind != "schedule":
        problems.append(FieldProblem("trigger_id", "is not a schedule trigger"))
    if command.end <= command.start:
        problems.append(FieldProblem("end", "must be after start"))
    if not 1 <= command.limit <= MAX_BACKFILL:
        problems.append(FieldProblem("limit", f"must be from 1 to {MAX_BACKFILL}"))
    if problems:
        raise InvalidInput(problems)
    ticks = Schedule.of(trigger.config).between(command.start, command.end, command.limit)
    fired = []
    for tick in ticks:
        request = FireTrigger(
            trigger_id=trigger.id,
            occurrence=tick_occurrence(tick),
            scheduled_for=tick,
            record_failure=True,
            backfill=True,
        )
        fired.append(fire_trigger(store, request, meta))
    positions = [f.position for f in fired if f.position is not None]
    return BackfillResult(trigger, max(positions, default=None), ticks, fired)
