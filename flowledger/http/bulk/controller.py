"""``/api/v1/runs/bulk``: cancel or retry the runs some filters match (or a list of them), follow
the operation, list what it did to each run, stop it; a dry run answers what it would do.

The request is recorded (202) with the runs matched at that moment; this process's bulk runner
then applies the command to each run, one at a time (ADR 0020).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Final
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, FromQuery, JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.bulk.runner import BulkRunner
from flowledger.bulk.settings import BulkSettings
from flowledger.commands.bulk import (
    StartBulkOperation,
    StopBulkOperation,
    preview_item,
    start_bulk_operation,
    stop_bulk_operation,
)
from flowledger.commands.runs import agent_statuses
from flowledger.domain.bulk import BulkAction, applies_to
from flowledger.domain.errors import FieldProblem, InvalidInput, NotFound
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.http.bulk import queries
from flowledger.http.bulk.queries import Matching
from flowledger.http.bulk.schemas import (
    BULK_REQUEST_EXAMPLE,
    BulkItemResponse,
    BulkOperationResponse,
    BulkOperationStopped,
    BulkOperationSummary,
    BulkPreview,
    BulkRequest,
    BulkRunPreview,
    ItemOutcome,
    OperationStatus,
    StopRequest,
)
from flowledger.http.consistency import MinPosition, wait_for_position
from flowledger.http.grants.access import Visibility
from flowledger.http.pagination import Page, PageNumber, PageSize
from flowledger.http.permissions import Permission, requires
from flowledger.http.runs.queries import run_conditions
from flowledger.http.runs.schemas import RetryPlanResponse
from flowledger.http.writes import WRITE_HEADERS, position_headers, run_command
from flowledger.runtime.settings import Settings

PROJECTION: Final = "bulk_operations"
OperationId = Annotated[UUID, Parameter(description="The bulk operation's id.")]
BulkBody = Annotated[
    BulkRequest,
    Body(
        examples=[
            Example(summary="The failed runs of an agent's outage", value=BULK_REQUEST_EXAMPLE),
            Example(
                summary="A dry run over one workflow's runs",
                value={"workflow_id": "6f1c2a9e-3b7d-4e2f-9a51-0c8d7e6b5a43", "dry_run": True},
            ),
        ]
    ),
]
MATCHING = (
    "Runs are matched now, from the runs list, with the filters of `GET /api/v1/runs` "
    "(`status`, `workflow_id`, `agent_name`, `triggered_by`, `created_from`/`created_to`) "
    "and/or `run_ids`; at least one is needed. Only runs the caller may {verb} match (per-"
    "workflow grants). The operation takes them oldest first (at most `limit`); more matches "
    "than `FLOWLEDGER_BULK_MAX_RUNS` without a `limit` is a 422. It answers 202 with the "
    "operation; each run then gets the normal {verb} command (its own event, audited under "
    "the request's correlation id), at most `FLOWLEDGER_BULK_RATE` runs a second{extra}. "
    "Follow it at `GET /api/v1/runs/bulk/{{id}}`. With `dry_run: true` it answers 200 with "
    "what it would do (each run's reason to refuse{plan}) and changes nothing; `page` and "
    "`page_size` page its list of runs."
)
BOTH_ANSWERS: Final = {
    HTTP_200_OK: ResponseSpec(BulkPreview, description="`dry_run`: what would be done."),
}


def _runner(state: State) -> BulkRunner:
    runner: BulkRunner = state.bulk_runner
    return runner


async def _matching(
    data: BulkRequest,
    db: AsyncConnection,
    visibility: Visibility,
    settings: Settings,
    min_position: int | None,
) -> Matching:
    data.check()
    await wait_for_position(db, "runs", min_position, settings.read_wait_timeout_s)
    await visibility.wait(db, min_position)
    conditions = run_conditions(
        status=data.status,
        workflow_id=data.workflow_id,
        agent_name=data.agent_name,
        triggered_by=data.triggered_by,
        created_from=data.created_from,
        created_to=data.created_to,
        run_ids=data.run_ids,
    )
    executable = visibility.executable_runs()
    if executable is not None:
        conditions.append(executable)
    return Matching(conditions, data.limit)


async def _bulk(
    action: BulkAction,
    data: BulkRequest,
    request: Request[Any, Any, Any],
    db: AsyncConnection,
    store: EventStore,
    meta: EventMetadata,
    settings: Settings,
    visibility: Visibility,
    min_position: int | None,
    page: int,
    page_size: int,
) -> Response[Any]:
    limits = BulkSettings.from_settings(settings)
    matching = await _matching(data, db, visibility, settings, min_position)
    total = await matching.total(db)
    matched = min(total, data.limit) if data.limit else total
    if data.dry_run:
        preview = await _preview(
            action, data, matching, db, store, limits, matched, page, page_size
        )
        return Response(preview, status_code=HTTP_200_OK)
    if data.limit and data.limit > limits.max_runs:
        raise InvalidInput(
            [FieldProblem("limit", f"at most {limits.max_runs} runs per bulk operation")]
        )
    if matched > limits.max_runs:
        raise InvalidInput(
            [
                FieldProblem(
                    "body",
                    f"{matched} runs match; at most {limits.max_runs} per bulk operation "
                    "(narrow the filters, or give a limit)",
                )
            ]
        )
    command = StartBulkOperation(
        action=action,
        run_ids=await matching.ids(db),
        filters=data.filters(),
        reason=data.reason,
        max_runs=limits.max_runs,
    )
    await db.rollback()  # not held while the command runs
    outcome = await run_command(start_bulk_operation, store, command, meta)
    operation = outcome.aggregate
    _runner(request.app.state).submit(operation.id)
    headers = position_headers(outcome)
    headers["Location"] = f"/api/v1/runs/bulk/{operation.id}"
    body = BulkOperationSummary.requested(operation, meta.correlation_id)
    return Response(body, status_code=HTTP_202_ACCEPTED, headers=headers)


async def _preview(
    action: BulkAction,
    data: BulkRequest,
    matching: Matching,
    db: AsyncConnection,
    store: EventStore,
    limits: BulkSettings,
    matched: int,
    page: int,
    page_size: int,
) -> BulkPreview:
    by_status = await matching.by_status(db)
    rows = await matching.page(db, page, page_size)
    unmatched: list[UUID] = []
    if data.run_ids is not None:
        chosen = set(await matching.ids(db))
        unmatched = [run_id for run_id in data.run_ids if run_id not in chosen]
    runs = []
    for row in rows.items:
        refusal, plan = await asyncio.to_thread(preview_item, store, action, row.id)
        retry_plan = None
        if plan is not None and plan.allowed:
            statuses = await asyncio.to_thread(
                agent_statuses, store, [b.agent_id for b in plan.agents.values()]
            )
            retry_plan = RetryPlanResponse.of(plan, statuses)
        runs.append(
            BulkRunPreview(
                run_id=row.id,
                workflow_id=row.workflow_id,
                workflow_name=row.workflow_name,
                workflow_version=row.workflow_version,
                status=row.status,
                created_at=row.created_at,
                would="skip" if refusal else "apply",
                reason=refusal,
                retry_plan=retry_plan,
            )
        )
    would_apply = sum(count for status, count in by_status.items() if applies_to(action, status))
    return BulkPreview(
        action=action,
        matched=matched,
        would_apply=would_apply,
        would_skip=matched - would_apply,
        by_status=by_status,
        max_runs=limits.max_runs,
        within_limit=matched <= limits.max_runs,
        unmatched_run_ids=unmatched,
        runs=Page(
            items=runs,
            total=rows.total,
            page=rows.page,
            page_size=rows.page_size,
            total_pages=rows.total_pages,
        ),
    )


class BulkOperationController(Controller):
    path = "/api/v1/runs/bulk"
    tags = ["runs"]

    @post(
        "/cancel",
        operation_id="bulkCancelRuns",
        summary="Cancel many runs",
        description=MATCHING.format(verb="cancel", extra="", plan=""),
        status_code=HTTP_202_ACCEPTED,
        response_headers=WRITE_HEADERS,
        responses=BOTH_ANSWERS,
        opt=requires(Permission.EXECUTE),
    )
    async def cancel(
        self,
        data: BulkBody,
        request: Request[Any, Any, Any],
        db: NamedDependency[AsyncConnection],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        settings: NamedDependency[Settings],
        visibility: NamedDependency[Visibility],
        min_position: MinPosition = None,
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Response[BulkOperationSummary]:
        return await _bulk(
            "cancel",
            data,
            request,
            db,
            store,
            meta,
            settings,
            visibility,
            min_position,
            page,
            page_size,
        )

    @post(
        "/retry",
        operation_id="bulkRetryRuns",
        summary="Retry many runs",
        description=MATCHING.format(
            verb="retry",
            extra=", and only while fewer than `FLOWLEDGER_BULK_MAX_ACTIVE_RUNS` runs are "
            "PENDING or RUNNING (so new runs keep flowing)",
            plan=", or for the runs that would retry, their retry plan",
        ),
        status_code=HTTP_202_ACCEPTED,
        response_headers=WRITE_HEADERS,
        responses=BOTH_ANSWERS,
        opt=requires(Permission.EXECUTE),
    )
    async def retry(
        self,
        data: BulkBody,
        request: Request[Any, Any, Any],
        db: NamedDependency[AsyncConnection],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        settings: NamedDependency[Settings],
        visibility: NamedDependency[Visibility],
        min_position: MinPosition = None,
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Response[BulkOperationSummary]:
        return await _bulk(
            "retry",
            data,
            request,
            db,
            store,
            meta,
            settings,
            visibility,
            min_position,
            page,
            page_size,
        )

    @get(
        "/",
        operation_id="listBulkOperations",
        summary="List bulk operations",
        description="Newest first; filters: `status`, `action`.",
        opt=requires(Permission.READ),
    )
    async def list_operations(
        self,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        status: FromQuery[OperationStatus | None] = None,
        action: FromQuery[BulkAction | None] = None,
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[BulkOperationSummary]:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        return await queries.list_operations(
            db, status=status, action=action, page=page, page_size=page_size
        )

    @get(
        "/{operation_id:uuid}",
        operation_id="getBulkOperation",
        summary="Follow a bulk operation",
        description="How far it got: `matched`, `done`, `skipped` (by the runs' status), "
        "`failed` (with the reasons) and `pending`.",
        opt=requires(Permission.READ),
    )
    async def get_operation(
        self,
        operation_id: OperationId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> BulkOperationResponse:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        found = await queries.find_operation(db, operation_id)
        if found is None:
            raise NotFound(f"bulk operation {operation_id} not found")
        return found

    @get(
        "/{operation_id:uuid}/items",
        operation_id="listBulkOperationItems",
        summary="What a bulk operation did to each run",
        description="Every run it matched, in its order, with the outcome (`pending` until "
        "reached), the reason and the run's status after it; `outcome` filters.",
        opt=requires(Permission.READ),
    )
    async def list_items(
        self,
        operation_id: OperationId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        outcome: FromQuery[ItemOutcome | None] = None,
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[BulkItemResponse]:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        if not await queries.operation_exists(db, operation_id):
            raise NotFound(f"bulk operation {operation_id} not found")
        return await queries.list_items(
            db, operation_id, outcome=outcome, page=page, page_size=page_size
        )

    @post(
        "/{operation_id:uuid}/stop",
        operation_id="stopBulkOperation",
        summary="Stop a bulk operation",
        description="No further run is touched (a run being acted on at that moment still "
        "gets its item); what was done stays done, and the runs not reached stay `pending`. "
        "409 when it already ended.",
        status_code=HTTP_200_OK,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.EXECUTE),
    )
    async def stop(
        self,
        operation_id: OperationId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        data: JSONBody[StopRequest | None] = None,
    ) -> Response[BulkOperationStopped]:
        reason = data.reason if data is not None else StopRequest().reason
        command = StopBulkOperation(operation_id=operation_id, reason=reason)
        outcome = await run_command(stop_bulk_operation, store, command, meta)
        operation = outcome.aggregate
        body = BulkOperationStopped(operation.id, operation.status, operation.stop_reason)
        return Response(body, headers=position_headers(outcome))
