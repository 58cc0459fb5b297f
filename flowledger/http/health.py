"""``/health`` (the process answers) and ``/health/ready`` (it can serve: database reachable,
projections not failed). Readiness also reports how far the subscribers' feeds are behind (the
Kafka relay, the webhook backlog); they never make the API unready: commands keep working
while a broker or a receiver is down."""

from __future__ import annotations

import time
from typing import Annotated, Literal

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from msgspec import Meta
from sqlalchemy import text

from flowledger.http.consistency import projection_position
from flowledger.http.events.status import RelayStatus, WebhookBacklog, relay_status, webhook_backlog
from flowledger.projections.runner import all_projections
from flowledger.runtime import Runtime


class Health(msgspec.Struct):
    status: Annotated[Literal["ok"], Meta(examples=["ok"])]


class Check(msgspec.Struct, omit_defaults=True):
    status: Literal["ok", "failed"]
    latency_ms: float | None = None
    error: str | None = None


class ProjectionLag(msgspec.Struct):
    position: int
    lag_events: int


class Readiness(msgspec.Struct):
    status: Literal["ready", "not_ready"]
    database: Check
    head_position: int | None = None
    projections: dict[str, ProjectionLag] | None = None
    relay: RelayStatus | None = None
    """The Kafka relay's position, lag and last error (absent when it never ran)."""
    webhooks: WebhookBacklog | None = None


@get("/health", operation_id="health", summary="Liveness", tags=["system"], sync_to_thread=False)
def health() -> Health:
    return Health(status="ok")


@get("/health/ready", operation_id="readiness", summary="Readiness", tags=["system"])
async def readiness(runtime: NamedDependency[Runtime]) -> Response[Readiness]:
    started = time.perf_counter()
    try:
        async with runtime.async_engine.connect() as conn:
            head = (
                await conn.execute(
                    text("SELECT coalesce(max(notification_id), 0) FROM flowledger_events")
                )
            ).scalar_one()
            lags = {}
            for projection in all_projections():
                position = await projection_position(conn, projection.name)
                lags[projection.name] = ProjectionLag(position=position, lag_events=head - position)
            relay = await relay_status(conn, int(head))
            backlog = await webhook_backlog(conn)
    except Exception as error:
        body = Readiness(
            status="not_ready",
            database=Check(status="failed", error=f"{type(error).__name__}: {error}"[:300]),
        )
        return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    latency = round((time.perf_counter() - started) * 1000, 2)
    body = Readiness(
        status="ready",
        database=Check(status="ok", latency_ms=latency),
        head_position=int(head),
        projections=lags,
        relay=relay,
        webhooks=backlog,
    )
    return Response(body, status_code=HTTP_200_OK)
