"""``/api/v1/agents``: register, list, read, update, delete and health-check agents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.a2a import AgentAuth, AgentCallError, fetch_agent_card
from flowledger.commands.agents import (
    DeleteAgent,
    RegisterAgent,
    UpdateAgent,
    delete_agent,
    register_agent,
    update_agent,
)
from flowledger.domain.errors import NotFound
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.http.agents import queries
from flowledger.http.agents.queries import AgentSort, AgentStatusFilter
from flowledger.http.agents.schemas import AgentCreate, AgentHealth, AgentResponse, AgentUpdate
from flowledger.http.consistency import MinPosition, wait_for_position
from flowledger.http.pagination import Page, PageNumber, PageSize, SortOrder
from flowledger.http.permissions import Permission, requires
from flowledger.http.writes import WRITE_HEADERS, position_headers, run_command
from flowledger.n8n.api import instance_health
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings

AgentId = Annotated[UUID, Parameter(description="The agent's id.")]


class AgentController(Controller):
    path = "/api/v1/agents"
    tags = ["agents"]

    @post(
        "/",
        operation_id="registerAgent",
        summary="Register an agent",
        description="Registers an A2A agent under a unique name. Answers 409 when a live agent "
        "already has the name, 422 naming each invalid field.",
        status_code=HTTP_201_CREATED,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.MANAGE),
    )
    async def register(
        self,
        data: JSONBody[AgentCreate],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[AgentResponse]:
        command = msgspec.convert(msgspec.to_builtins(data), RegisterAgent)
        outcome = await run_command(register_agent, store, command, meta)
        headers = position_headers(outcome)
        headers["Location"] = f"{self.path}/{outcome.aggregate.id}"
        return Response(AgentResponse.from_agent(outcome.aggregate), headers=headers)

    @get(
        "/",
        operation_id="listAgents",
        summary="List agents",
        description="Deleted agents are hidden unless `status=deleted` (or `all`) is asked for.",
        opt=requires(Permission.READ),
    )
    async def list_agents(
        self,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        name: Annotated[
            str | None,
            Parameter(description="Case-insensitive substring of the name.", max_length=255),
        ] = None,
        status: Annotated[
            AgentStatusFilter | None, Parameter(description="Only agents with this status.")
        ] = None,
        sort: Annotated[AgentSort, Parameter(description="Field to sort by.")] = "created_at",
        order: SortOrder = "asc",
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[AgentResponse]:
        await wait_for_position(db, "agents", min_position, settings.read_wait_timeout_s)
        return await queries.list_agents(
            db, name=name, status=status, sort=sort, order=order, page=page, page_size=page_size
        )

    @get(
        "/{agent_id:uuid}",
        operation_id="getAgent",
        summary="Read an agent",
        description="Deleted agents stay readable here, with status `deleted`.",
        opt=requires(Permission.READ),
    )
    async def get_agent(
        self,
        agent_id: AgentId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> AgentResponse:
        await wait_for_position(db, "agents", min_position, settings.read_wait_timeout_s)
        agent = await queries.find_agent(db, agent_id)
        if agent is None:
            raise NotFound(f"agent {agent_id} not found")
        return agent

    @get(
        "/{agent_id:uuid}/health",
        operation_id="checkAgentHealth",
        summary="Check an agent's health",
        description="Fetches the agent's A2A card (`/.well-known/agent-card.json`) within the "
        "agent's timeout, with its credentials, and reports whether it answered, how fast, and "
        "the card's name and version, or the error. For an `n8n` agent: whether its n8n "
        "instance answers `/healthz`.",
        opt=requires(Permission.READ),
    )
    async def check_health(
        self,
        agent_id: AgentId,
        runtime: NamedDependency[Runtime],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> AgentHealth:
        async with runtime.async_engine.connect() as db:  # not held during the network call
            await wait_for_position(db, "agents", min_position, settings.read_wait_timeout_s)
            endpoint = await queries.find_endpoint(db, agent_id)
        if endpoint is None:
            raise NotFound(f"agent {agent_id} not found")
        checked_at = datetime.now(UTC)
        if endpoint.kind == "n8n":
            latency_ms, error = await instance_health(endpoint.url, endpoint.timeout_ms / 1000)
            return AgentHealth(
                agent_id=agent_id,
                url=endpoint.url,
                reachable=error is None,
                latency_ms=latency_ms,
                card_name="n8n" if error is None else None,
                error=error,
                checked_at=checked_at,
            )
        try:
            card = await fetch_agent_card(
                endpoint.url,
                timeout_s=endpoint.timeout_ms / 1000,
                auth=AgentAuth.from_config(endpoint.auth_type, endpoint.auth_config),
            )
        except AgentCallError as error:
            return AgentHealth(
                agent_id=agent_id,
                url=endpoint.url,
                reachable=False,
                error=str(error),
                checked_at=checked_at,
            )
        return AgentHealth(
            agent_id=agent_id,
            url=endpoint.url,
            reachable=True,
            latency_ms=card.latency_ms,
            card_name=card.name,
            card_version=card.version,
            checked_at=checked_at,
        )

    @put(
        "/{agent_id:uuid}",
        operation_id="updateAgent",
        summary="Update an agent",
        description="Changes the given fields; `retry_config` merges into the current one; "
        "`status` activates or deactivates. A deleted agent cannot change (409).",
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.MANAGE),
    )
    async def update(
        self,
        agent_id: AgentId,
        data: JSONBody[AgentUpdate],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[AgentResponse]:
        changes = msgspec.to_builtins(data)
        status: Literal["active", "inactive"] | None = changes.pop("status", None)
        command = UpdateAgent(agent_id=agent_id, changes=changes, status=status)
        outcome = await run_command(update_agent, store, command, meta)
        return Response(
            AgentResponse.from_agent(outcome.aggregate), headers=position_headers(outcome)
        )

    @delete(
        "/{agent_id:uuid}",
        operation_id="deleteAgent",
        summary="Delete an agent",
        description="Soft delete: the agent keeps its history, frees its name and can no "
        "longer be used by new workflows. Deleting a deleted agent changes nothing.",
        status_code=HTTP_204_NO_CONTENT,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.MANAGE),
    )
    async def delete_agent(
        self,
        agent_id: AgentId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[None]:
        outcome = await run_command(delete_agent, store, DeleteAgent(agent_id=agent_id), meta)
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers=position_headers(outcome))
