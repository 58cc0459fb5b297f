"""The scheduler against a real database: under a fake clock (ticks, catch-up, pause, two
schedulers at once, backfill), and for real as two ``flowledger worker scheduler`` processes
killed with SIGKILL along the way: no tick runs twice, none is missed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from flowledger.commands.agents import RegisterAgent, register_agent
from flowledger.commands.triggers import (
    Backfill,
    PauseTrigger,
    ResumeTrigger,
    backfill,
    pause_trigger,
    resume_trigger,
    trigger_actor,
)
from flowledger.commands.workflows import CreateWorkflow, create_workflow
from flowledger.domain.runs import Run
from flowledger.domain.schedules import Schedule
from flowledger.domain.triggering import trigger_id
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.store import EventMetadata
from flowledger.projections.projector import Projector
from flowledger.projections.tables import runs, trigger_firings
from flowledger.projections.triggers import TriggersProjection
from flowledger.projections.workflows import WorkflowsProjection
from flowledger.runtime.process import Runtime
from flowledger.runtime.workers import InProcessWorkers
from flowledger.scheduling.scheduler import Scheduler
from flowledger.scheduling.settings import SchedulerSettings
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
META = EventMetadata.system("tester")


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def scheduled_workflow(runtime: Runtime, **trigger: Any) -> UUID:
    """A workflow with one schedule trigger; its trigger's id."""
    register_agent(runtime.store, RegisterAgent(name="target", url="http://127.0.0.1:9"), META)
    definition = {
        "steps": {"only": {"agent_name": "target", "input_mapping": {"n": "$.input.n"}}},
        "input_schema": {"type": "object", "required": ["n"]},
        "triggers": [{"type": "schedule", "input": {"n": 1}, **trigger}],
    }
    created = create_workflow(
        runtime.store, CreateWorkflow(name="scheduled", definition=definition), META
    )
    project(runtime)
    return trigger_id(created.aggregate.id, "schedule-1")


def project(runtime: Runtime) -> None:
    for projection in (WorkflowsProjection(), TriggersProjection()):
        Follower(runtime.store, Projector(projection, runtime.store, runtime.engine)).catch_up()


def firings(runtime: Runtime, trigger: UUID) -> list[tuple[datetime, UUID | None]]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(trigger_firings.c.scheduled_for, trigger_firings.c.run_id)
            .where(trigger_firings.c.trigger_id == trigger)
            .order_by(trigger_firings.c.scheduled_for)
        ).all()
    return [(row.scheduled_for, row.run_id) for row in rows]


def scheduler(runtime: Runtime, clock: FakeClock) -> Scheduler:
    return Scheduler(runtime.store, runtime.engine, SchedulerSettings(grace_s=60), clock)


def fire_from(runtime: Runtime, trigger: UUID) -> datetime:
    from flowledger.projections.tables import triggers  # noqa: PLC0415

    with runtime.engine.connect() as conn:
        value = conn.execute(select(triggers.c.fire_from).where(triggers.c.id == trigger)).scalar()
    assert isinstance(value, datetime)
    return value


def test_a_tick_fires_once_as_a_run_of_the_triggers_input_with_its_actor_and_key(
    runtime: Runtime,
) -> None:
    trigger = scheduled_workflow(runtime, cron="*/5 * * * *")
    tick = Schedule(cron="*/5 * * * *").next_times(fire_from(runtime, trigger), 1)[0]
    clock = FakeClock(tick - timedelta(seconds=1))
    first = scheduler(runtime, clock)
    first.run_once()
    assert firings(runtime, trigger) == []

    clock.now = tick + timedelta(seconds=2)
    first.run_once()
    scheduler(runtime, clock).run_once()  # a second scheduler, before the read table moved
    project(runtime)
    first.run_once()
    fired = firings(runtime, trigger)
    assert [t for t, _ in fired] == [tick]
    run = runtime.store.get(Run, fired[0][1])  # type: ignore[arg-type]
    assert run.input_data == {"n": 1}
    assert run.triggered_by == trigger_actor(trigger)
    assert run.idempotency_key == f"trigger:{trigger}:tick:{tick.isoformat()}"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("skip", 0), ("latest", 1), ("all", 4)],
)
def test_after_downtime_the_catchup_policy_decides_what_runs(
    runtime: Runtime, policy: str, expected: int
) -> None:
    trigger = scheduled_workflow(runtime, every=300, catchup=policy, catchup_limit=4)
    start = fire_from(runtime, trigger)
    missed = Schedule(every_s=300).between(start, start + timedelta(hours=1), 100)
    clock = FakeClock(missed[-1] + timedelta(seconds=90))  # every tick is over a minute late
    scheduler(runtime, clock).run_once()
    project(runtime)
    assert [t for t, _ in firings(runtime, trigger)] == missed[len(missed) - expected :]


