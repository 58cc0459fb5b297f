"""``/api/v1/workflows/{id}/grants`` and ``/api/v1/workflows/{id}/owner``: who besides its
owner may view or execute a workflow, and who owns it (ADR 0010). Only the owner and admins
see or change them."""

from __future__ import annotations

from typing import Annotated, Final
from uuid import UUID

from litestar import Controller, Response, delete, get, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.commands.grants import (
    GrantWorkflowAccess,
    RevokeWorkflowAccess,
    TransferWorkflowOwnership,
    grant_workflow_access,
    revoke_workflow_access,
    transfer_workflow_ownership,
)
from flowledger.domain.errors import NotFound
from flowledger.domain.grants import normal_principal
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.http.consistency import MinPosition, wait_for_position
from flowledger.http.errors import ErrorBody
from flowledger.http.grants import queries
from flowledger.http.grants.queries import ACCESS_PROJECTIONS
from flowledger.http.grants.schemas import (
    GrantChangeBody,
    OwnerChange,
    PrincipalParam,
    WorkflowGrant,
)
from flowledger.http.pagination import Page, PageNumber, PageSize
from flowledger.http.permissions import Permission, requires
from flowledger.http.workflows.queries import workflow_exists
from flowledger.http.workflows.schemas import WorkflowResponse
from flowledger.http.writes import WRITE_HEADERS, position_headers, run_command
from flowledger.runtime.settings import Settings

WorkflowId = Annotated[UUID, Parameter(description="The workflow's id.")]
ON_WORKFLOW: Final = ("workflow_grants", "workflow_id")
PROJECTION: Final = "workflow_grants"
NOT_FOUND: Final = {404: ResponseSpec(ErrorBody, description="No workflow has this id.")}
WHO: Final = (
    " Only the workflow's owner and admins may do this (403 otherwise). Grants are enforced "
    "when `FLOWLEDGER_WORKFLOW_GRANTS=on`."
)


class WorkflowGrantsController(Controller):
    path = "/api/v1/workflows/{workflow_id:uuid}"
    tags = ["grants"]

    @get(
        "/grants",
        operation_id="listWorkflowGrants",
        summary="List a workflow's grants",
        description="Who besides the owner may view (`can_view`) or execute (`can_execute`) "
        "the workflow and its runs." + WHO,
        responses=NOT_FOUND,
        opt=requires(Permission.READ, on=ON_WORKFLOW),
    )
    async def list_grants(
        self,
        workflow_id: WorkflowId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[WorkflowGrant]:
        for projection in ACCESS_PROJECTIONS:
            await wait_for_position(db, projection, min_position, settings.read_wait_timeout_s)
        if not await workflow_exists(db, workflow_id):
            raise NotFound(f"workflow {workflow_id} not found")
        return await queries.list_grants(db, workflow_id, page=page, page_size=page_size)

    @get(
        "/grants/{principal:str}",
        operation_id="getWorkflowGrant",
        summary="Read one grant",
        description="The grant of one principal (404 when it has none)." + WHO,
        responses={404: ResponseSpec(ErrorBody, description="No such workflow or grant.")},
        opt=requires(Permission.READ, on=ON_WORKFLOW),
    )
    async def get_grant(
        self,
        workflow_id: WorkflowId,
        principal: PrincipalParam,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> WorkflowGrant:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        found = await queries.find_grant(db, workflow_id, normal_principal(principal))
        if found is None:
            raise NotFound(f"{principal} has no grant on workflow {workflow_id}")
        return found

    @put(
        "/grants/{principal:str}",
        operation_id="grantWorkflowAccess",
        summary="Grant access to a workflow",
        description="Sets exactly what the principal may do (it replaces its grant, if any). "
        "The role stays the ceiling: a viewer granted `can_execute` still cannot execute. "
        "`key:` principals must name an API key that exists and is not revoked." + WHO,
        response_headers=WRITE_HEADERS,
        responses=NOT_FOUND,
        opt=requires(Permission.MANAGE, on=ON_WORKFLOW),
    )
    async def grant(
        self,
        workflow_id: WorkflowId,
        principal: PrincipalParam,
        data: GrantChangeBody,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[WorkflowGrant]:
        command = GrantWorkflowAccess(
            workflow_id=workflow_id,
            principal=principal,
            can_view=data.can_view,
            can_execute=data.can_execute,
        )
        outcome = await run_command(grant_workflow_access, store, command, meta)
        name = normal_principal(principal)
        access = outcome.aggregate.grants[name]
        body = WorkflowGrant(
            workflow_id=workflow_id,
            principal=name,
            can_view=access.can_view,
            can_execute=access.can_execute,
            granted_at=outcome.aggregate.modified_on,
            granted_by=meta.actor,
        )
        return Response(body, headers=position_headers(outcome))

    @delete(
        "/grants/{principal:str}",
        operation_id="revokeWorkflowAccess",
        summary="Revoke a grant",
        description="The principal keeps only what ownership or other grants (its role's) "
        "give it, from its very next request. Revoking what was not granted changes "
        "nothing." + WHO,
        status_code=HTTP_204_NO_CONTENT,
        response_headers=WRITE_HEADERS,
        responses=NOT_FOUND,
        opt=requires(Permission.MANAGE, on=ON_WORKFLOW),
    )
    async def revoke(
        self,
        workflow_id: WorkflowId,
        principal: PrincipalParam,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[None]:
        command = RevokeWorkflowAccess(workflow_id=workflow_id, principal=principal)
        outcome = await run_command(revoke_workflow_access, store, command, meta)
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers=position_headers(outcome))

    @put(
        "/owner",
        operation_id="transferWorkflowOwnership",
        summary="Transfer a workflow's ownership",
        description="The new owner (one API key or JWT subject) has every permission its role "
        "allows on the workflow; the previous owner keeps only what grants give it." + WHO,
        response_headers=WRITE_HEADERS,
        responses=NOT_FOUND,
        opt=requires(Permission.MANAGE, on=ON_WORKFLOW),
    )
    async def transfer(
        self,
        workflow_id: WorkflowId,
        data: JSONBody[OwnerChange],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[WorkflowResponse]:
        command = TransferWorkflowOwnership(workflow_id=workflow_id, owner=data.owner)
        outcome = await run_command(transfer_workflow_ownership, store, command, meta)
        return Response(
            WorkflowResponse.from_workflow(outcome.aggregate), headers=position_headers(outcome)
        )
