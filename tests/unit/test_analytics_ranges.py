"""Which analytics rows count a time range: each range is read as one key range per span, so
the spans must cover the range exactly, without overlap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flowledger.http.analytics.queries import TimeRange

pytestmark = pytest.mark.unit

DAY = datetime(2026, 11, 2, tzinfo=UTC)


def hours_covered(found: TimeRange, *, hourly: bool = False) -> list[datetime]:
    step = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
    covered = []
    for span, low, high in found.spans(hourly=hourly):
        moment = low
        while moment < high:
            covered += [moment + timedelta(hours=h) for h in range(24 if span == "day" else 1)]
            moment += step[span]
    return sorted(covered)


def every_hour(found: TimeRange) -> list[datetime]:
    count = int((found.end - found.start) / timedelta(hours=1))
    return [found.start + timedelta(hours=h) for h in range(count)]


@pytest.mark.parametrize(
    ("start", "end", "spans"),
    [
        (DAY - timedelta(hours=3), DAY + timedelta(days=2, hours=12), ["day", "hour", "hour"]),
        (DAY, DAY + timedelta(days=3), ["day"]),
        (DAY + timedelta(hours=5), DAY + timedelta(days=3), ["day", "hour"]),
        (DAY, DAY + timedelta(days=3, hours=1), ["day", "hour"]),
        (DAY + timedelta(hours=5), DAY + timedelta(days=1, hours=2), ["hour"]),
    ],
)
def test_the_spans_of_a_range_cover_each_of_its_hours_once(
    start: datetime, end: datetime, spans: list[str]
) -> None:
    found = TimeRange.of(start, end, "day")
    assert [span for span, _, _ in found.spans()] == spans
    assert hours_covered(found) == every_hour(found)
    assert hours_covered(found, hourly=True) == every_hour(found)
    assert found.spans(hourly=True) == [("hour", found.start, found.end)]