def test_a_paused_trigger_does_not_fire_and_resumes_without_catching_up(
    runtime: Runtime,
) -> None:
    trigger = scheduled_workflow(runtime, every=60, catchup="all")
    pause_trigger(runtime.store, PauseTrigger(trigger_id=trigger), META)
    project(runtime)
    clock = FakeClock(datetime.now(UTC) + timedelta(minutes=10))
    scheduler(runtime, clock).run_once()
    project(runtime)
    assert firings(runtime, trigger) == []
    resume_trigger(runtime.store, ResumeTrigger(trigger_id=trigger), META)
    project(runtime)
    resumed_at = fire_from(runtime, trigger)
    # (resumed_at, resumed_at + 60 s] holds exactly one tick of a 60 s schedule wherever it
    # starts; 61 s held two when the trigger resumed in the last second of a minute.
    clock.now = resumed_at + timedelta(seconds=60)
    scheduler(runtime, clock).run_once()
    project(runtime)
    assert all(t > resumed_at for t, _ in firings(runtime, trigger))
    assert len(firings(runtime, trigger)) == 1


def test_a_backfill_runs_the_past_ticks_that_did_not_fire_and_only_those(
    runtime: Runtime,
) -> None:
    trigger = scheduled_workflow(runtime, cron="0 * * * *")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    command = Backfill(trigger_id=trigger, start=start, end=start + timedelta(hours=3))
    first = backfill(runtime.store, command, META)
    assert (len(first.ticks), first.started) == (3, 3)
    again = backfill(
        runtime.store,
        Backfill(trigger_id=trigger, start=start, end=start + timedelta(hours=4)),
        META,
    )
    assert (len(again.ticks), again.started) == (4, 1)
    project(runtime)
    assert [t.hour for t, _ in firings(runtime, trigger)] == [1, 2, 3, 4]


def start_scheduler(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "flowledger", "worker", "scheduler"], env=env)


def test_two_scheduler_processes_and_kill_9_fire_every_tick_exactly_once(
    runtime: Runtime,
) -> None:
    trigger = scheduled_workflow(runtime, every=1, catchup="all")
    env = {
        **os.environ,
        "DATABASE_URL": runtime.database.libpq_url,
        "FLOWLEDGER_LOG_LEVEL": "WARNING",
        "FLOWLEDGER_SCHEDULER_INTERVAL": "0.2",
    }
    projections = InProcessWorkers(runtime, ("projections",))
    projections.start()
    processes = [start_scheduler(env), start_scheduler(env)]

    def ticks_fired() -> int:
        return len(firings(runtime, trigger))

    def wait_for_more(count: int) -> None:
        eventually(ticks_fired, lambda n: n >= count, what=f"{count} ticks to fire", timeout_s=60)

    try:
        wait_for_more(3)
        os.kill(processes[0].pid, signal.SIGKILL)  # one dies, the other goes on
        processes[0].wait()
        wait_for_more(ticks_fired() + 3)
        os.kill(processes[1].pid, signal.SIGKILL)  # both are dead for a while
        processes[1].wait()
        time.sleep(2.5)
        processes = [start_scheduler(env)]  # a restart catches the missed ticks up
        wait_for_more(ticks_fired() + 5)
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        projections.stop()
    project(runtime)
    fired = firings(runtime, trigger)
    ticks = [t for t, _ in fired]
    assert all(run_id is not None for _, run_id in fired)
    assert ticks == sorted(set(ticks)), "no tick fired twice"
    expected = Schedule(every_s=1).between(ticks[0] - timedelta(seconds=1), ticks[-1], 10_000)
    assert ticks == expected, "no tick was missed between the first and the last"
    with runtime.engine.connect() as conn:
        started = conn.execute(
            select(runs.c.id).where(runs.c.triggered_by == trigger_actor(trigger))
        ).all()
    assert len(started) == len(ticks)
