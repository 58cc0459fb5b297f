"""``/api/v1/integrations``: list integrations; sync an n8n instance's workflows as agents."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK
from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.commands.integrations import SyncIntegration, sync_integration
from flowledger.domain.agents import url_problems
from flowledger.domain.errors import FieldProblem, raise_if_any
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.http.consistency import MinPosition, wait_for_position
from flowledger.http.integrations.schemas import (
    IntegrationResponse,
    N8nSync,
    N8nSyncResult,
    SyncError,
)
from flowledger.http.pagination import Page, PageNumber, PageSize, fetch_page
from flowledger.http.permissions import Permission, requires
from flowledger.http.writes import WRITE_HEADERS, position_headers, run_command
from flowledger.n8n.api import N8nApi, N8nApiError
from flowledger.n8n.settings import N8nSettings
from flowledger.projections.tables import integrations
from flowledger.runtime.settings import Settings

PROJECTION = "integrations"


class IntegrationController(Controller):
    path = "/api/v1/integrations"
    tags = ["integrations"]

    @get(
        "/",
        operation_id="listIntegrations",
        summary="List integrations",
        description="Each synced n8n instance: status, `last_sync`, the agents it made and the "
        "last sync's errors. Credentials are never shown.",
        opt=requires(Permission.READ),
    )
    async def list_integrations(
        self,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[IntegrationResponse]:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        return await fetch_page(
            db,
            select(integrations),
            order_by=[integrations.c.created_at.asc(), integrations.c.id.asc()],
            page=page,
            page_size=page_size,
            to_item=_response,
        )

    @post(
        "/n8n/sync",
        operation_id="syncN8n",
        summary="Sync an n8n instance",
        description="Reads the instance's workflows through its public REST API and registers "
        "each callable one (active, started by a Webhook node taking POST) as an agent of kind "
        "`n8n` named `n8n:<workflow name>`: a step calling it POSTs its input to the webhook "
        "and gets the answer as output. Syncing again updates changed workflows and "
        "deactivates the agents of workflows that are gone or no longer callable. `errors` "
        "has one entry per workflow not synced, with the reason; an instance that cannot be "
        "read is one error (and the integration's status `error`). The URL's host must be "
        "one `FLOWLEDGER_N8N_ALLOWED_HOSTS` allows (422).",
        status_code=HTTP_200_OK,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.MANAGE),
    )
    async def sync_n8n(
        self,
        data: JSONBody[N8nSync],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        settings: NamedDependency[Settings],
    ) -> Response[N8nSyncResult]:
        config = N8nSettings.from_settings(settings)
        problems = url_problems(data.n8n_url, "n8n_url")
        if not problems and not config.allows(data.n8n_url):
            problems.append(
                FieldProblem("n8n_url", "names a host FLOWLEDGER_N8N_ALLOWED_HOSTS does not allow")
            )
        raise_if_any(problems)
        api = N8nApi(data.n8n_url, data.api_key, timeout_s=config.timeout_s)
        fetch_error = None
        fetched = []
        try:
            fetched = await api.workflows(data.workflow_ids)
        except N8nApiError as error:
            fetch_error = str(error)
        command = SyncIntegration(
            url=data.n8n_url,
            api_key=data.api_key,
            workflow_ids=data.workflow_ids,
            fetched=fetched,
            fetch_error=fetch_error,
        )
        outcome = await run_command(sync_integration, store, command, meta)
        integration = outcome.aggregate
        synced_ids = {w.id for w in fetched} & set(integration.agents)
        result = N8nSyncResult(
            integration_id=integration.id,
            synced_count=outcome.synced_count,
            errors=[msgspec.convert(e, SyncError) for e in outcome.errors],
            agents={
                k: UUID(v)
                for k, v in integration.agents.items()
                if k in synced_ids and k not in {e["workflow_id"] for e in outcome.errors}
            },
        )
        return Response(result, headers=position_headers(outcome))


def _response(row: Row[Any]) -> IntegrationResponse:
    return IntegrationResponse(
        id=row.id,
        service=row.kind,
        url=row.url,
        status=row.status,
        last_sync=row.last_sync,
        last_error=row.last_error,
        synced_count=row.synced_count,
        agents={k: UUID(v) for k, v in row.agents.items()},
        errors=[msgspec.convert(e, SyncError) for e in row.errors],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
