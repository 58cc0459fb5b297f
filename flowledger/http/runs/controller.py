"""Runs over HTTP.

``/api/v1/workflows/{id}/execute`` starts a run (202 at once; the executor does the work),
``/api/v1/runs`` follows runs, their steps and logs, cancels, retries, pauses and resumes them,
and delivers signals to the runs that wait for one. The execution API's paths
(``/api/v1/workflows/{id}/executions``, ``/api/v1/workflows/executions/{id}``, ``…/cancel``)
answer the same things, and ``/api/v1/workflows/{id}/test`` is a dry run.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated
from uuid import UUID

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, HeaderParameter, JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.commands.runs import (
    CancelRun,
    PauseRun,
    RequestRun,
    ResumeRun,
    RetryRun,
    SignalRun,
    agent_statuses,
    cancel_run,
    pause_run,
    plan_to_try,
    preview_retry,
    request_run,
    request_run_from_cache,
    resume_run,
    retry_run,
    signal_run,
)
from flowledger.domain.contracts import check_dry_run
from flowledger.domain.dry_run import dry_run
from flowledger.domain.errors import NotFound
from flowledger.domain.limits import RunLimits
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.http.consistency import MinPosition, wait_for_position
from flowledger.http.grants.access import Visibility
from flowledger.http.pagination import Page, PageNumber, PageSize, SortOrder
from flowledger.http.permissions import Permission, requires
from flowledger.http.runs import queries
from flowledger.http.runs.queries import RunSort
from flowledger.http.runs.schemas import (
    ExecuteRequest,
    ExecutionDetail,
    LogEntry,
    LogLevel,
    PauseRequest,
    RetryPlanResponse,
    RunAccepted,
    RunResponse,
    RunStatus,
    SignalAccepted,
    SignalRequest,
    StepExecution,
    TestRequest,
    TestResult,
)
from flowledger.http.workflows.contracts import read_contracts
from flowledger.http.writes import WRITE_HEADERS, position_headers, run_command
from flowledger.runtime.settings import Settings

RunId = Annotated[UUID, Parameter(description="The run's id (also called execution id).")]
SignalName = Annotated[
    str,
    Parameter(
        pattern=r"^[A-Za-z0-9_\-]{1,100}$",
        description="The signal's name: a signal step's `signal` (its step id by default).",
    ),
]
WorkflowId = Annotated[UUID, Parameter(description="The workflow's id.")]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        min_length=1,
        max_length=255,
        description="Repeat a request with the same key (per workflow) to get the same run "
        "instead of starting a second one.",
    ),
]
PROJECTION = "runs"


def _runs_filters_doc() -> str:
    return (
        "Filters: `status`, `workflow_id`, `triggered_by`, `created_from` / `created_to` "
        "(ISO 8601; from inclusive, to exclusive), `parent_run_id` (the child runs of a run's "
        "workflow steps), `agent_name` (runs with a step calling that agent). Newest first by "
        "default. With per-workflow grants enforced, only runs of workflows the caller owns or "
        "may view."
    )


async def _require_run(db: AsyncConnection, run_id: UUID) -> RunResponse:
    run = await queries.find_run(db, run_id)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return run


async def _cancel(run_id: UUID, store: EventStore, meta: EventMetadata) -> Response[RunResponse]:
    outcome = await run_command(cancel_run, store, CancelRun(run_id=run_id), meta)
    return Response(
        RunResponse.from_run(outcome.aggregate, actor=meta.actor),
        status_code=HTTP_200_OK,
        headers=position_headers(outcome),
    )


class RunController(Controller):
    path = "/api/v1/runs"
    tags = ["runs"]

    @get(
        "/",
        operation_id="listRuns",
        summary="List runs",
        description=_runs_filters_doc(),
        opt=requires(Permission.READ),
    )
    async def list_runs(
        self,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        visibility: NamedDependency[Visibility],
        min_position: MinPosition = None,
        status: FromQuery[RunStatus | None] = None,
        workflow_id: FromQuery[UUID | None] = None,
        triggered_by: Annotated[str | None, Parameter(max_length=255)] = None,
        created_from: FromQuery[datetime | None] = None,
        created_to: FromQuery[datetime | None] = None,
        parent_run_id: FromQuery[UUID | None] = None,
        agent_name: Annotated[str | None, Parameter(max_length=255)] = None,
        sort: FromQuery[RunSort] = "created_at",
        order: SortOrder = "desc",
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[RunResponse]:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        await visibility.wait(db, min_position)
        return await queries.list_runs(
            db,
            visible=visibility.runs(),
            status=status,
            workflow_id=workflow_id,
            triggered_by=triggered_by,
            created_from=created_from,
            created_to=created_to,
            parent_run_id=parent_run_id,
            agent_name=agent_name,
            sort=sort,
            order=order,
            page=page,
            page_size=page_size,
        )

    @get(
        "/{run_id:uuid}",
        operation_id="getRun",
        summary="Read a run",
        description="Status, timestamps, duration, input, output, error and who triggered it.",
        opt=requires(Permission.READ, on=("run", "run_id")),
    )
    async def get_run(
        self,
        run_id: RunId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> RunResponse:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        return await _require_run(db, run_id)

    @get(
        "/{run_id:uuid}/steps",
        operation_id="getRunSteps",
        summary="A run's steps",
        description="Every step in plan order, with its status, input, output and each attempt.",
        opt=requires(Permission.READ, on=("run", "run_id")),
    )
    async def get_steps(
        self,
        run_id: RunId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> list[StepExecution]:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        await _require_run(db, run_id)
        return await queries.run_steps_of(db, run_id)

    @get(
        "/{run_id:uuid}/logs",
        operation_id="getRunLogs",
        summary="A run's log",
        description="Entries in order. `level` keeps that level and above "
        "(DEBUG < INFO < WARNING < ERROR); `step_id` keeps one step's entries.",
        opt=requires(Permission.READ, on=("run", "run_id")),
    )
    async def get_logs(
        self,
        run_id: RunId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        level: FromQuery[LogLevel | None] = None,
        step_id: Annotated[str | None, Parameter(max_length=255)] = None,
        page: PageNumber = 1,
        page_size: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> Page[LogEntry]:
        await wait_for_position(db, "run_logs", min_position, settings.read_wait_timeout_s)
        await _require_run(db, run_id)
        return await queries.logs_of(
            db, run_id, level=level, step_id=step_id, page=page, page_size=page_size
        )

    @post(
        "/{run_id:uuid}/cancel",
        operation_id="cancelRun",
        summary="Cancel a run",
        description="Ends the run as CANCELLED at once: no new step starts and the executor "
        "cancels the call in flight (A2A CancelTask). A finished run answers 409.",
        status_code=HTTP_200_OK,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.EXECUTE, on=("run", "run_id")),
    )
    async def cancel(
        self,
        run_id: RunId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[RunResponse]:
        return await _cancel(run_id, store, meta)

    @get(
        "/{run_id:uuid}/retry-plan",
        operation_id="getRunRetryPlan",
        summary="Preview a retry",
        description="What `POST /runs/{run_id}/retry` would do now, decided by the same rule "
        "on the same run: the steps it would run again (each once its dependencies succeed), "
        "the outputs it would reuse, the pinned workflow version and agents (with a warning "
        "for an agent no longer active), or why it would be refused (`retryable: false`). "
        "Records nothing.",
        opt=requires(Permission.READ, on=("run", "run_id")),
    )
    async def get_retry_plan(
        self,
        run_id: RunId,
        db: NamedDependency[AsyncConnection],
        store: NamedDependency[EventStore],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> RetryPlanResponse:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        await _require_run(db, run_id)
        plan = await asyncio.to_thread(preview_retry, store, run_id)
        statuses = await asyncio.to_thread(
            agent_statuses, store, [b.agent_id for b in plan.agents.values()]
        )
        return RetryPlanResponse.of(plan, statuses)

    @post(
        "/{run_id:uuid}/retry",
        operation_id="retryRun",
        summary="Retry a failed or cancelled run",
        description="Resumes from the steps that did not succeed, reusing earlier outputs "
        "(`GET /runs/{run_id}/retry-plan` shows which beforehand). "
        "Any state other than FAILED or CANCELLED answers 409.",
        status_code=HTTP_202_ACCEPTED,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.EXECUTE, on=("run", "run_id")),
    )
    async def retry(
        self,
        run_id: RunId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[RunResponse]:
        outcome = await run_command(retry_run, store, RetryRun(run_id=run_id), meta)
        return Response(
            RunResponse.from_run(outcome.aggregate),
            status_code=HTTP_202_ACCEPTED,
            headers=position_headers(outcome),
        )

    @post(
        "/{run_id:uuid}/signals/{signal:str}",
        operation_id="signalRun",
        summary="Deliver a signal to a waiting run",
        description="Completes the signal step waiting for `signal` (the one waiting longest, "
        "or `step_id`) with `data`, which later steps read as its output: an approval, a "
        "person's answer, an event from elsewhere. Needs the `signal` permission (operators "
        "and up). 404 when the run has no signal step of that name, 409 when none waits for it "
        "now (or the run is finished), 422 when the data breaks the step's `schema`.",
        status_code=HTTP_202_ACCEPTED,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.SIGNAL, on=("run", "run_id")),
    )
    async def signal(
        self,
        run_id: RunId,
        signal: SignalName,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        data: JSONBody[SignalRequest | None] = None,
    ) -> Response[SignalAccepted]:
        body = data or SignalRequest()
        command = SignalRun(run_id=run_id, signal=signal, data=body.data, step_id=body.step_id)
        outcome = await run_command(signal_run, store, command, meta)
        accepted = SignalAccepted(
            run_id=run_id, signal=signal, step_id=outcome.step_id, status=outcome.aggregate.status
        )
        return Response(accepted, status_code=HTTP_202_ACCEPTED, headers=position_headers(outcome))

    @post(
        "/{run_id:uuid}/pause",
        operation_id="pauseRun",
        summary="Pause a run",
        description="No step starts until the run is resumed; calls already in flight finish "
        "and are recorded, signals are still taken, and the time paused does not count "
        "against the workflow timeout. A PENDING, RUNNING or WAITING run can be paused; "
        "anything else answers 409.",
        status_code=HTTP_200_OK,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.EXECUTE, on=("run", "run_id")),
    )
    async def pause(
        self,
        run_id: RunId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        data: JSONBody[PauseRequest | None] = None,
    ) -> Response[RunResponse]:
        reason = (data or PauseRequest()).reason
        outcome = await run_command(pause_run, store, PauseRun(run_id=run_id, reason=reason), meta)
        return Response(
            RunResponse.from_run(outcome.aggregate),
            status_code=HTTP_200_OK,
            headers=position_headers(outcome),
        )

    @post(
        "/{run_id:uuid}/resume",
        operation_id="resumeRun",
        summary="Resume a paused run",
        description="The run goes on where it was paused. A run that is not PAUSED answers 409.",
        status_code=HTTP_202_ACCEPTED,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.EXECUTE, on=("run", "run_id")),
    )
    async def resume(
        self,
        run_id: RunId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[RunResponse]:
        outcome = await run_command(resume_run, store, ResumeRun(run_id=run_id), meta)
        return Response(
            RunResponse.from_run(outcome.aggregate),
            status_code=HTTP_202_ACCEPTED,
            headers=position_headers(outcome),
        )


class WorkflowRunsController(Controller):
    path = "/api/v1/workflows"
    tags = ["runs"]

    @post(
        "/{workflow_id:uuid}/execute",
        operation_id="executeWorkflow",
        summary="Run a workflow",
        description="Validates `input_data` against the workflow's input schema (422), pins "
        "the workflow version and its agents, and answers 202 at once with the run id; the "
        "executor runs the steps. A deleted or inactive workflow, or an inactive or deleted "
        "agent, answers 409.",
        status_code=HTTP_202_ACCEPTED,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.EXECUTE, on=("workflow", "workflow_id")),
    )
    async def execute(
        self,
        workflow_id: WorkflowId,
        data: JSONBody[ExecuteRequest],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        limits: NamedDependency[RunLimits],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[RunAccepted]:
        command = RequestRun(
            workflow_id=workflow_id,
            input_data=data.input_data,
            version=data.version,
            variables=data.variables,
            idempotency_key=idempotency_key,
            limits=limits,
        )
        outcome = await run_command(
            request_run, store, command, meta, on_loop=request_run_from_cache
        )
        run = outcome.aggregate
        headers = position_headers(outcome)
        headers["Location"] = f"/api/v1/runs/{run.id}"
        if outcome.replayed:
            headers["Idempotent-Replayed"] = "true"
        body = RunAccepted(
            run_id=run.id,
            execution_id=run.id,
            status=run.status,
            workflow_id=run.workflow_id,
            workflow_name=run.workflow_name,
            workflow_version=run.workflow_version,
            created_at=run.created_on,
            replayed=outcome.replayed,
        )
        return Response(body, status_code=HTTP_202_ACCEPTED, headers=headers)

    @post(
        "/{workflow_id:uuid}/test",
        operation_id="testWorkflow",
        summary="Dry-run a workflow",
        description="Walks the workflow as a run would — order, resolved inputs, outputs, "
        "branches chosen, map items, loop iterations, timings — with `mock_outputs` standing "
        "in for agents, child runs and signals (by step id, or by instance such as "
        "`each[2].price`); waits end at once. Records nothing, calls no agent. "
        "Unless `check_contracts` is false, it reads each agent's A2A card and, where a card "
        "declares skill schemas, lists in `contract_problems` each resolved input and mocked "
        "output that does not fit them and each mapping that reads an output field the "
        "upstream agent does not declare, per step and field.",
        status_code=HTTP_200_OK,
        opt=requires(Permission.EXECUTE, on=("workflow", "workflow_id")),
    )
    async def test(
        self,
        workflow_id: WorkflowId,
        data: JSONBody[TestRequest],
        store: NamedDependency[EventStore],
        limits: NamedDependency[RunLimits],
    ) -> TestResult:
        version, plan, variables = await asyncio.to_thread(
            plan_to_try, store, workflow_id, data.version, data.input_data, data.variables
        )
        result = dry_run(plan, data.input_data, variables, data.mock_outputs, limits)
        if not data.check_contracts:
            return TestResult.from_dry_run(workflow_id, version, result)
        contracts = await read_contracts(store, plan)
        problems = check_dry_run(plan, result, contracts.by_agent)
        return TestResult.from_dry_run(workflow_id, version, result, problems, contracts.statuses)

    @get(
        "/{workflow_id:uuid}/executions",
        operation_id="listWorkflowExecutions",
        summary="List a workflow's runs",
        description=_runs_filters_doc(),
        opt=requires(Permission.READ, on=("workflow", "workflow_id")),
    )
    async def list_executions(
        self,
        workflow_id: WorkflowId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        status: FromQuery[RunStatus | None] = None,
        sort: FromQuery[RunSort] = "created_at",
        order: SortOrder = "desc",
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[RunResponse]:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        return await queries.list_runs(
            db,
            workflow_id=workflow_id,
            status=status,
            sort=sort,
            order=order,
            page=page,
            page_size=page_size,
        )

    @get(
        "/executions/{execution_id:uuid}",
        operation_id="getExecution",
        summary="Read a run with its step trace",
        opt=requires(Permission.READ, on=("run", "execution_id")),
    )
    async def get_execution(
        self,
        execution_id: RunId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> ExecutionDetail:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        detail = await queries.execution_detail(db, execution_id)
        if detail is None:
            raise NotFound(f"run {execution_id} not found")
        return detail

    @post(
        "/executions/{execution_id:uuid}/cancel",
        operation_id="cancelExecution",
        summary="Cancel a run",
        status_code=HTTP_200_OK,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.EXECUTE, on=("run", "execution_id")),
    )
    async def cancel_execution(
        self,
        execution_id: RunId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[RunResponse]:
        return await _cancel(execution_id, store, meta)
