"""``/api/v1/analytics``: runs per status over time, success rates, duration percentiles per
workflow and per step, retries and failures per agent, the busiest workflows.

Read from the analytics tables the runs projection keeps (ADR 0019), never from the runs
themselves: a month of a million runs costs a few thousand rows. The range is of the runs'
creation (``created_from`` inclusive, ``created_to`` exclusive, as in ``GET /runs``), widened
to whole hours. With per-workflow grants enforced, only the workflows the caller may view.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final
from uuid import UUID

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.domain.errors import NotFound
from flowledger.http.analytics import queries
from flowledger.http.analytics.queries import TimeRange
from flowledger.http.analytics.schemas import (
    AgentAnalytics,
    Bucket,
    RunAnalytics,
    WorkflowAnalytics,
)
from flowledger.http.consistency import MinPosition, wait_for_position
from flowledger.http.errors import ErrorBody
from flowledger.http.grants import queries as grants
from flowledger.http.grants.access import Visibility
from flowledger.http.permissions import Permission, requires
from flowledger.runtime.settings import Settings

PROJECTION: Final = "runs"
From = Annotated[
    datetime | None,
    Parameter(
        description="Runs created from this moment (ISO 8601, inclusive; down to the hour). "
        "Default: seven days before `created_to`."
    ),
]
To = Annotated[
    datetime | None,
    Parameter(
        description="Runs created before this moment (exclusive; up to the hour). Default: now."
    ),
]
BucketParam = Annotated[
    Bucket | None,
    Parameter(
        description="The size of the series' buckets (UTC). Default: `hour` for ranges up to "
        "two days, else `day`. At most 1,000 buckets."
    ),
]
RANGE_DOC: Final = (
    " The range is of the runs' creation, widened to whole hours; every figure counts the runs "
    "created in it by their status now."
)


def _visible(visibility: Visibility) -> Any:
    """The workflow ids the caller may view, as a subquery (None: every workflow)."""
    if not visibility.filters:
        return None
    return grants.viewable_workflow_ids(visibility.principal)


class AnalyticsController(Controller):
    path = "/api/v1/analytics"
    tags = ["analytics"]

    @get(
        "/runs",
        operation_id="getRunAnalytics",
        summary="Runs over time",
        description="Runs per status in each bucket, the success rate and duration "
        "percentiles (p50, p95, p99) of them all, and the busiest workflows with theirs."
        + RANGE_DOC,
        opt=requires(Permission.READ),
    )
    async def runs(
        self,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        visibility: NamedDependency[Visibility],
        min_position: MinPosition = None,
        created_from: From = None,
        created_to: To = None,
        bucket: BucketParam = None,
        top: Annotated[
            int, Parameter(ge=1, le=100, description="How many of the busiest workflows.")
        ] = 10,
    ) -> RunAnalytics:
        when = TimeRange.of(created_from, created_to, bucket)
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        await visibility.wait(db, min_position)
        totals, series, busiest = await queries.overview(db, when, _visible(visibility), top)
        return RunAnalytics(
            created_from=when.start,
            created_to=when.end,
            bucket=when.bucket,
            totals=totals,
            series=series,
            busiest_workflows=busiest,
        )

    @get(
        "/workflows/{workflow_id:uuid}",
        operation_id="getWorkflowAnalytics",
        summary="One workflow's runs and steps",
        description="The workflow's runs per status over time, their success rate and "
        "durations, and for each step its count per status, attempts, retries, failed "
        "attempts and duration percentiles." + RANGE_DOC,
        responses={404: ResponseSpec(ErrorBody, description="No workflow has this id.")},
        opt=requires(Permission.READ, on=("workflow", "workflow_id")),
    )
    async def workflow(
        self,
        workflow_id: Annotated[UUID, Parameter(description="The workflow's id.")],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        created_from: From = None,
        created_to: To = None,
        bucket: BucketParam = None,
    ) -> WorkflowAnalytics:
        when = TimeRange.of(created_from, created_to, bucket)
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        await wait_for_position(db, "workflows", min_position, settings.read_wait_timeout_s)
        names = await queries.workflow_names(db, [workflow_id])
        if workflow_id not in names:
            raise NotFound(f"workflow {workflow_id} not found")
        totals, series = await queries.runs_over_time(db, when, workflow_id, None)
        return WorkflowAnalytics(
            created_from=when.start,
            created_to=when.end,
            bucket=when.bucket,
            workflow_id=workflow_id,
            workflow_name=names[workflow_id],
            totals=totals,
            series=series,
            steps=await queries.steps_of(db, when, workflow_id),
        )

    @get(
        "/agents",
        operation_id="getAgentAnalytics",
        summary="Agents' retries and failures",
        description="For each agent the steps of the range's runs called: how many, how many "
        "failed, the attempts, retries and failed attempts, and step duration percentiles; "
        "the most called first." + RANGE_DOC,
        opt=requires(Permission.READ),
    )
    async def agents(
        self,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        visibility: NamedDependency[Visibility],
        min_position: MinPosition = None,
        created_from: From = None,
        created_to: To = None,
    ) -> AgentAnalytics:
        when = TimeRange.of(created_from, created_to, "day")
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        await visibility.wait(db, min_position)
        return AgentAnalytics(
            created_from=when.start,
            created_to=when.end,
            agents=await queries.agents(db, when, _visible(visibility)),
        )
