"""What lists are filtered on and the grants resource reads: workflow owners (the
``workflows`` table), grants (``workflow_grants``) and which workflow a run belongs to
(``runs``)."""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

from sqlalchemy import ColumnElement, Row, Select, false, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.domain.access import Principal
from flowledger.domain.grants import principals_of
from flowledger.http.grants.schemas import WorkflowGrant
from flowledger.http.pagination import Page, fetch_page
from flowledger.projections.tables import runs, workflow_grants, workflows

ACCESS_PROJECTIONS: Final = ("workflows", "workflow_grants")
"""The projections lists are filtered on (owners, grants)."""


async def workflow_of_run(conn: AsyncConnection, run_id: UUID) -> UUID | None:
    found = await conn.execute(select(runs.c.workflow_id).where(runs.c.id == run_id))
    value = found.scalar_one_or_none()
    return value if isinstance(value, UUID) else None


def viewable(principal: Principal | None) -> ColumnElement[bool]:
    """Over the ``workflows`` table: the workflows ``principal`` may view (it owns them, or a
    grant that applies to it has ``can_view``). Admins are not filtered: see Visibility."""
    if principal is None:
        return false()
    granted = select(workflow_grants.c.workflow_id).where(
        workflow_grants.c.principal.in_(principals_of(principal)),
        workflow_grants.c.can_view,
    )
    return or_(workflows.c.owner == principal.actor, workflows.c.id.in_(granted))


def viewable_workflow_ids(principal: Principal | None) -> Select[Any]:
    return select(workflows.c.id).where(viewable(principal))


def executable_workflow_ids(principal: Principal | None) -> Select[Any]:
    """The workflows ``principal`` may execute (and whose runs it may cancel and retry): it
    owns them, or a grant that applies to it has ``can_execute``."""
    if principal is None:
        return select(workflows.c.id).where(false())
    granted = select(workflow_grants.c.workflow_id).where(
        workflow_grants.c.principal.in_(principals_of(principal)),
        workflow_grants.c.can_execute,
    )
    return select(workflows.c.id).where(
        or_(workflows.c.owner == principal.actor, workflows.c.id.in_(granted))
    )


def to_grant(row: Row[Any]) -> WorkflowGrant:
    return WorkflowGrant(
        workflow_id=row.workflow_id,
        principal=row.principal,
        can_view=row.can_view,
        can_execute=row.can_execute,
        granted_at=row.granted_at,
        granted_by=row.granted_by,
    )


async def list_grants(
    conn: AsyncConnection, workflow_id: UUID, *, page: int, page_size: int
) -> Page[WorkflowGrant]:
    return await fetch_page(
        conn,
        select(workflow_grants).where(workflow_grants.c.workflow_id == workflow_id),
        order_by=[workflow_grants.c.principal.asc()],
        page=page,
        page_size=page_size,
        to_item=to_grant,
    )


async def find_grant(
    conn: AsyncConnection, workflow_id: UUID, principal: str
) -> WorkflowGrant | None:
    row = (
        await conn.execute(
            select(workflow_grants).where(
                workflow_grants.c.workflow_id == workflow_id,
                workflow_grants.c.principal == principal,
            )
        )
    ).one_or_none()
    return to_grant(row) if row else None
