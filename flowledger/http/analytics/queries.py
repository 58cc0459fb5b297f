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

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    Table,
    and_,
    func,
    literal,
    or_,
    select,
    union_all,
)
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
    analytics_agent_step_durations,
    analytics_agent_steps,
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

    def spans(self, *, hourly: bool = False) -> list[tuple[str, datetime, datetime]]:
        """The rows that count the range, as ``(span, from, to)`` of their bucket's start:
        whole days from the daily rows and the hours at either end from the hourly ones
        (``hourly``: every hour from hourly rows)."""
        first_day, last_day = _ceil(self.start, "day"), _floor(self.end, "day")
        if hourly or first_day >= last_day:
            return [("hour", self.start, self.end)]
        found = [("day", first_day, last_day)]
        if self.start < first_day:
            found.append(("hour", self.start, first_day))
        if last_day < self.end:
            found.append(("hour", last_day, self.end))
        return found

    def rows(self, table: Table, *, hourly: bool = False) -> ColumnElement[bool]:
        """The rows of ``table`` that count the range (:meth:`spans`), as one condition."""
        span, start = table.c.span, table.c.bucket_start
        return or_(
            *(
                and_(span == name, start >= low, start < high)
                for name, low, high in self.spans(hourly=hourly)
            )
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _where(
    table: Table, when: TimeRange, workflow_id: UUID | None, visible: Any, *, hourly: bool = False
) -> list[ColumnElement[bool]]:
    return [when.rows(table, hourly=hourly), *_workflows(table, workflow_id, visible)]


def _workflows(table: Table, workflow_id: UUID | None, visible: Any) -> list[ColumnElement[bool]]:
    conditions = []
    if workflow_id is not None:
        conditions.append(table.c.workflow_id == workflow_id)
    if visible is not None:
        conditions.append(table.c.workflow_id.in_(visible))
    return conditions


def _scan(
    table: Table, when: TimeRange, workflow_id: UUID | None, visible: Any, *, hourly: bool = False
) -> Subquery:
    """The rows of ``table`` that count the range, one range of its primary key per span
    (``UNION ALL``): the keys of ``analytics_runs`` and ``analytics_run_durations`` include
    the counts (migration 0180), so each is an index-only scan, where one condition over the
    spans (:meth:`TimeRange.rows`) is a bitmap scan visiting a heap page for nearly every row."""
    span, start = table.c.span, table.c.bucket_start
    parts = [
        select(table).where(
            span == name, start >= low, start < high, *_workflows(table, workflow_id, visible)
        )
        for name, low, high in when.spans(hourly=hourly)
    ]
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("r")


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
    t = _scan(analytics_runs, when, workflow_id, visible, hourly=when.bucket == "hour")
    start = func.date_trunc(literal(when.bucket), t.c.bucket_start, literal("UTC")).label("b")
    query: Select[Any] = select(start, t.c.status, func.sum(t.c.runs).label("runs")).group_by(
        start, t.c.status
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
    histogram = await _histogram(conn, when, workflow_id, visible)
    return _totals(points, histogram), points


async def overview(
    conn: AsyncConnection, when: TimeRange, visible: Any, top: int
) -> tuple[RunFigures, list[SeriesPoint], list[WorkflowFigures]]:
    """:func:`runs_over_time` of every workflow and the ``top`` busiest workflows' figures,
    their durations and the totals' read in one pass over the duration rows."""
    points = await series(conn, when, None, visible)
    counts, ranked = await _busiest(conn, when, visible, top)
    histograms = await _histograms(conn, when, visible, ranked)
    totals = _totals(points, histograms.get(None, {}))
    if not ranked:
        return totals, points, []
    names = await workflow_names(conn, ranked)
    busiest = [
        WorkflowFigures(
            workflow_id=workflow_id,
            workflow_name=names.get(workflow_id),
            **_fields(figures(counts[workflow_id], histograms.get(workflow_id, {}))),
        )
        for workflow_id in ranked
    ]
    return totals, points, busiest


def _totals(points: list[SeriesPoint], histogram: dict[int, int]) -> RunFigures:
    by_status: Counter[str] = Counter()
    for point in points:
        by_status.update(point.by_status)
    return figures(dict(by_status), histogram)


async def _histogram(
    conn: AsyncConnection, when: TimeRange, workflow_id: UUID | None, visible: Any
) -> dict[int, int]:
    """The run duration histogram of the range (of one workflow, or of them all)."""
    d = _scan(analytics_run_durations, when, workflow_id, visible)
    rows = await conn.execute(
        select(d.c.duration_bucket, func.sum(d.c.runs).label("n")).group_by(d.c.duration_bucket)
    )
    return {row.duration_bucket: int(row.n) for row in rows}


async def _histograms(
    conn: AsyncConnection, when: TimeRange, visible: Any, workflow_ids: list[UUID]
) -> dict[UUID | None, dict[int, int]]:
    """Run duration histograms of each of ``workflow_ids`` and (None) of every workflow, from
    one scan of the range's rows: the per-workflow sums are summed again for the total."""
    d = _scan(analytics_run_durations, when, None, visible)
    each = (
        select(d.c.workflow_id, d.c.duration_bucket, func.sum(d.c.runs).label("n"))
        .group_by(d.c.workflow_id, d.c.duration_bucket)
        .cte("each")
    )
    total = select(
        literal(None, each.c.workflow_id.type).label("workflow_id"),
        each.c.duration_bucket,
        func.sum(each.c.n).label("n"),
    ).group_by(each.c.duration_bucket)
    chosen = select(each.c.workflow_id, each.c.duration_bucket, each.c.n).where(
        each.c.workflow_id.in_(workflow_ids)
    )
    histograms: dict[UUID | None, dict[int, int]] = defaultdict(dict)
    for row in await conn.execute(union_all(total, chosen)):
        histograms[row.workflow_id][row.duration_bucket] = int(row.n)
    return histograms


async def _busiest(
    conn: AsyncConnection, when: TimeRange, visible: Any, top: int
) -> tuple[dict[UUID, dict[str, int]], list[UUID]]:
    """Each workflow's runs per status in the range, and the ``top`` with the most runs."""
    t = _scan(analytics_runs, when, None, visible)
    counts: dict[UUID, dict[str, int]] = defaultdict(dict)
    rows = await conn.execute(
        select(t.c.workflow_id, t.c.status, func.sum(t.c.runs).label("n")).group_by(
            t.c.workflow_id, t.c.status
        )
    )
    for row in rows:
        counts[row.workflow_id][row.status] = int(row.n)
    ranked = sorted(
        (w for w, by in counts.items() if sum(by.values()) > 0),
        key=lambda w: (-sum(counts[w].values()), str(w)),
    )[:top]
    return counts, ranked


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
    """Each agent's steps, attempts and durations: from the per-agent rollups when the caller
    may view every workflow, else summed over the workflows it may view."""
    if visible is None:
        s: Any = _scan(analytics_agent_steps, when, None, None)
        d: Any = _scan(analytics_agent_step_durations, when, None, None)
    else:
        s = _scan(analytics_steps, when, None, visible)
        d = _scan(analytics_step_durations, when, None, visible)
    found: dict[str, dict[str, Any]] = {}
    for row in await conn.execute(
        select(
            s.c.agent_name,
            s.c.status,
            func.sum(s.c.steps).label("steps"),
            func.sum(s.c.attempts).label("attempts"),
            func.sum(s.c.retries).label("retries"),
            func.sum(s.c.failed_attempts).label("failed"),
        ).group_by(s.c.agent_name, s.c.status)
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
        select(d.c.agent_name, d.c.duration_bucket, func.sum(d.c.steps).label("n")).group_by(
            d.c.agent_name, d.c.duration_bucket
        )
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
