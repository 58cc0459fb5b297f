"""Reading workflows and their versions from the workflow projections (never the event store)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import msgspec
from sqlalchemy import ColumnElement, Row, Select, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.http.pagination import Page, escape_like, fetch_page
from flowledger.http.workflows.schemas import (
    VersionChanges,
    WorkflowResponse,
    WorkflowVersionResponse,
    definition_view,
)
from flowledger.projections.tables import workflow_steps, workflow_versions, workflows

WorkflowSort = Literal["name", "created_at", "updated_at"]
WorkflowStatusFilter = Literal["active", "inactive", "deleted", "all"]


def to_response(row: Row[Any]) -> WorkflowResponse:
    return WorkflowResponse(
        id=row.id,
        name=row.name,
        description=row.description,
        status=row.status,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        owner=row.owner,
        **definition_view(row.definition),
    )


def to_version_response(row: Row[Any]) -> WorkflowVersionResponse:
    return WorkflowVersionResponse(
        workflow_id=row.workflow_id,
        version=row.version,
        changes=msgspec.convert(row.changes, VersionChanges) if row.changes else None,
        created_at=row.created_at,
        created_by=row.created_by,
        **definition_view(row.definition),
    )


async def find_workflow(conn: AsyncConnection, workflow_id: UUID) -> WorkflowResponse | None:
    row = (await conn.execute(select(workflows).where(workflows.c.id == workflow_id))).one_or_none()
    return to_response(row) if row else None


async def list_workflows(
    conn: AsyncConnection,
    *,
    name: str | None,
    status: WorkflowStatusFilter | None,
    agent_name: str | None,
    sort: WorkflowSort,
    order: Literal["asc", "desc"],
    page: int,
    page_size: int,
    visible: ColumnElement[bool] | None = None,
) -> Page[WorkflowResponse]:
    """``visible``: the caller's access (see ``flowledger.http.grants.access.Visibility``)."""
    query: Select[Any] = select(workflows)
    if visible is not None:
        query = query.where(visible)
    if name:
        query = query.where(workflows.c.name.ilike(f"%{escape_like(name)}%", escape="\\"))
    if status is None:
        query = query.where(workflows.c.status != "deleted")
    elif status != "all":
        query = query.where(workflows.c.status == status)
    if agent_name:
        query = query.where(
            exists().where(
                workflow_steps.c.workflow_id == workflows.c.id,
                workflow_steps.c.version == workflows.c.version,
                workflow_steps.c.agent_name == agent_name,
            )
        )
    column = workflows.c[sort]
    primary = column.desc() if order == "desc" else column.asc()
    return await fetch_page(
        conn,
        query,
        order_by=[primary, workflows.c.id.asc()],
        page=page,
        page_size=page_size,
        to_item=to_response,
    )


async def workflow_exists(conn: AsyncConnection, workflow_id: UUID) -> bool:
    found = await conn.execute(select(workflows.c.id).where(workflows.c.id == workflow_id))
    return found.first() is not None


async def list_versions(
    conn: AsyncConnection,
    workflow_id: UUID,
    *,
    order: Literal["asc", "desc"],
    page: int,
    page_size: int,
) -> Page[WorkflowVersionResponse]:
    column = workflow_versions.c.version
    return await fetch_page(
        conn,
        select(workflow_versions).where(workflow_versions.c.workflow_id == workflow_id),
        order_by=[column.desc() if order == "desc" else column.asc()],
        page=page,
        page_size=page_size,
        to_item=to_version_response,
    )


async def find_version(
    conn: AsyncConnection, workflow_id: UUID, version: int
) -> WorkflowVersionResponse | None:
    row = (
        await conn.execute(
            select(workflow_versions).where(
                workflow_versions.c.workflow_id == workflow_id,
                workflow_versions.c.version == version,
            )
        )
    ).one_or_none()
    return to_version_response(row) if row else None
