"""What the sample agents share: settings, call statistics, input/reply helpers, the HTTP app.

Every agent is an a2a-sdk :class:`~a2a.server.agent_execution.AgentExecutor` served by
``DefaultRequestHandler`` (an in-memory task store) behind the JSON-RPC routes of a2a-sdk, in a
Starlette app that also serves:

* ``GET /.well-known/agent-card.json`` - the agent card (always public);
* ``GET /stats`` - ``{"agent": ..., "calls": n, ...}``, how often the agent was called;
* ``POST /stats/reset`` - zero the statistics; a JSON body may also reconfigure the agent
  (``{"fail_first": 2}`` for ``flaky``, ``{"delay_s": 1.5}`` for ``slow``).

``/stats`` is a test aid and stays public like the card, even when the agent requires auth.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import signal
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import uvicorn
from a2a.helpers import get_data_parts, get_text_parts, new_data_part, new_task, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentExtension,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    APIKeySecurityScheme,
    HTTPAuthSecurityScheme,
    Message,
    SecurityRequirement,
    SecurityScheme,
    StringList,
    TaskState,
)
from a2a.utils.constants import (
    AGENT_CARD_WELL_KNOWN_PATH,
    PROTOCOL_VERSION_CURRENT,
    TransportProtocol,
)
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from examples.agents import AGENT_VERSION

logger = logging.getLogger("examples.agents")

RPC_PATH = "/"
STATS_PATH = "/stats"
STATS_RESET_PATH = "/stats/reset"
DEFAULT_API_KEY_HEADER = "X-API-Key"
PUBLIC_PATHS = frozenset({AGENT_CARD_WELL_KNOWN_PATH, STATS_PATH, STATS_RESET_PATH, "/healthz"})


@dataclass
class AgentSettings:
    """How one agent is started (built from the command line by ``__main__``)."""

    kind: str
    host: str = "127.0.0.1"
    port: int = 9101
    public_url: str | None = None
    """The URL the agent card advertises; ``http://{host}:{port}/`` when not set."""
    require_bearer: str | None = None
    require_api_key: str | None = None
    api_key_header: str = DEFAULT_API_KEY_HEADER
    streaming: bool = True
    """Advertise (and allow) ``SendStreamingMessage``; off makes clients poll."""
    fail_first: int = 0
    fail_mode: str = "task"
    delay_s: float = 5.0
    reply_as: str = "message"
    report_calls: bool = False
    log_level: str = "warning"

    @property
    def url(self) -> str:
        if self.public_url:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"


@dataclass
class CallStats:
    """How often an agent was called and how the calls ended."""

    calls: int = 0
    completed: int = 0
    failed: int = 0
    canceled: int = 0
    in_flight: int = 0
    last_input: Any = None
    last_message_id: str | None = None
    last_context_id: str | None = None
    started_at: float = field(default_factory=time.time)

    def reset(self) -> None:
        """Zero the counters. ``in_flight`` is kept: calls running now are still running."""
        self.calls = self.completed = self.failed = self.canceled = 0
        self.last_input = None
        self.last_message_id = None
        self.last_context_id = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "completed": self.completed,
            "failed": self.failed,
            "canceled": self.canceled,
            "in_flight": self.in_flight,
            "last_input": self.last_input,
            "last_message_id": self.last_message_id,
            "last_context_id": self.last_context_id,
            "uptime_s": round(time.time() - self.started_at, 3),
        }


