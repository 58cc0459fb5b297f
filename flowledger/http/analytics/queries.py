"""Reading the analytics tables (ADR 0019): a time range is read from whole days and the hours
around them, so a month costs about as many rows as a day; percentiles are read from the
duration histograms.

Every query may be narrowed to the workflows a caller may view (per-workflow grants).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from sqlalchemy import ColumnElement, Select, Table, and_, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.domain.errors import FieldProblem, InvalidInput
from flowledger.http.analytics.schemas import (
    RUN_STATUSES,
    AgentFigures,
    Bucket,
    Durations,
    RunFigures,
    SeriesPoint,
    StepFigures,
    WorkflowFigures,
)
from flowledger.projections.run_analytics import FINISHED, percentiles
from flowledger.projections.tables import (
    analytics_run_durations,
    analytics_runs,
    analytics_step_durations,
    analytics_steps,
    workflows,
)

QUANTILES: Final = (0.5, 0.95, 0.99)
MAX_BUCKETS: Final = 1000
HOUR: Final = timedelta(hours=1)
DAY: Final = timedelta(days=1)
BUCKET_STEP: Final[dict[str, timedelta]] = {"hour": HOUR, "day": DAY, "week": timedelta(days=7)}


def _floor(moment: datetime, unit: str) -> datetime:
    moment = moment.astimezone(UTC)
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday()) if unit == "week" else day


def _ceil(moment: datetime, unit: str) -> datetime:
    floor = _floor(moment, unit)
    return floor if floor == moment else floor + BUCKET_STEP[unit]


@dataclass(frozen=True)
class TimeRange:
    """Runs created in ``[start, end)``, whole hours (UTC)."""

    start: datetime
    end: datetime
    bucket: Bucket

    @classmethod
    def of(
        cls, created_from: datetime | None, created_to: datetime | None, bucket: Bucket | None
    ) -> TimeRange:
        end = _aware(created_to) if created_to else datetime.now(UTC)
        start = _aware(created_from) if created_from else end - timedelta(days=7)
        start, end = _floor(start, "hour"), _ceil(end, "hour")
        if end <= start:
            raise InvalidInput([FieldProblem("created_to", "must be after created_from")])
        chosen: Bucket = bucket or ("hour" if end - start <= 2 * DAY else "day")
        found = cls(start, end, chosen)
        if found.bucket_count() > MAX_BUCKETS:
            raise InvalidInput(
                [
                    FieldProblem(
                        "bucket",
                        f"the range holds more than {MAX_BUCKETS} {chosen}s: choose a larger "
                        "bucket or a shorter range",
                    )
                ]
            )
        return found

    def bucket_count(self) -> int:
        first = _floor(self.start, self.bucket)
        return -(-(self.end - first) // BUCKET_STEP[self.bucket])

    def bucket_starts(self) -> list[datetime]:
        step, first = BUCKET_STEP[self.bucket], _floor(self.start, self.bucket)
        return [first + n * step for n in range(self.bucket_count())]

    def rows(self, table: Table, *, hourly: bool = False) -> ColumnElement[bool]:
        """The rows of ``table`` that count the range: whole days from the daily rows and the
        hours at either end from the hourly ones (``hourly``: every hour from hourly rows)."""
        span, start = table.c.span, table.c.bucket_start
        first_day, last_day = _ceil(self.start, "day"), _floor(self.end, "day")
        by_hour = and_(span == "hour", start >= self.start, start < self.end)
        if hourly or first_day >= last_day:
            return by_hour
        return or_(
            and_(span == "day", start >= first_day, start < last_day),
            and_(
                span == "hour",
                or_(
                    and_(start >= self.start, start < first_day),
                    and_(start >= last_day, start < self.end),
                ),
            ),
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _where(
    table: Table, when: TimeRange, workflow_id: UUID | None, visible: Any, *, hourly: bool = False
) -> list[ColumnElement[bool]]:
    conditions = [when.rows(table, hourly=hourly)]
    if workflow_id is not None:
        conditions.append(table.c.workflow_id == workflow_id)
    if visible is not None:
        conditions.append(table.c.workflow_id.in_(visible))
    return conditions


def durations(histogram: dict[int, int]) -> Durations:
    count, (p50, p95, p99) = percentiles(histogram, QUANTILES)
    return Durations(count=count, p50_ms=p50, p95_ms=p95, p99_ms=p99)


def figures(by_status: dict[str, int], histogram: dict[int, int]) -> RunFigures:
    counts: dict[str, int] = {status: int(by_status.get(status, 0)) for status in RUN_STATUSES}
    finished = sum(counts[s] for s in FINISHED)
    return RunFigures(
        runs=sum(counts.values()),
        by_status=counts,
        success_rate=round(counts["SUCCEEDED"] / finished, 4) if finished else None,
        duration=durations(histogram),
    )


async def series(
    conn: AsyncConnection, when: TimeRange, workflow_id: UUID | None, visible: Any
) -> list[SeriesPoint]:
    t = analytics_runs
    start = func.date_trunc(literal(when.bucket), t.c.bucket_start, literal("UTC")).label("b")
    query: Select[Any] = (
        select(start, t.c.status, func.sum(t.c.runs).label("runs"))
        .where(*_where(t, when, workflow_id, visible, hourly=when.bucket == "hour"))
        .group_by(start, t.c.status)
    )
    counted: dict[datetime, dict[str, int]] = defaultdict(dict)
    for row in await conn.execute(query):
        counted[row.b.astimezone(UTC)][row.status] = int(row.runs)
    points = []
    for bucket_start in when.bucket_starts():
        found = counted.get(bucket_start, {})
        by_status: dict[str, int] = {status: found.get(status, 0) for status in RUN_STATUSES}
        points.append(
            SeriesPoint(start=bucket_start, runs=sum(by_status.values()), by_status=by_status)
        )
    return points


async def runs_over_time(
    conn: AsyncConnection, when: TimeRange, workflow_id: UUID | None, visible: Any
) -> tuple[RunFigures, list[SeriesPoint]]:
    """The totals and the series of the range: the totals are the series' sums."""
    points = await series(conn, when, workflow_id, visible)
    by_status: Counter[str] = Counter()
    for point in points:
        by_status.update(point.by_status)
    histogram = await _histograms(conn, when, workflow_id, visible, None)
    return figures(dict(by_status), histogram.get(None, {})), points


