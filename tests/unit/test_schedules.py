"""Schedules under a fake clock: ticks, time zones, and which ticks are due after downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowledger.domain.schedules import Schedule

pytestmark = pytest.mark.unit
GRACE = timedelta(seconds=60)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_cron_ticks_come_in_utc_strictly_after_the_moment() -> None:
    schedule = Schedule(cron="*/15 * * * *")
    assert schedule.next_times(at("2026-01-01T00:00:00"), 3) == [
        at("2026-01-01T00:15:00"),
        at("2026-01-01T00:30:00"),
        at("2026-01-01T00:45:00"),
    ]


def test_macros_are_cron_expressions() -> None:
    assert Schedule(cron="@daily").next_times(at("2026-01-01T10:00:00"), 1) == [
        at("2026-01-02T00:00:00")
    ]
    assert Schedule(cron="@hourly").next_times(at("2026-01-01T10:00:30"), 1) == [
        at("2026-01-01T11:00:00")
    ]


def test_a_time_zone_moves_the_ticks_and_follows_daylight_saving() -> None:
    schedule = Schedule(cron="0 9 * * *", timezone="Europe/Paris")
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer (clocks move on 29 March)
    assert schedule.next_times(at("2026-03-28T00:00:00"), 2) == [
        at("2026-03-28T08:00:00"),
        at("2026-03-29T07:00:00"),
    ]


def test_a_tick_in_the_skipped_hour_fires_when_the_hour_resumes() -> None:
    schedule = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    assert schedule.next_times(at("2026-03-28T12:00:00"), 1) == [at("2026-03-29T01:00:00")]


def test_every_ticks_at_whole_multiples_of_the_interval() -> None:
    schedule = Schedule(every_s=300)
    assert schedule.next_times(at("2026-01-01T00:01:00"), 2) == [
        at("2026-01-01T00:05:00"),
        at("2026-01-01T00:10:00"),
    ]


def test_on_time_ticks_are_due_whatever_the_policy() -> None:
    for policy in ("skip", "latest", "all"):
        schedule = Schedule(cron="* * * * *", catchup=policy)
        due = schedule.due(at("2026-01-01T00:00:00"), at("2026-01-01T00:01:10"), GRACE)
        assert due == [at("2026-01-01T00:01:00")], policy


def test_after_downtime_skip_drops_the_missed_ticks() -> None:
    schedule = Schedule(cron="*/10 * * * *", catchup="skip")
    due = schedule.due(at("2026-01-01T00:00:00"), at("2026-01-01T01:00:30"), GRACE)
    assert due == [at("2026-01-01T01:00:00")]


def test_after_downtime_latest_runs_only_the_newest_missed_tick() -> None:
    schedule = Schedule(cron="*/10 * * * *", catchup="latest")
    due = schedule.due(at("2026-01-01T00:00:00"), at("2026-01-01T00:55:00"), GRACE)
    assert due == [at("2026-01-01T00:50:00")]


def test_after_downtime_all_runs_the_missed_ticks_up_to_the_limit_newest_kept() -> None:
    schedule = Schedule(cron="*/10 * * * *", catchup="all", catchup_limit=3)
    due = schedule.due(at("2026-01-01T00:00:00"), at("2026-01-01T01:00:30"), GRACE)
    assert due == [  # three of the five missed ticks, then the one on time
        at("2026-01-01T00:30:00"),
        at("2026-01-01T00:40:00"),
        at("2026-01-01T00:50:00"),
        at("2026-01-01T01:00:00"),
    ]


def test_nothing_is_due_twice_once_the_watermark_moves() -> None:
    schedule = Schedule(cron="* * * * *")
    first = schedule.due(at("2026-01-01T00:00:00"), at("2026-01-01T00:02:00"), GRACE)
    again = schedule.due(first[-1], at("2026-01-01T00:02:30"), GRACE)
    assert first and again == []


@given(
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    steps=st.lists(st.integers(min_value=1, max_value=3600), min_size=1, max_size=20),
    every=st.sampled_from([1, 7, 60, 300]),
)
def test_a_scheduler_passing_at_any_moments_fires_every_tick_exactly_once(
    start: datetime, steps: list[int], every: int
) -> None:
    """With passes less than the grace apart, each tick is due in exactly one pass."""
    schedule = Schedule(every_s=every, catchup="all", catchup_limit=1000)
    grace = timedelta(seconds=3600)
    now = since = start.replace(tzinfo=UTC)
    fired: list[datetime] = []
    for step in steps:
        now += timedelta(seconds=step)
        due = schedule.due(since, now, grace)
        fired += due
        since = due[-1] if due else since
    assert fired == schedule.between(start.replace(tzinfo=UTC), now, 100_000)