def normalize_numbers(value: Any) -> Any:
    """``value`` with whole floats turned back into ints, recursively.

    A2A data parts travel as ``google.protobuf.Value``, which stores every number as a double,
    so ``{"n": 1}`` arrives as ``{"n": 1.0}``. The agents undo that before looking at input.
    """
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        if abs(value) <= 2**53:
            return int(value)
        return value
    if isinstance(value, dict):
        return {key: normalize_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [normalize_numbers(item) for item in value]
    return value


def extract_input(message: Message | None) -> dict[str, Any]:
    """The step input carried by ``message``, always as a JSON object.

    * one data part holding an object -> that object (the normal case);
    * a data part holding anything else -> ``{"data": value}``;
    * several data parts -> the first object among them, others ignored;
    * no data part but text -> ``{"text": "<all text parts joined by newlines>"}``;
    * nothing usable -> ``{}``.
    """
    if message is None:
        return {}
    data_parts = [normalize_numbers(item) for item in get_data_parts(message.parts)]
    for item in data_parts:
        if isinstance(item, dict):
            return item
    if data_parts:
        return {"data": data_parts[0]}
    texts = get_text_parts(message.parts)
    if texts:
        return {"text": "\n".join(texts)}
    return {}


async def start_task(context: RequestContext, event_queue: EventQueue) -> TaskUpdater:
    """Publish the Task for this request (state ``submitted``, then ``working``).

    a2a-sdk requires a Task event before any status or artifact update of a new task. The task
    id is the one the request handler generated; a streaming client sees this Task as the
    first event of the stream, which is how it learns the id early enough to cancel.
    """
    task_id, context_id = ids(context)
    if context.current_task is None:
        history = [context.message] if context.message is not None else []
        await event_queue.enqueue_event(
            new_task(task_id, context_id, TaskState.TASK_STATE_SUBMITTED, history=history)
        )
    updater = TaskUpdater(event_queue, task_id, context_id)
    await updater.start_work()
    return updater


async def complete_with_data(
    updater: TaskUpdater, data: Mapping[str, Any], metadata: dict[str, Any] | None = None
) -> None:
    """Finish the task with one artifact holding one data part."""
    await updater.add_artifact(
        [new_data_part(dict(data))], name="result", metadata=metadata, last_chunk=True
    )
    await updater.complete()


def ids(context: RequestContext) -> tuple[str, str]:
    if not context.task_id or not context.context_id:  # the request handler always sets both
        raise RuntimeError("request context without task or context id")
    return context.task_id, context.context_id


class ExampleAgent(AgentExecutor):
    """Base of the sample agents: counts calls, extracts the input, handles cancel."""

    kind: ClassVar[str]
    title: ClassVar[str]
    skill_description: ClassVar[str]
    examples: ClassVar[Sequence[str]] = ()
    input_schema: ClassVar[Mapping[str, Any] | None] = None
    """JSON Schema of the input data part, declared on the card (skill schemas extension)."""
    output_schema: ClassVar[Mapping[str, Any] | None] = None

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.stats = CallStats()

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        data = extract_input(context.message)
        self.stats.calls += 1
        self.stats.last_input = data
        self.stats.last_message_id = context.message.message_id if context.message else None
        self.stats.last_context_id = context.context_id
        self.stats.in_flight += 1
        try:
            await self.run(context, event_queue, data, self.stats.calls)
        finally:
            self.stats.in_flight -= 1

    @abstractmethod
    async def run(
        self, context: RequestContext, event_queue: EventQueue, data: dict[str, Any], call: int
    ) -> None:
        """Handle call number ``call`` (1-based) with input ``data``."""

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Mark the task canceled; a2a-sdk then cancels the asyncio task running ``execute``."""
        task_id, context_id = ids(context)
        updater = TaskUpdater(event_queue, task_id, context_id)
        await updater.cancel(
            updater.new_agent_message([new_text_part(f"{self.kind}: canceled on request")])
        )
        self.stats.canceled += 1

    def reconfigure(self, changes: Mapping[str, Any]) -> None:
        """Apply ``POST /stats/reset`` settings; agents override to accept some."""
        if changes:
            raise ValueError(f"{self.kind} takes no settings, got {sorted(changes)}")

    def extra_stats(self) -> dict[str, Any]:
        return {}


SKILL_SCHEMAS_EXTENSION = "https://flowledger.dev/a2a/extensions/skill-schemas/v1"
"""A2A has no field for a skill's input and output schemas; agents that flowledger should check
workflows against declare them with this card extension (flowledger's ADR 0021)."""


def skill_schemas(agent: ExampleAgent) -> list[AgentExtension]:
    """The card extension declaring the agent's skill schemas, if it has any."""
    declared = {
        key: dict(schema)
        for key, schema in (
            ("input_schema", agent.input_schema),
            ("output_schema", agent.output_schema),
        )
        if schema is not None
    }
    if not declared:
        return []
    return [
        AgentExtension(
            uri=SKILL_SCHEMAS_EXTENSION,
            description="JSON Schemas of each skill's input and output data part",
            required=False,
            params={"skills": {agent.kind: declared}},
        )
    ]


def build_card(agent: ExampleAgent) -> AgentCard:
    settings = agent.settings
    card = AgentCard(
        name=agent.kind,
        description=f"{agent.title}. Sample A2A agent shipped with flowledger (examples/agents).",
        version=AGENT_VERSION,
        provider=AgentProvider(organization="flowledger examples", url=settings.url),
        supported_interfaces=[
            AgentInterface(
                url=settings.url,
                protocol_binding=TransportProtocol.JSONRPC.value,
                protocol_version=PROTOCOL_VERSION_CURRENT,
            )
        ],
        capabilities=AgentCapabilities(
            streaming=settings.streaming,
            push_notifications=False,
            extensions=skill_schemas(agent),
        ),
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json"],
        skills=[
            AgentSkill(
                id=agent.kind,
                name=agent.title,
                description=agent.skill_description,
                tags=["flowledger", "example", agent.kind],
                examples=list(agent.examples),
                input_modes=["application/json", "text/plain"],
                output_modes=["application/json"],
            )
        ],
    )
    if settings.require_bearer:
        card.security_schemes["bearer"].CopyFrom(
            SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="Bearer", description="static bearer token"
                )
            )
        )
        card.security_requirements.append(SecurityRequirement(schemes={"bearer": StringList()}))
    if settings.require_api_key:
        card.security_schemes["apikey"].CopyFrom(
            SecurityScheme(
                api_key_security_scheme=APIKeySecurityScheme(
                    location="header", name=settings.api_key_header, description="static key"
                )
            )
        )
        card.security_requirements.append(SecurityRequirement(schemes={"apikey": StringList()}))
    return card


