"""Triggers as aggregates: pausing, resuming and redefining make no workflow version, and a
trigger says when it may fire."""

from __future__ import annotations

import uuid

import pytest

from flowledger.domain.errors import Conflict
from flowledger.domain.triggering import Trigger, TriggerFiring, firing_id, trigger_id

pytestmark = pytest.mark.unit


def schedule_trigger() -> Trigger:
    return Trigger(
        workflow_id=uuid.uuid4(),
        key="schedule-1",
        kind="schedule",
        config={"type": "schedule", "cron": "@daily"},
        workflow_version=1,
    )


def events(trigger: Trigger) -> list[str]:
    return [type(e).__qualname__ for e in trigger.collect_events()]


def test_a_triggers_id_is_its_workflow_and_key() -> None:
    trigger = schedule_trigger()
    assert trigger.id == trigger_id(trigger.workflow_id, "schedule-1")
    assert trigger.status == "active"


def test_pausing_stops_it_from_firing_and_resuming_moves_its_start() -> None:
    trigger = schedule_trigger()
    defined_from = trigger.fire_from
    trigger.pause()
    trigger.pause()
    with pytest.raises(Conflict, match="paused"):
        trigger.check_can_fire()
    trigger.resume()
    trigger.check_can_fire()
    assert trigger.fire_from > defined_from
    assert events(trigger) == ["Trigger.Defined", "Trigger.Paused", "Trigger.Resumed"]


def test_redefining_with_the_same_config_records_nothing() -> None:
    trigger = schedule_trigger()
    trigger.collect_events()
    trigger.redefine({"type": "schedule", "cron": "@daily"}, 2)
    assert events(trigger) == []
    trigger.redefine({"type": "schedule", "cron": "@daily", "enabled": False}, 3)
    assert events(trigger) == ["Trigger.Redefined"]
    assert trigger.status == "disabled"
    with pytest.raises(Conflict, match="disabled"):
        trigger.check_can_fire()


def test_a_removed_trigger_refuses_everything_until_redefined() -> None:
    trigger = schedule_trigger()
    trigger.remove(2)
    for action in (trigger.pause, trigger.resume, trigger.check_can_fire):
        with pytest.raises(Conflict, match="removed"):
            action()
    trigger.redefine(dict(trigger.config), 3)
    assert trigger.status == "active"


def test_a_firings_id_is_its_trigger_and_occurrence() -> None:
    trigger = schedule_trigger()
    firing = TriggerFiring(
        trigger_id=trigger.id,
        workflow_id=trigger.workflow_id,
        kind="schedule",
        occurrence="tick:2026-01-01T00:00:00+00:00",
        scheduled_for=None,
        run_id=uuid.uuid4(),
        error=None,
    )
    assert firing.id == firing_id(trigger.id, "tick:2026-01-01T00:00:00+00:00")


def test_a_backfill_may_fire_a_paused_or_disabled_trigger_but_not_a_removed_one() -> None:
    trigger = schedule_trigger()
    trigger.pause()
    trigger.check_can_fire(backfill=True)
    trigger.redefine({"type": "schedule", "cron": "@daily", "enabled": False}, 2)
    trigger.check_can_fire(backfill=True)
    trigger.remove(3)
    with pytest.raises(Conflict, match="removed"):
        trigger.check_can_fire(backfill=True)