async def _histograms(
    conn: AsyncConnection,
    when: TimeRange,
    workflow_id: UUID | None,
    visible: Any,
    workflow_ids: list[UUID] | None,
) -> dict[UUID | None, dict[int, int]]:
    """Run duration histograms: of each of ``workflow_ids``, or (None) of them all together."""
    d = analytics_run_durations
    keys: list[Any] = [d.c.duration_bucket]
    conditions = _where(d, when, workflow_id, visible)
    if workflow_ids is not None:
        keys.insert(0, d.c.workflow_id)
        conditions.append(d.c.workflow_id.in_(workflow_ids))
    rows = await conn.execute(
        select(*keys, func.sum(d.c.runs).label("n")).where(*conditions).group_by(*keys)
    )
    histograms: dict[UUID | None, dict[int, int]] = defaultdict(dict)
    for row in rows:
        owner = row.workflow_id if workflow_ids is not None else None
        histograms[owner][row.duration_bucket] = int(row.n)
    return histograms


async def busiest(
    conn: AsyncConnection, when: TimeRange, visible: Any, top: int
) -> list[WorkflowFigures]:
    """The workflows with the most runs in the range, with their figures."""
    t = analytics_runs
    counts: dict[UUID, dict[str, int]] = defaultdict(dict)
    rows = await conn.execute(
        select(t.c.workflow_id, t.c.status, func.sum(t.c.runs).label("n"))
        .where(*_where(t, when, None, visible))
        .group_by(t.c.workflow_id, t.c.status)
    )
    for row in rows:
        counts[row.workflow_id][row.status] = int(row.n)
    ranked = sorted(
        (w for w, by in counts.items() if sum(by.values()) > 0),
        key=lambda w: (-sum(counts[w].values()), str(w)),
    )[:top]
    if not ranked:
        return []
    histograms = await _histograms(conn, when, None, visible, ranked)
    names = await workflow_names(conn, ranked)
    return [
        WorkflowFigures(
            workflow_id=workflow_id,
            workflow_name=names.get(workflow_id),
            **_fields(figures(counts[workflow_id], histograms.get(workflow_id, {}))),
        )
        for workflow_id in ranked
    ]