class RequireAuth:
    """Pure ASGI middleware answering 401 unless the request carries the configured secret.

    With both a bearer token and an API key configured, either one is accepted. The paths in
    ``PUBLIC_PATHS`` (agent card, stats) are always served. (Pure ASGI rather than
    ``BaseHTTPMiddleware`` so SSE streams pass through untouched.)
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        bearer: str | None,
        api_key: str | None,
        api_key_header: str = DEFAULT_API_KEY_HEADER,
    ) -> None:
        self.app = app
        self.bearer = bearer
        self.api_key = api_key
        self.api_key_header = api_key_header

    def _allowed(self, headers: Headers) -> bool:
        if self.bearer is not None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                token.strip().encode(), self.bearer.encode()
            ):
                return True
        if self.api_key is not None:
            given = headers.get(self.api_key_header)
            if given is not None and hmac.compare_digest(given.encode(), self.api_key.encode()):
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        if self._allowed(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        challenges = []
        if self.bearer is not None:
            challenges.append('Bearer realm="a2a"')
        if self.api_key is not None:
            challenges.append(f'ApiKey header="{self.api_key_header}"')
        response = JSONResponse(
            {"error": "unauthorized", "detail": "missing or wrong credentials"},
            status_code=401,
            headers={"WWW-Authenticate": ", ".join(challenges)},
        )
        await response(scope, receive, send)


def build_app(agent: ExampleAgent) -> Starlette:
    """The Starlette app serving ``agent``: card, JSON-RPC endpoint, stats."""
    card = build_card(agent)
    handler = DefaultRequestHandler(
        agent_executor=agent, task_store=InMemoryTaskStore(), agent_card=card
    )

    async def stats(_: Request) -> Response:
        return JSONResponse({"agent": agent.kind, **agent.stats.to_dict(), **agent.extra_stats()})

    async def reset(request: Request) -> Response:
        body = await request.body()
        changes: Any = {}
        if body.strip():
            try:
                changes = await request.json()
            except ValueError:
                return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        if not isinstance(changes, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        try:
            agent.reconfigure(changes)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        agent.stats.reset()
        return await stats(request)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "agent": agent.kind})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await handler.aclose()

    middleware = []
    if agent.settings.require_bearer or agent.settings.require_api_key:
        middleware.append(
            Middleware(
                RequireAuth,
                bearer=agent.settings.require_bearer,
                api_key=agent.settings.require_api_key,
                api_key_header=agent.settings.api_key_header,
            )
        )
    routes = [
        *create_agent_card_routes(card),
        *create_jsonrpc_routes(handler, rpc_url=RPC_PATH, enable_v0_3_compat=True),
        Route(STATS_PATH, stats, methods=["GET"]),
        Route(STATS_RESET_PATH, reset, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`serve`.

    uvicorn installs its own SIGINT/SIGTERM handlers per server, and with several servers in
    one process only the last one would stop. :func:`serve` stops them all instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(agents: Sequence[ExampleAgent]) -> None:
    """Serve every agent on its own host/port in this event loop until SIGINT/SIGTERM."""
    servers = []
    for agent in agents:
        settings = agent.settings
        config = uvicorn.Config(
            build_app(agent),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        servers.append(_Server(config))

    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            if server.should_exit:
                server.force_exit = True
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)
    for agent in agents:
        logger.warning("%s agent serving at %s", agent.kind, agent.settings.url)
    await asyncio.gather(*(server.serve() for server in servers))
