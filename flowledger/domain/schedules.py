"""When a schedule trigger fires: its ticks, and which of them are due after a pause in the
scheduler's work (catch-up).

The cron arithmetic is the ``cronsim`` library's (the same semantics as cron, time zones and
daylight-saving changes included: a tick in a skipped hour fires when the hour resumes, one in a
repeated hour fires once). Ticks are computed in the trigger's time zone and handled in UTC.

A tick is *on time* while it is less than ``grace`` old; older unfired ticks were *missed* (no
scheduler ran, or the trigger could not fire) and the trigger's catch-up policy decides: ``skip``
them, run the ``latest`` one, or run ``all`` of them, at most ``catchup_limit`` (the most recent).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, Final
from zoneinfo import ZoneInfo

from cronsim import CronSim

from flowledger.domain.triggers import DEFAULT_CATCHUP, DEFAULT_CATCHUP_LIMIT

MACROS: Final = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
LOOKBACK: Final = timedelta(days=400)
"""How far back missed ticks are looked for: older ones are skipped whatever the policy."""
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Schedule:
    """A schedule trigger's timing: ``cron`` (in ``timezone``) or ``every`` seconds."""

    cron: str | None = None
    every_s: int | None = None
    timezone: str = "UTC"
    catchup: str = DEFAULT_CATCHUP
    catchup_limit: int = DEFAULT_CATCHUP_LIMIT

    @classmethod
    def of(cls, trigger: Mapping[str, Any]) -> Schedule:
        """The schedule of a (valid) schedule trigger as written in a definition."""
        return cls(
            cron=trigger.get("cron"),
            every_s=trigger.get("every"),
            timezone=trigger.get("timezone", "UTC"),
            catchup=trigger.get("catchup", DEFAULT_CATCHUP),
            catchup_limit=trigger.get("catchup_limit", DEFAULT_CATCHUP_LIMIT),
        )

    def ticks_after(self, moment: datetime) -> Iterator[datetime]:
        """Every tick strictly after ``moment``, in order, in UTC."""
        moment = moment.astimezone(UTC)
        if self.every_s is not None:
            step = timedelta(seconds=self.every_s)
            count = (moment - EPOCH) // step + 1
            tick = EPOCH + step * count
            while True:
                yield tick
                tick += step
        assert self.cron is not None
        expression = MACROS.get(self.cron.strip().lower(), self.cron)
        local = moment.astimezone(ZoneInfo(self.timezone)).replace(microsecond=0)
        for tick in CronSim(expression, local):
            yield tick.astimezone(UTC)

    def next_times(self, after: datetime, count: int) -> list[datetime]:
        return list(islice(self.ticks_after(after), count))

    def between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """The ticks in ``(start, end]``, at most ``limit`` (the first ones)."""
        found: list[datetime] = []
        for tick in self.ticks_after(start):
            if tick > end or len(found) >= limit:
                break
            found.append(tick)
        return found

    def due(self, since: datetime, now: datetime, grace: timedelta) -> list[datetime]:
        """The ticks to fire now, oldest first, for a trigger whose ticks up to ``since`` are
        handled: those in ``(since, now]``, with the missed ones (older than ``grace``) reduced
        by the catch-up policy."""
        late = now - grace
        since = max(since, now - LOOKBACK, late if self.catchup == "skip" else since)
        missed: deque[datetime] = deque(maxlen=self.catchup_limit)
        on_time: list[datetime] = []
        for tick in self.ticks_after(since):
            if tick > now:
                break
            if tick > late:
                on_time.append(tick)
            elif self.catchup != "skip":
                missed.append(tick)
        if self.catchup == "latest":
            return [*list(missed)[-1:], *on_time]
        return [*missed, *on_time]
