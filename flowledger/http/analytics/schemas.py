"""Answers of the analytics routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from flowledger.http.runs.schemas import RunStatus

Bucket = Literal["hour", "day", "week"]
ByStatus = Annotated[
    dict[str, int],
    Meta(
        description="Runs in each status (every status, zeros included).",
        examples=[{"PENDING": 0, "RUNNING": 1, "SUCCEEDED": 17, "FAILED": 2, "CANCELLED": 0}],
    ),
]
SuccessRate = Annotated[
    float | None,
    Meta(
        description="SUCCEEDED / (SUCCEEDED + FAILED + CANCELLED): of the runs that finished, "
        "the share that succeeded (null when none finished).",
        examples=[0.8947],
    ),
]


class Durations(msgspec.Struct, kw_only=True):
    """Durations in milliseconds, from start to end, of the runs (or steps) that finished
    after starting; each percentile is within 2.5% of the exact nearest-rank one (null when
    none finished)."""

    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class RunFigures(msgspec.Struct, kw_only=True):
    runs: int
    by_status: ByStatus
    success_rate: SuccessRate
    duration: Durations


class WorkflowFigures(RunFigures, kw_only=True):
    workflow_id: UUID
    workflow_name: Annotated[str | None, Meta(description="Its name now (null if unknown).")]


class SeriesPoint(msgspec.Struct, kw_only=True):
    start: Annotated[datetime, Meta(description="The bucket's start (UTC).")]
    runs: int
    by_status: ByStatus


class StepFigures(msgspec.Struct, kw_only=True):
    step_id: str
    agent_name: str
    steps: Annotated[int, Meta(description="Steps of the runs in the range.")]
    by_status: Annotated[dict[str, int], Meta(description="Steps in each status.")]
    attempts: Annotated[int, Meta(description="Calls of the agent for these steps.")]
    retries: Annotated[int, Meta(description="Attempts after a step's first.")]
    failed_attempts: int
    duration: Durations


class AgentFigures(msgspec.Struct, kw_only=True):
    agent_name: str
    steps: Annotated[int, Meta(description="Steps calling the agent in the range's runs.")]
    failed_steps: Annotated[int, Meta(description="Steps that failed for good.")]
    attempts: int
    retries: Annotated[int, Meta(description="Attempts after a step's first.")]
    failed_attempts: Annotated[int, Meta(description="Calls that failed (retried or not).")]
    duration: Durations


class Range(msgspec.Struct, kw_only=True):
    created_from: Annotated[
        datetime, Meta(description="Runs created from here (inclusive; down to the hour).")
    ]
    created_to: Annotated[datetime, Meta(description="Runs created before here (up to the hour).")]
    bucket: Bucket


class RunAnalytics(Range, kw_only=True):
    """Runs created in the range: how many in each status, over time; their success rate and
    durations; the busiest workflows."""

    totals: RunFigures
    series: list[SeriesPoint]
    busiest_workflows: list[WorkflowFigures]


class WorkflowAnalytics(Range, kw_only=True):
    """One workflow's runs created in the range, over time, and each of its steps."""

    workflow_id: UUID
    workflow_name: str | None
    totals: RunFigures
    series: list[SeriesPoint]
    steps: list[StepFigures]


class AgentAnalytics(msgspec.Struct, kw_only=True):
    """Each agent's steps, attempts, retries and failures in the runs created in the range,
    most called first."""

    created_from: datetime
    created_to: datetime
    agents: list[AgentFigures]


RUN_STATUSES: tuple[RunStatus, ...] = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