def _fields(found: RunFigures) -> dict[str, Any]:
    return {name: getattr(found, name) for name in found.__struct_fields__}


async def workflow_names(conn: AsyncConnection, ids: list[UUID]) -> dict[UUID, str]:
    rows = await conn.execute(
        select(workflows.c.id, workflows.c.name).where(workflows.c.id.in_(ids))
    )
    return {row.id: row.name for row in rows}


async def steps_of(conn: AsyncConnection, when: TimeRange, workflow_id: UUID) -> list[StepFigures]:
    s, d = analytics_steps, analytics_step_durations
    counts = await conn.execute(
        select(
            s.c.step_id,
            s.c.agent_name,
            s.c.status,
            func.sum(s.c.steps).label("steps"),
            func.sum(s.c.attempts).label("attempts"),
            func.sum(s.c.retries).label("retries"),
            func.sum(s.c.failed_attempts).label("failed"),
        )
        .where(*_where(s, when, workflow_id, None))
        .group_by(s.c.step_id, s.c.agent_name, s.c.status)
    )
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for row in counts:
        key = (row.step_id, row.agent_name)
        entry = found.setdefault(key, {"by_status": {}, "attempts": 0, "failed": 0, "retries": 0})
        entry["by_status"][row.status] = int(row.steps)
        entry["attempts"] += int(row.attempts)
        entry["retries"] += int(row.retries)
        entry["failed"] += int(row.failed)
    histograms: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for bar in await conn.execute(
        select(d.c.step_id, d.c.agent_name, d.c.duration_bucket, func.sum(d.c.steps).label("n"))
        .where(*_where(d, when, workflow_id, None))
        .group_by(d.c.step_id, d.c.agent_name, d.c.duration_bucket)
    ):
        histograms[(bar.step_id, bar.agent_name)][bar.duration_bucket] = int(bar.n)
    return [
        StepFigures(
            step_id=step_id,
            agent_name=agent_name,
            steps=sum(entry["by_status"].values()),
            by_status=entry["by_status"],
            attempts=entry["attempts"],
            retries=entry["retries"],
            failed_attempts=entry["failed"],
            duration=durations(histograms.get((step_id, agent_name), {})),
        )
        for (step_id, agent_name), entry in sorted(found.items())
    ]


async def agents(conn: AsyncConnection, when: TimeRange, visible: Any) -> list[AgentFigures]:
    s, d = analytics_steps, analytics_step_durations
    found: dict[str, dict[str, Any]] = {}
    for row in await conn.execute(
        select(
            s.c.agent_name,
            s.c.status,
            func.sum(s.c.steps).label("steps"),
            func.sum(s.c.attempts).label("attempts"),
            func.sum(s.c.retries).label("retries"),
            func.sum(s.c.failed_attempts).label("failed"),
        )
        .where(*_where(s, when, None, visible))
        .group_by(s.c.agent_name, s.c.status)
    ):
        entry = found.setdefault(
            row.agent_name, {"by_status": {}, "attempts": 0, "retries": 0, "failed": 0}
        )
        entry["by_status"][row.status] = int(row.steps)
        entry["attempts"] += int(row.attempts)
        entry["retries"] += int(row.retries)
        entry["failed"] += int(row.failed)
    histograms: dict[str, dict[int, int]] = defaultdict(dict)
    for bar in await conn.execute(
        select(d.c.agent_name, d.c.duration_bucket, func.sum(d.c.steps).label("n"))
        .where(*_where(d, when, None, visible))
        .group_by(d.c.agent_name, d.c.duration_bucket)
    ):
        histograms[bar.agent_name][bar.duration_bucket] = int(bar.n)
    result = [
        AgentFigures(
            agent_name=name,
            steps=sum(entry["by_status"].values()),
            failed_steps=entry["by_status"].get("FAILED", 0),
            attempts=entry["attempts"],
            retries=entry["retries"],
            failed_attempts=entry["failed"],
            duration=durations(histograms.get(name, {})),
        )
        for name, entry in found.items()
    ]
    return sorted(result, key=lambda a: (-a.attempts, a.agent_name))
