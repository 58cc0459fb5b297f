"""What operators see of each HTTP request: a server span, metrics, one log line; and
``/metrics``.

The middleware wraps the whole app (``create_app`` puts it around Litestar's ASGI handler),
so it sees every request, routed or not: 404s for unknown paths are counted under the route
``<unmatched>``. Metrics and spans are labelled with the route *template*
(``/api/v1/agents/{agent_id:uuid}``), never the raw path.
"""

from __future__ import annotations

import os
import time
from typing import Final

import structlog
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from flowledger.eventlog.lag import LagCollector
from flowledger.observability import METRICS_DIRECTORY, metrics
from flowledger.observability.connections import ConnectionsCollector
from flowledger.observability.tracing import context_from_headers, tracer
from flowledger.projections.run_metrics import RunStatusCollector
from flowledger.projections.trigger_metrics import TriggerFiringsCollector
from flowledger.runtime.process import Runtime

UNMATCHED: Final = "<unmatched>"
access_log = structlog.get_logger("flowledger.http")


def observability_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status = 500
        started = time.perf_counter()

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with tracer().start_as_current_span(
            method,
            context=context_from_headers(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        ) as span:
            try:
                await app(scope, receive, send_observed)
            finally:
                duration = time.perf_counter() - started
                route = str(scope.get("path_template") or UNMATCHED)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                _record(method, route, status, duration)
                access_log.info(
                    "request",
                    method=method,
                    path=path,
                    route=route,
                    status=status,
                    duration_ms=round(duration * 1000, 2),
                )

    return middleware


def _record(method: str, route: str, status: int, duration: float) -> None:
    metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
    metrics.HTTP_REQUEST_DURATION.labels(method, route).observe(duration)
    if status >= 400:
        metrics.HTTP_REQUEST_ERRORS.labels(method, route, str(status)).inc()


def _this_process_or_all() -> Collector:
    """This process's metrics; or, where it is one of several API processes on one port (ADR
    0025), what all of them recorded, summed from the directory they share."""
    if METRICS_DIRECTORY not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


@get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics",
    description="This process's metrics (under `serve --processes N`, what all N recorded, "
    "summed, without the per-process `process_*` and `python_*` ones), plus what the database "
    "says now: every follower's "
    "position and lag (`flowledger_follower_lag_events`, `flowledger_follower_lag_seconds`) and "
    "the runs in each status (`flowledger_runs`), the trigger firings recorded "
    "(`flowledger_trigger_firings_total`, by type and outcome), the server's client connections "
    "by the role holding them against its limit (`flowledger_database_connections`, "
    "`flowledger_database_connections_limit`) and this process's connection budget.",
    tags=["system"],
    media_type=CONTENT_TYPE_LATEST,
    sync_to_thread=True,
)
def metrics_endpoint(runtime: NamedDependency[Runtime]) -> Response[bytes]:
    body = (
        generate_latest(_this_process_or_all())
        + generate_latest(LagCollector(runtime.engine, runtime.store))
        + generate_latest(RunStatusCollector(runtime.engine))
        + generate_latest(ConnectionsCollector(runtime.engine, runtime.budget))
        + generate_latest(TriggerFiringsCollector(runtime.engine))
    )
    return Response(body, media_type=CONTENT_TYPE_LATEST)
