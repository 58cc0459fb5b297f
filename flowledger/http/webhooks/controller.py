"""``/api/v1/webhooks``: register, list, read and delete webhooks; list their deliveries."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.commands.webhooks import (
    DeleteWebhook,
    RegisterWebhook,
    delete_webhook,
    register_webhook,
)
from flowledger.domain.errors import NotFound
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.http.consistency import MinPosition, wait_for_position
from flowledger.http.pagination import Page, PageNumber, PageSize, SortOrder
from flowledger.http.permissions import Permission, requires
from flowledger.http.webhooks import queries
from flowledger.http.webhooks.queries import WebhookStatusFilter
from flowledger.http.webhooks.schemas import (
    DeliveryStatus,
    WebhookCreate,
    WebhookDelivery,
    WebhookResponse,
)
from flowledger.http.writes import WRITE_HEADERS, position_headers, run_command
from flowledger.runtime.settings import Settings

WebhookId = Annotated[UUID, Parameter(description="The webhook's id.")]
PROJECTION = "webhooks"


class WebhookController(Controller):
    path = "/api/v1/webhooks"
    tags = ["webhooks"]

    @post(
        "/",
        operation_id="registerWebhook",
        summary="Register a webhook",
        description="Every event recorded from now on whose type matches `event_types` (all "
        "when empty) is POSTed to `url` as the event envelope, signed with `secret`, in log "
        "order, retried with backoff. The secret is never returned.",
        status_code=HTTP_201_CREATED,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.ADMIN),
    )
    async def register(
        self,
        data: JSONBody[WebhookCreate],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[WebhookResponse]:
        command = msgspec.convert(msgspec.to_builtins(data), RegisterWebhook)
        outcome = await run_command(register_webhook, store, command, meta)
        headers = position_headers(outcome)
        headers["Location"] = f"{self.path}/{outcome.aggregate.id}"
        return Response(WebhookResponse.from_webhook(outcome.aggregate), headers=headers)

    @get(
        "/",
        operation_id="listWebhooks",
        summary="List webhooks",
        description="Deleted webhooks are hidden unless `status=deleted` (or `all`).",
        opt=requires(Permission.ADMIN),
    )
    async def list_webhooks(
        self,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        status: Annotated[
            WebhookStatusFilter | None, Parameter(description="Only webhooks with this status.")
        ] = None,
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[WebhookResponse]:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        return await queries.list_webhooks(db, status=status, page=page, page_size=page_size)

    @get(
        "/{webhook_id:uuid}",
        operation_id="getWebhook",
        summary="Read a webhook",
        opt=requires(Permission.ADMIN),
    )
    async def get_webhook(
        self,
        webhook_id: WebhookId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> WebhookResponse:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        webhook = await queries.find_webhook(db, webhook_id)
        if webhook is None:
            raise NotFound(f"webhook {webhook_id} not found")
        return webhook

    @delete(
        "/{webhook_id:uuid}",
        operation_id="deleteWebhook",
        summary="Delete a webhook",
        description="Stops its deliveries (pending ones are cancelled). Deleting twice changes "
        "nothing.",
        status_code=HTTP_204_NO_CONTENT,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.ADMIN),
    )
    async def delete_webhook(
        self,
        webhook_id: WebhookId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[None]:
        outcome = await run_command(
            delete_webhook, store, DeleteWebhook(webhook_id=webhook_id), meta
        )
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers=position_headers(outcome))

    @get(
        "/{webhook_id:uuid}/deliveries",
        operation_id="listWebhookDeliveries",
        summary="List a webhook's deliveries",
        description="One entry per event sent (or to send) to the webhook, with every attempt: "
        "when, how long, the receiver's status code or the error. Newest first by default.",
        opt=requires(Permission.ADMIN),
    )
    async def list_deliveries(
        self,
        webhook_id: WebhookId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        status: Annotated[
            DeliveryStatus | None, Parameter(description="Only deliveries with this status.")
        ] = None,
        order: SortOrder = "desc",
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[WebhookDelivery]:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        if await queries.find_webhook(db, webhook_id) is None:
            raise NotFound(f"webhook {webhook_id} not found")
        return await queries.list_deliveries(
            db, webhook_id, status=status, order=order, page=page, page_size=page_size
        )
