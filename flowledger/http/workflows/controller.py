"""``/api/v1/workflows``: create, list, read, update (new versions), delete workflows, and read
their versions."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from litestar import Controller, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from msgspec import UnsetType
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.commands.workflows import (
    CreateWorkflow,
    DeleteWorkflow,
    UpdateWorkflow,
    create_workflow,
    delete_workflow,
    update_workflow,
)
from flowledger.domain.contracts import check_definition
from flowledger.domain.errors import InvalidInput, NotFound
from flowledger.domain.limits import RunLimits
from flowledger.domain.workflows import Workflow
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.http.consistency import MinPosition, wait_for_position
from flowledger.http.grants.access import Visibility
from flowledger.http.pagination import Page, PageNumber, PageSize, SortOrder
from flowledger.http.permissions import Permission, requires
from flowledger.http.workflows import queries
from flowledger.http.workflows.contracts import ContractProblemBody, read_contracts
from flowledger.http.workflows.queries import WorkflowSort, WorkflowStatusFilter
from flowledger.http.workflows.schemas import (
    WorkflowCreateBody,
    WorkflowResponse,
    WorkflowUpdateBody,
    WorkflowVersionResponse,
)
from flowledger.http.writes import WRITE_HEADERS, position_headers, run_command
from flowledger.runtime.settings import Settings

WorkflowId = Annotated[UUID, Parameter(description="The workflow's id.")]
PROJECTION = "workflows"
CheckContracts = Annotated[
    Literal["contracts"] | None,
    Parameter(
        description="`contracts`: also read the agents' A2A cards and answer, in `warnings`, "
        "where the definition does not fit the skill schemas they declare (required fields "
        "the mappings do not give, literals or referenced fields of the wrong type, reads of "
        "output fields an agent does not declare). Warnings never stop the save."
    ),
]
VALIDATION = (
    "The definition is validated before it is saved; a 422 lists every problem with its "
    "location (bodies of maps and loops included): unknown or unreachable steps, cycles (named "
    "in order), agents or workflows that do not exist or are not active, malformed mappings, "
    "expressions or conditions, or ones that read steps not upstream of their step, maps and "
    "loops nested deeper than `MAX_LOOP_DEPTH`, an invalid input schema or trigger."
)


async def _contract_warnings(store: EventStore, workflow: Workflow) -> list[ContractProblemBody]:
    """The current version's definition against its agents' declared skill schemas."""
    plan = workflow.plan_of(workflow.current_version)
    contracts = await read_contracts(store, plan)
    found = check_definition(plan, contracts.by_agent)
    return [*contracts.unread(), *(ContractProblemBody.of(problem) for problem in found)]


class WorkflowController(Controller):
    path = "/api/v1/workflows"
    tags = ["workflows"]

    @post(
        "/",
        operation_id="createWorkflow",
        summary="Create a workflow",
        description="Creates version 1 of a workflow under a unique name (409 when a workflow "
        f"that is not deleted has it). {VALIDATION} With `?check=contracts`, `warnings` says "
        "where it does not fit its agents' cards.",
        status_code=HTTP_201_CREATED,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.MANAGE),
    )
    async def create(
        self,
        data: WorkflowCreateBody,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        limits: NamedDependency[RunLimits],
        check: CheckContracts = None,
    ) -> Response[WorkflowResponse]:
        command = CreateWorkflow(
            name=data.name,
            description=data.description,
            definition=data.definition_fields(),
            limits=limits,
        )
        try:
            outcome = await run_command(create_workflow, store, command, meta)
        except InvalidInput as error:
            raise data.located(error) from None
        headers = position_headers(outcome)
        headers["Location"] = f"{self.path}/{outcome.aggregate.id}"
        warnings = await _contract_warnings(store, outcome.aggregate) if check else None
        return Response(
            WorkflowResponse.from_workflow(outcome.aggregate, warnings), headers=headers
        )

    @get(
        "/",
        operation_id="listWorkflows",
        summary="List workflows",
        description="Each workflow with its current version. Deleted workflows are hidden "
        "unless `status=deleted` (or `all`) is asked for. With per-workflow grants enforced, "
        "only the workflows the caller owns or may view.",
        opt=requires(Permission.READ),
    )
    async def list_workflows(
        self,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        visibility: NamedDependency[Visibility],
        min_position: MinPosition = None,
        name: Annotated[
            str | None,
            Parameter(description="Case-insensitive substring of the name.", max_length=255),
        ] = None,
        status: Annotated[
            WorkflowStatusFilter | None, Parameter(description="Only workflows with this status.")
        ] = None,
        agent_name: Annotated[
            str | None,
            Parameter(
                description="Only workflows whose current version has a step calling this agent.",
                max_length=255,
            ),
        ] = None,
        sort: Annotated[WorkflowSort, Parameter(description="Field to sort by.")] = "created_at",
        order: SortOrder = "asc",
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[WorkflowResponse]:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        await visibility.wait(db, min_position)
        return await queries.list_workflows(
            db,
            visible=visibility.workflows(),
            name=name,
            status=status,
            agent_name=agent_name,
            sort=sort,
            order=order,
            page=page,
            page_size=page_size,
        )

    @get(
        "/{workflow_id:uuid}",
        operation_id="getWorkflow",
        summary="Read a workflow",
        description="The workflow and the complete definition of its current version, as "
        "written. Deleted workflows stay readable here, with status `deleted`.",
        opt=requires(Permission.READ, on=("workflow", "workflow_id")),
    )
    async def get_workflow(
        self,
        workflow_id: WorkflowId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> WorkflowResponse:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        workflow = await queries.find_workflow(db, workflow_id)
        if workflow is None:
            raise NotFound(f"workflow {workflow_id} not found")
        return workflow

    @put(
        "/{workflow_id:uuid}",
        operation_id="updateWorkflow",
        summary="Update a workflow",
        description="Definition fields given replace the current ones whole (`steps` are not "
        "merged step by step; null removes an optional field) and, if the definition changes, "
        "make the next version; earlier versions stay readable. `description` and `status` "
        f"change without a new version. A deleted workflow cannot change (409). {VALIDATION} "
        "With `?check=contracts`, `warnings` says where it does not fit its agents' cards.",
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.MANAGE, on=("workflow", "workflow_id")),
    )
    async def update(
        self,
        workflow_id: WorkflowId,
        data: WorkflowUpdateBody,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        limits: NamedDependency[RunLimits],
        check: CheckContracts = None,
    ) -> Response[WorkflowResponse]:
        command = UpdateWorkflow(
            workflow_id=workflow_id,
            changes=data.changes(),
            status=None if isinstance(data.status, UnsetType) else data.status,
            limits=limits,
        )
        try:
            outcome = await run_command(update_workflow, store, command, meta)
        except InvalidInput as error:
            raise data.located(error) from None
        warnings = await _contract_warnings(store, outcome.aggregate) if check else None
        return Response(
            WorkflowResponse.from_workflow(outcome.aggregate, warnings),
            headers=position_headers(outcome),
        )

    @delete(
        "/{workflow_id:uuid}",
        operation_id="deleteWorkflow",
        summary="Delete a workflow",
        description="Soft delete: the workflow and all its versions stay readable, its name "
        "becomes free. Deleting a deleted workflow changes nothing.",
        status_code=HTTP_204_NO_CONTENT,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.MANAGE, on=("workflow", "workflow_id")),
    )
    async def delete_workflow(
        self,
        workflow_id: WorkflowId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[None]:
        command = DeleteWorkflow(workflow_id=workflow_id)
        outcome = await run_command(delete_workflow, store, command, meta)
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers=position_headers(outcome))

    @get(
        "/{workflow_id:uuid}/versions",
        operation_id="listWorkflowVersions",
        summary="List a workflow's versions",
        description="Every version of the definition, each with what it changed from the one "
        "before (`changes`).",
        opt=requires(Permission.READ, on=("workflow", "workflow_id")),
    )
    async def list_versions(
        self,
        workflow_id: WorkflowId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        order: Annotated[
            SortOrder, Parameter(description="By version number, oldest first by default.")
        ] = "asc",
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[WorkflowVersionResponse]:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        if not await queries.workflow_exists(db, workflow_id):
            raise NotFound(f"workflow {workflow_id} not found")
        return await queries.list_versions(
            db, workflow_id, order=order, page=page, page_size=page_size
        )

    @get(
        "/{workflow_id:uuid}/versions/{version:int}",
        operation_id="getWorkflowVersion",
        summary="Read one version of a workflow",
        description="The complete definition of that version, exactly as it was saved.",
        opt=requires(Permission.READ, on=("workflow", "workflow_id")),
    )
    async def get_version(
        self,
        workflow_id: WorkflowId,
        version: Annotated[
            int, Parameter(ge=1, le=2_147_483_647, description="The version number, from 1.")
        ],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> WorkflowVersionResponse:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        found = await queries.find_version(db, workflow_id, version)
        if found is None:
            raise NotFound(f"workflow {workflow_id} has no version {version}")
        return found
