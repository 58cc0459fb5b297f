"""``/api/v1/triggers``: list and read triggers (next fire times, last runs), pause, resume,
backfill; ``/api/v1/inbound-webhooks``: spec 003's form for adding a webhook trigger."""

from __future__ import annotations

import re
import secrets
from typing import Annotated
from uuid import UUID

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.commands.triggers import (
    Backfill,
    PauseTrigger,
    ResumeTrigger,
    backfill,
    pause_trigger,
    resume_trigger,
)
from flowledger.commands.workflows import AddWebhookTrigger, add_webhook_trigger
from flowledger.domain.errors import NotFound
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.http.consistency import MinPosition, wait_for_position
from flowledger.http.pagination import Page, PageNumber, PageSize
from flowledger.http.permissions import Permission, requires
from flowledger.http.triggers import queries
from flowledger.http.triggers.schemas import (
    BackfillRequest,
    BackfillResponse,
    InboundWebhookCreate,
    TriggerFiringResponse,
    TriggerResponse,
    TriggerStatus,
    TriggerType,
)
from flowledger.http.writes import WRITE_HEADERS, position_headers, run_command
from flowledger.runtime.settings import Settings

TriggerId = Annotated[UUID, Parameter(description="The trigger's id.")]
PROJECTION = "triggers"


class TriggerController(Controller):
    path = "/api/v1/triggers"
    tags = ["triggers"]

    @get(
        "/",
        operation_id="listTriggers",
        summary="List triggers",
        description="The schedule and webhook triggers of every workflow's current version "
        "(removed ones with `status=removed`), each with its next fire times and latest "
        "firings.",
        opt=requires(Permission.READ),
    )
    async def list_triggers(
        self,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        workflow_id: Annotated[UUID | None, Parameter(description="Of this workflow.")] = None,
        type: Annotated[TriggerType | None, Parameter(description="Of this type.")] = None,
        status: Annotated[TriggerStatus | None, Parameter(description="In this status.")] = None,
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[TriggerResponse]:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        return await queries.list_triggers(
            db, workflow_id=workflow_id, kind=type, status=status, page=page, page_size=page_size
        )

    @get(
        "/{trigger_id:uuid}",
        operation_id="getTrigger",
        summary="Read a trigger",
        description="Its definition (secrets masked), status, next fire times (schedules) and "
        "its latest firings with their runs.",
        opt=requires(Permission.READ),
    )
    async def get_trigger(
        self,
        trigger_id: TriggerId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> TriggerResponse:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        found = await queries.find_trigger(db, trigger_id)
        if found is None:
            raise NotFound(f"trigger {trigger_id} not found")
        return found

    @post(
        "/{trigger_id:uuid}/pause",
        operation_id="pauseTrigger",
        summary="Pause a trigger",
        description="A paused schedule does not fire and a paused webhook answers 409, until "
        "resumed. No new workflow version is made. Pausing twice changes nothing.",
        status_code=HTTP_200_OK,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.MANAGE),
    )
    async def pause(
        self,
        trigger_id: TriggerId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[TriggerResponse]:
        outcome = await run_command(pause_trigger, store, PauseTrigger(trigger_id=trigger_id), meta)
        return Response(
            TriggerResponse.from_trigger(outcome.aggregate), headers=position_headers(outcome)
        )

    @post(
        "/{trigger_id:uuid}/resume",
        operation_id="resumeTrigger",
        summary="Resume a trigger",
        description="Ticks that fell while it was paused are not caught up (backfill them if "
        "they should run).",
        status_code=HTTP_200_OK,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.MANAGE),
    )
    async def resume(
        self,
        trigger_id: TriggerId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[TriggerResponse]:
        outcome = await run_command(
            resume_trigger, store, ResumeTrigger(trigger_id=trigger_id), meta
        )
        return Response(
            TriggerResponse.from_trigger(outcome.aggregate), headers=position_headers(outcome)
        )

    @post(
        "/{trigger_id:uuid}/backfill",
        operation_id="backfillTrigger",
        summary="Backfill a schedule",
        description="Start the runs of the schedule's ticks in `(start, end]` that have not "
        "fired, oldest first (paused or disabled schedules too). Ticks that fired before are "
        "not run again. The same as `flowledger triggers backfill`.",
        status_code=HTTP_200_OK,
        opt=requires(Permission.EXECUTE),
    )
    async def backfill(
        self,
        trigger_id: TriggerId,
        data: JSONBody[BackfillRequest],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> BackfillResponse:
        command = Backfill(trigger_id=trigger_id, start=data.start, end=data.end, limit=data.limit)
        result = await run_command(backfill, store, command, meta)
        firings = [
            TriggerFiringResponse(
                id=f.aggregate.id,
                scheduled_for=f.aggregate.scheduled_for,
                run_id=f.aggregate.run_id,
                error=f.aggregate.error,
                fired_at=f.aggregate.created_on,
                actor=meta.actor,
            )
            for f in result.fired
        ]
        return BackfillResponse(
            trigger_id=trigger_id,
            ticks=len(result.ticks),
            started=result.started,
            already_fired=sum(1 for f in result.fired if f.replayed),
            failed=sum(1 for f in result.fired if not f.replayed and f.aggregate.run_id is None),
            firings=firings,
        )


class InboundWebhookController(Controller):
    path = "/api/v1/inbound-webhooks"
    tags = ["triggers"]

    @post(
        "/",
        operation_id="createInboundWebhook",
        summary="Add an inbound webhook to a workflow",
        description="Spec 003's webhook form: adds a webhook trigger to the workflow's "
        "definition (its next version) and answers with the trigger. Calls to "
        "`/hooks/<url_path>` then start runs. Paths are unique across workflows (409).",
        status_code=HTTP_201_CREATED,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.ADMIN),
    )
    async def create(
        self,
        data: JSONBody[InboundWebhookCreate],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
    ) -> Response[TriggerResponse]:
        trigger: dict[str, object] = {
            "type": "webhook",
            "path": data.url_path or _path_for(data.event_type),
            "event_type": data.event_type,
        }
        if data.method != "POST":
            trigger["method"] = data.method
        for key, value in (
            ("auth", data.authentication),
            ("headers", data.headers),
            ("query", data.query),
        ):
            if value is not None:
                trigger[key] = value
        command = AddWebhookTrigger(workflow_id=data.workflow_id, trigger=trigger)
        outcome = await run_command(add_webhook_trigger, store, command, meta)
        response = TriggerResponse.from_trigger(outcome.aggregate)
        headers = position_headers(outcome)
        headers["Location"] = f"{TriggerController.path}/{response.id}"
        return Response(response, headers=headers)


def _path_for(event_type: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", event_type).strip("-")[:80] or "hook"
    return f"{slug}-{secrets.token_hex(4)}"
