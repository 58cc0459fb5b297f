"""The scheduler process: fires every enabled schedule trigger at its ticks.

Each pass reads the schedule triggers of active workflows from the triggers read table, asks
each trigger's :class:`~flowledger.domain.schedules.Schedule` which ticks are due since the
newest one fired (``last_tick``, or since the trigger was defined, changed or resumed), and
fires them oldest first (:func:`~flowledger.commands.triggers.fire_tick`).

Any number of schedulers may run. A tick's firing and its run are recorded in one append under
ids derived from the trigger and the tick, so when two schedulers (or one restarted after a
kill -9, with a read table that had not seen its last firing yet) fire the same tick, one
append wins and the other is a replay: no tick runs twice. A tick is handled only after its
firing is recorded, so none is missed: a scheduler that dies before recording leaves the tick
due for the next pass of any scheduler.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

from sqlalchemy import Engine, select

from flowledger.commands.triggers import Fired, fire_tick
from flowledger.domain.schedules import Schedule
from flowledger.eventlog.store import EventStore
from flowledger.observability import metrics
from flowledger.observability.logs import RecurringFailures
from flowledger.projections.tables import triggers, workflows
from flowledger.runtime.process import Runtime
from flowledger.scheduling.settings import SchedulerSettings

log = logging.getLogger(__name__)

NEVER: Final = datetime(1970, 1, 1, tzinfo=UTC)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ScheduledTrigger:
    """A schedule trigger as the read table shows it, and from when its ticks are due."""

    id: UUID
    schedule: Schedule
    since: datetime
    fire_from: datetime


class Scheduler:
    def __init__(
        self,
        store: EventStore,
        engine: Engine,
        settings: SchedulerSettings,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.grace = timedelta(seconds=settings.grace_s)
        self._handled: dict[tuple[UUID, datetime], datetime] = {}
        """Per trigger (and its ``fire_from``): up to when this process has handled its ticks,
        so ticks skipped by a catch-up policy are not looked at again on every pass."""
        self._failures = RecurringFailures(log)
        """Failing passes (key ``None``) and triggers whose due tick could not be recorded (key:
        the trigger), tried again every pass and said once per cause."""

    def run(self, stop: threading.Event) -> None:
        """Pass after pass until ``stop``. A pass that fails (the database is down, or the
        like) is tried again every ``interval_s``: said once as a warning (again only if the
        cause changes), and once more when passes work again, not on every try."""
        while not stop.is_set():
            try:
                wait = self.run_once()
            except Exception as error:
                self._failures.failed(
                    None,
                    error,
                    "scheduler: a pass failed; trying again every %gs until it works, without "
                    "saying so each time (%s)",
                    self.settings.interval_s,
                )
                wait = self.settings.interval_s
            else:
                self._failures.recovered(None, "scheduler: passes work again (after %s)")
            stop.wait(wait)

    def run_once(self) -> float:
        """Fire every due tick; the seconds until the next pass."""
        now = self.clock()
        upcoming: list[datetime] = []
        for trigger in self.schedule_triggers():
            if self._fire_due(trigger, now):
                self._handled[(trigger.id, trigger.fire_from)] = now
            upcoming += trigger.schedule.next_times(now, 1)
        soonest = min(upcoming, default=None)
        wait = self.settings.interval_s
        if soonest is not None:
            wait = min(wait, max(0.0, (soonest - self.clock()).total_seconds()))
        return wait

    def schedule_triggers(self) -> list[ScheduledTrigger]:
        query = (
            select(triggers.c.id, triggers.c.config, triggers.c.fire_from, triggers.c.last_tick)
            .join(workflows, workflows.c.id == triggers.c.workflow_id)
            .where(
                triggers.c.type == "schedule",
                triggers.c.enabled.is_(True),
                triggers.c.paused.is_(False),
                triggers.c.removed.is_(False),
                workflows.c.status == "active",
            )
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        found = []
        for row in rows:
            handled = self._handled.get((row.id, row.fire_from), NEVER)
            since = max(row.fire_from, row.last_tick or NEVER, handled)
            found.append(ScheduledTrigger(row.id, Schedule.of(row.config), since, row.fire_from))
        return found

    def _fire_due(self, trigger: ScheduledTrigger, now: datetime) -> bool:
        """Fire the trigger's due ticks; False when one could not be recorded (it stays due)."""
        for tick in trigger.schedule.due(trigger.since, now, self.grace):
            try:
                fired = fire_tick(self.store, trigger.id, tick)
            except Exception as error:
                metrics.TRIGGER_FIRE_ERRORS.labels(type="schedule").inc()
                self._failures.failed(
                    trigger.id,
                    error,
                    "trigger %s: tick %s not fired yet; trying again every pass, without saying "
                    "so each time (%s)",
                    trigger.id,
                    tick,
                )
                return False
            _observe(trigger.id, tick, fired)
        self._failures.recovered(trigger.id, "trigger %s: ticks fire again (after %s)", trigger.id)
        return True


def _observe(trigger: UUID, tick: datetime, fired: Fired) -> None:
    firing = fired.aggregate
    if fired.replayed:
        log.debug("trigger %s: tick %s had fired already", trigger, tick)
    elif firing.run_id is not None:
        log.info("trigger %s fired for %s: run %s", trigger, tick.isoformat(), firing.run_id)
    else:
        log.warning("trigger %s could not fire for %s: %s", trigger, tick, firing.error)


def run_scheduler(runtime: Runtime, stop: threading.Event) -> None:
    """The ``scheduler`` worker kind."""
    settings = SchedulerSettings.from_settings(runtime.settings)
    Scheduler(runtime.store, runtime.engine, settings).run(stop)
