"""A scheduler that loses the race for a tick to another scheduler goes on firing the next ones.

Two schedulers that fire the same tick at once both append its firing; one append wins and the
other breaks a unique key in the writer's transaction, which is rolled back. The loser must come
out of that as it went in: with the group-commit writer of 1cbd39a (BEGIN and COMMIT sent as
statements in its pipeline) psycopg kept statements it believed prepared on the rolled-back
connection, so every later append of that scheduler failed with ``prepared statement "_pg3_N"
does not exist`` and it never fired again (the full suite's
``test_two_scheduler_processes_and_kill_9_fire_every_tick_exactly_once``: 3 of 6 ticks).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from flowledger.commands.triggers import fire_tick
from flowledger.domain.schedules import Schedule
from flowledger.domain.triggering import TriggerFiring, firing_id, tick_occurrence
from flowledger.eventlog.store import EventStore
from flowledger.runtime.process import Runtime
from flowledger.scheduling.scheduler import Scheduler
from flowledger.scheduling.settings import SchedulerSettings
from tests.integration.test_scheduler import FakeClock, fire_from, scheduled_workflow

pytestmark = pytest.mark.integration

WARM_UP = 8
"""Ticks the loser fires before the race: more than psycopg's ``prepare_threshold`` (5), so
the writer's statements are prepared on its connection."""


@pytest.fixture
def other_store(runtime: Runtime) -> Iterator[EventStore]:
    """The other scheduler process's event store: its own pool and writer."""
    store = EventStore(runtime.database, pool_size=2)
    yield store
    store.close()


def test_a_scheduler_that_loses_the_race_for_a_tick_fires_the_next_ticks(
    runtime: Runtime, other_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    trigger = scheduled_workflow(runtime, every=1, catchup="all")
    start = fire_from(runtime, trigger)
    ticks = Schedule(every_s=1).between(start, start + timedelta(seconds=30), 100)
    clock = FakeClock(ticks[WARM_UP - 1] + timedelta(milliseconds=500))
    loser = Scheduler(other_store, runtime.engine, SchedulerSettings(grace_s=60), clock)
    loser.run_once()
    assert all(fired_at(runtime, trigger, tick) for tick in ticks[:WARM_UP])

    raced = ticks[WARM_UP]
    fire_tick(runtime.store, trigger, raced)  # the winner appends first ...
    lookups = {"first": True}
    find = other_store.find

    def not_seen_yet(cls: type[Any], aggregate_id: UUID, **kwargs: Any) -> Any:
        if cls is TriggerFiring and lookups["first"]:
            lookups["first"] = False
            return None  # ... after the loser looked and found no firing of the tick
        return find(cls, aggregate_id, **kwargs)

    monkeypatch.setattr(other_store, "find", not_seen_yet)
    clock.now = raced + timedelta(milliseconds=500)
    loser.run_once()
    assert not lookups["first"], "the loser decided to fire the raced tick"

    later = ticks[WARM_UP + 1 : WARM_UP + 5]
    clock.now = later[-1] + timedelta(milliseconds=500)
    loser.run_once()
    missing = [tick for tick in later if not fired_at(runtime, trigger, tick)]
    assert missing == [], "the loser of the race fired nothing after it"


def fired_at(runtime: Runtime, trigger: UUID, tick: datetime) -> bool:
    return runtime.store.find(TriggerFiring, firing_id(trigger, tick_occurrence(tick))) is not None
