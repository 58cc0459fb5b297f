"""``/health`` (the process answers) and ``/health/ready`` (it can serve: the database answers;
and what the operator should know: the broker, how far behind each follower is, the Kafka
relay's last error, the webhook backlog, the database's connections against its limit).
Subscribers never make the API unready: commands keep working while a broker or a receiver is
down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, TypeVar

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from msgspec import Meta
from sqlalchemy import Connection

from flowledger.eventlog import lag
from flowledger.kafka.status import RelayStatus, relay_status
from flowledger.projections.registry import all_projections
from flowledger.runtime.connections import ConnectionUsage, connection_usage
from flowledger.runtime.process import Runtime
from flowledger.webhooks.backlog import WebhookBacklog, webhook_backlog

T = TypeVar("T")


class Health(msgspec.Struct):
    status: Annotated[Literal["ok"], Meta(examples=["ok"])]


class Check(msgspec.Struct, omit_defaults=True):
    status: Literal["ok", "failed", "not_configured"]
    latency_ms: float | None = None
    error: str | None = None


class FollowerLag(msgspec.Struct, omit_defaults=True):
    position: int
    lag_events: Annotated[int, Meta(description="Positions between the head and this follower.")]
    lag_seconds: Annotated[
        float | None, Meta(description="Age of the oldest event it has not handled (0: none).")
    ] = None


class Connections(msgspec.Struct, omit_defaults=True):
    in_use: Annotated[
        int, Meta(description="Client connections on the database server now (anyone's).")
    ]
    limit: Annotated[
        int,
        Meta(
            description="How many the server allows flowledger's database user: "
            "`max_connections`, less the reserved slots the user may not take."
        ),
    ]
    by_role: Annotated[
        dict[str, int],
        Meta(
            description="flowledger's by the role holding them (`api`, `worker projections`, an "
            "operator's command such as `projections rebuild`); `other`: not flowledger's.",
            examples=[{"api": 3, "worker projections": 6, "other": 1}],
        ),
    ]
    process_budget: Annotated[
        int | None,
        Meta(description="The most connections this API process opens (its connection budget)."),
    ] = None


class Readiness(msgspec.Struct, omit_defaults=True):
    status: Annotated[
        Literal["ready", "degraded", "not_ready"],
        Meta(
            description="`not_ready` (503) when the database does not answer; `degraded` (200) "
            "when the broker is configured but does not answer: the API still serves, the "
            "Kafka relay and executor cannot."
        ),
    ]
    database: Check
    broker: Check
    head_position: int | None = None
    projections: dict[str, FollowerLag] | None = None
    followers: Annotated[
        dict[str, FollowerLag] | None,
        Meta(description="Other followers of the event log (relay, webhooks, executor)."),
    ] = None
    relay: Annotated[
        RelayStatus | None,
        Meta(description="The Kafka relay's position, cluster and last error (absent: never ran)."),
    ] = None
    webhooks: WebhookBacklog | None = None
    connections: Annotated[
        Connections | None,
        Meta(description="Connections in use on the database server against its limit."),
    ] = None


@get("/health", operation_id="health", summary="Liveness", tags=["system"], sync_to_thread=False)
def health() -> Health:
    return Health(status="ok")


@get(
    "/health/ready",
    operation_id="readiness",
    summary="Readiness",
    description="503 when the database does not answer. Reports the broker (when "
    "`KAFKA_BOOTSTRAP_SERVERS` is set), each follower's position and lag, and the database "
    "server's connections in use against its limit.",
    tags=["system"],
)
async def readiness(runtime: NamedDependency[Runtime]) -> Response[Readiness]:
    timeout = runtime.settings.readiness_timeout_s
    (database, measured), broker = await asyncio.gather(
        _timed(lambda: _measure(runtime), timeout), _check_broker(runtime, timeout)
    )
    if database.status != "ok" or measured is None:
        body = Readiness(status="not_ready", database=database, broker=broker)
        return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    lags, relay, backlog, usage = measured
    names = {p.name for p in all_projections()}
    found = {
        f.name: FollowerLag(position=f.position, lag_events=f.lag_events, lag_seconds=f.lag_seconds)
        for f in lags.followers
    }
    others = {name: value for name, value in found.items() if name not in names}
    body = Readiness(
        status="degraded" if broker.status == "failed" else "ready",
        database=database,
        broker=broker,
        head_position=lags.head,
        projections={name: value for name, value in found.items() if name in names},
        followers=others or None,
        relay=relay,
        webhooks=backlog,
        connections=Connections(
            in_use=usage.in_use,
            limit=usage.limit,
            by_role=dict(usage.by_role),
            process_budget=runtime.budget.total if runtime.budget else None,
        ),
    )
    return Response(body, status_code=HTTP_200_OK)


Measured = tuple[lag.Lags, RelayStatus | None, WebhookBacklog, ConnectionUsage]


async def _measure(runtime: Runtime) -> Measured:
    def measure(conn: Connection) -> Measured:
        lags = lag.measure(conn, runtime.store)
        usage = connection_usage(conn)
        return lags, relay_status(conn, lags.head), webhook_backlog(conn), usage

    async with runtime.async_engine.connect() as conn:
        return await conn.run_sync(measure)


async def _timed(check: Callable[[], Awaitable[T]], limit_s: float) -> tuple[Check, T | None]:
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(check(), limit_s)
    except Exception as error:
        if isinstance(error, TimeoutError):
            message = f"no answer within {limit_s:g}s"
        else:
            message = f"{type(error).__name__}: {error}"
        return Check(status="failed", error=message[:300]), None
    latency = round((time.perf_counter() - started) * 1000, 2)
    return Check(status="ok", latency_ms=latency), result


async def _check_broker(runtime: Runtime, limit_s: float) -> Check:
    """A metadata round trip to the Kafka cluster, when one is configured."""
    servers = runtime.settings.kafka_bootstrap_servers
    if not servers:
        return Check(status="not_configured")

    async def connect() -> None:
        from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

        admin = AIOKafkaAdminClient(
            bootstrap_servers=servers, request_timeout_ms=max(int(limit_s * 1000), 100)
        )
        try:
            await admin.start()  # bootstraps: fetches the cluster's metadata
        finally:
            await admin.close()

    check, _ = await _timed(connect, limit_s)
    return check
