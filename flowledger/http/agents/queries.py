"""Reading agents from the agents projection (never from the event store)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import msgspec
from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.domain.agents import mask_auth_config
from flowledger.http.agents.schemas import AgentResponse, RetryConfig
from flowledger.http.pagination import Page, escape_like, fetch_page
from flowledger.projections.tables import agents

AgentSort = Literal["name", "created_at", "updated_at", "status"]
AgentStatusFilter = Literal["active", "inactive", "deleted", "all"]


@dataclass(frozen=True)
class AgentEndpoint:
    """How to reach an agent, secrets included: for server-side calls, never for responses."""

    url: str
    auth_type: str
    auth_config: dict[str, str] | None
    timeout_ms: int
    kind: str = "a2a"


async def find_endpoint(conn: AsyncConnection, agent_id: UUID) -> AgentEndpoint | None:
    row = (
        await conn.execute(
            select(
                agents.c.url,
                agents.c.auth_type,
                agents.c.auth_config,
                agents.c.timeout_ms,
                agents.c.kind,
            ).where(agents.c.id == agent_id)
        )
    ).one_or_none()
    if row is None:
        return None
    return AgentEndpoint(row.url, row.auth_type, row.auth_config, row.timeout_ms, row.kind)


def to_response(row: Row[Any]) -> AgentResponse:
    return AgentResponse(
        id=row.id,
        name=row.name,
        url=row.url,
        description=row.description,
        auth_type=row.auth_type,
        auth_config=mask_auth_config(row.auth_config),
        timeout_ms=row.timeout_ms,
        retry_config=msgspec.convert(row.retry_config, RetryConfig),
        status=row.status,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        kind=row.kind,
    )


async def find_agent(conn: AsyncConnection, agent_id: UUID) -> AgentResponse | None:
    row = (await conn.execute(select(agents).where(agents.c.id == agent_id))).one_or_none()
    return to_response(row) if row else None


async def list_agents(
    conn: AsyncConnection,
    *,
    name: str | None,
    status: AgentStatusFilter | None,
    sort: AgentSort,
    order: Literal["asc", "desc"],
    page: int,
    page_size: int,
) -> Page[AgentResponse]:
    query: Select[Any] = select(agents)
    if name:
        query = query.where(agents.c.name.ilike(f"%{escape_like(name)}%", escape="\\"))
    if status is None:
        query = query.where(agents.c.status != "deleted")
    elif status != "all":
        query = query.where(agents.c.status == status)
    column = agents.c[sort]
    primary = column.desc() if order == "desc" else column.asc()
    return await fetch_page(
        conn,
        query,
        order_by=[primary, agents.c.id.asc()],
        page=page,
        page_size=page_size,
        to_item=to_response,
    )
