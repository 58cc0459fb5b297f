"""Who is asking, and under which correlation id and trace: what every command's events carry."""

from __future__ import annotations

import re
import uuid
from typing import Any

import structlog
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from flowledger.eventlog.store import EventMetadata

CORRELATION_HEADER = "X-Correlation-ID"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def correlation_id_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    state = connection.scope.get("state") or {}
    value = state.get("correlation_id")
    return str(value) if value else ""


def actor_of(request: Request[Any, Any, Any]) -> str:
    """The authenticated principal's actor (``key:<id>``, ``jwt:<sub>``, ``admin-env``), or
    ``anonymous`` on a public route."""
    user = request.scope.get("user")
    actor = getattr(user, "actor", None)
    return str(actor) if actor else "anonymous"


def metadata_for(request: Request[Any, Any, Any]) -> EventMetadata:
    state = request.scope.get("state") or {}
    return EventMetadata(
        actor=actor_of(request),
        correlation_id=correlation_id_of(request) or str(uuid.uuid4()),
        traceparent=state.get("traceparent"),
    )


def correlation_middleware(app: ASGIApp) -> ASGIApp:
    """Give each request a correlation id (the caller's ``X-Correlation-ID`` if it is sane),
    keep the caller's W3C ``traceparent``, and echo the correlation id on the response.

    The id is bound to structlog's context for the request, so every log line written while
    handling it (in worker threads too) carries ``correlation_id``."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get(CORRELATION_HEADER.lower()) or headers.get("x-request-id") or ""
        correlation_id = given if _SAFE_ID.match(given) else str(uuid.uuid4())
        state = scope.setdefault("state", {})
        state["correlation_id"] = correlation_id
        traceparent = headers.get("traceparent", "")
        if _TRACEPARENT.match(traceparent):
            state["traceparent"] = traceparent

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)[CORRELATION_HEADER] = correlation_id
            await send(message)

        with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
            await app(scope, receive, send_with_id)

    return middleware
