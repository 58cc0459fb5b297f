"""``/api/v1/events/stream`` and ``/api/v1/runs/{run_id}/events/stream``: live Server-Sent
Events of the event envelopes, resumable from ``Last-Event-ID``; ``/asyncapi.json``."""

from __future__ import annotations

from typing import Annotated, Any, Final
from uuid import UUID

import anyio.to_thread
from litestar import Controller, MediaType, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import HeaderParameter, Parameter
from litestar.response import ServerSentEvent

from flowledger.eventlog.envelope import EventFilter
from flowledger.eventlog.notify import Notifier
from flowledger.http.events.asyncapi import asyncapi_document
from flowledger.http.events.settings import StreamSettings
from flowledger.http.events.stream import event_stream
from flowledger.http.permissions import Permission, requires
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings

STREAM_DESCRIPTION = """
A `text/event-stream` of event envelopes (the schema is in `/asyncapi.json`): each SSE
message has `id` = the event's global `position` and `data` = the envelope JSON. Comments
(`: keep-alive`) are sent when nothing else was sent for a while.

By default the stream starts with events recorded after you connect. `from_position=N`
starts after position N (`0`: from the beginning); a `Last-Event-ID` header (what browsers'
`EventSource` send when they reconnect) takes precedence, so a reconnect continues without
gap. Filters combine with AND; list filters accept repeated parameters or commas.
""".strip()

AggregateTypes = Annotated[
    list[str] | None,
    Parameter(
        description="Only these aggregate types (`agent`, `workflow`, `run`, ...).",
        examples=[],
    ),
]
AggregateIds = Annotated[
    list[UUID] | None, Parameter(description="Only events of these aggregates.")
]
EventTypes = Annotated[
    list[str] | None,
    Parameter(description="Only these event types; glob patterns such as `Run*` work."),
]
FromPosition = Annotated[
    int | None,
    Parameter(ge=0, description="Start after this global position (0: from the beginning)."),
]
Follow = Annotated[
    bool,
    Parameter(
        description="`false`: send the events already recorded after the start position, then "
        "end the stream (a catch-up read). Default: keep streaming new events."
    ),
]
LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        required=False,
        description="Resume after this position (the `id` of the last message received).",
    ),
]


STREAM_RESPONSES: Final = {
    200: ResponseSpec(
        data_container=str,
        generate_examples=False,
        media_type="text/event-stream",
        description="An endless Server-Sent Events stream: `id: <position>` and `data: "
        "<envelope JSON>` per event (the Envelope schema is in `/asyncapi.json`), and "
        "`: keep-alive` comments.",
        examples=[
            Example(
                summary="One event",
                value='id: 2\ndata: {"event_id": "f04fc07e-...", "event_type": '
                '"AgentRegistered", "aggregate_type": "agent", "position": 2, ...}\n\n',
            )
        ],
    )
}


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(part.strip() for v in values or [] for part in v.split(",") if part.strip())


def _start(last_event_id: str | None, from_position: int | None) -> int | None:
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not text.isdigit():
            raise ValidationException(
                detail="Invalid header field Last-Event-ID",
                extra=[
                    {"key": "Last-Event-ID", "source": "header", "message": "must be a position"}
                ],
            )
        return int(text)
    return from_position


async def _open(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    settings: Settings,
    event_filter: EventFilter,
    start: int | None,
    follow: bool,
) -> ServerSentEvent:
    store = runtime.store
    after = start if start is not None else await anyio.to_thread.run_sync(store.head)
    listener: Notifier = request.app.state.events_listener
    stream = event_stream(
        store, listener, event_filter, after, StreamSettings.from_settings(settings), follow=follow
    )
    return ServerSentEvent(stream, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


class EventStreamController(Controller):
    path = "/api/v1"
    tags = ["events"]

    @get(
        "/events/stream",
        operation_id="streamEvents",
        summary="Stream events live (Server-Sent Events)",
        description=STREAM_DESCRIPTION,
        media_type="text/event-stream",
        responses=STREAM_RESPONSES,
        opt=requires(Permission.READ, on=("events", "")),
    )
    async def stream_events(
        self,
        request: Request[Any, Any, Any],
        runtime: NamedDependency[Runtime],
        settings: NamedDependency[Settings],
        aggregate_type: AggregateTypes = None,
        aggregate_id: AggregateIds = None,
        event_type: EventTypes = None,
        run_id: Annotated[
            str | None,
            Parameter(
                max_length=100,
                description="Only events of this run: its own, and those whose data carries it "
                "as `run_id`.",
            ),
        ] = None,
        from_position: FromPosition = None,
        last_event_id: LastEventId = None,
        follow: Follow = True,
    ) -> ServerSentEvent:
        event_filter = EventFilter(
            aggregate_types=_split(aggregate_type),
            aggregate_ids=tuple(aggregate_id or ()),
            event_types=_split(event_type),
            run_id=run_id,
        )
        start = _start(last_event_id, from_position)
        return await _open(request, runtime, settings, event_filter, start, follow)

    @get(
        "/runs/{run_id:str}/events/stream",
        operation_id="streamRunEvents",
        summary="Stream one run's progress live (Server-Sent Events)",
        description="The events stream filtered to one run: the run's own events and every "
        "event whose data carries its `run_id` (steps). " + STREAM_DESCRIPTION,
        media_type="text/event-stream",
        responses=STREAM_RESPONSES,
        opt=requires(Permission.READ, on=("run", "run_id")),
    )
    async def stream_run_events(
        self,
        request: Request[Any, Any, Any],
        runtime: NamedDependency[Runtime],
        settings: NamedDependency[Settings],
        run_id: Annotated[str, Parameter(max_length=100, description="The run's id.")],
        event_type: EventTypes = None,
        from_position: FromPosition = None,
        last_event_id: LastEventId = None,
        follow: Follow = True,
    ) -> ServerSentEvent:
        event_filter = EventFilter(event_types=_split(event_type), run_id=run_id)
        start = _start(last_event_id, from_position)
        return await _open(request, runtime, settings, event_filter, start, follow)


@get("/asyncapi.json", include_in_schema=False, sync_to_thread=False, media_type=MediaType.JSON)
def asyncapi_json(settings: NamedDependency[Settings]) -> Response[dict[str, Any]]:
    """The AsyncAPI 3 document of the envelope, the Kafka topics, the stream and webhooks."""
    return Response(asyncapi_document(settings))
