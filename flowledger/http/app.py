"""``create_app()``: the one place the HTTP app is wired (routes, dependencies, errors, docs)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from litestar import Litestar, Request
from litestar.config.cors import CORSConfig
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Tag
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger import __version__
from flowledger.bulk.runner import BulkRunner
from flowledger.bulk.settings import BulkSettings
from flowledger.domain.limits import RunLimits
from flowledger.eventlog.notify import Notifier
from flowledger.eventlog.store import EVENTS_TABLE, EventMetadata, EventStore
from flowledger.executor.settings import LimitSettings
from flowledger.http.agents.controller import AgentController
from flowledger.http.analytics.controller import AnalyticsController
from flowledger.http.api_keys.controller import ApiKeyController, whoami
from flowledger.http.audit.controller import AuditController
from flowledger.http.auth import ApiSecurity
from flowledger.http.bulk.controller import BulkOperationController
from flowledger.http.context import correlation_middleware, metadata_for
from flowledger.http.dashboard.routes import dashboard_handlers
from flowledger.http.docs import RENDER_PLUGINS, docs_handlers
from flowledger.http.errors import exception_handlers
from flowledger.http.events.controller import EventStreamController, asyncapi_json
from flowledger.http.grants.access import WorkflowAccess
from flowledger.http.grants.controller import WorkflowGrantsController
from flowledger.http.health import health, readiness
from flowledger.http.hooks.controller import call_hook
from flowledger.http.integrations.controller import IntegrationController
from flowledger.http.observability import metrics_endpoint, observability_middleware
from flowledger.http.runs.controller import RunController, WorkflowRunsController
from flowledger.http.sessions.controller import AuthController
from flowledger.http.triggers.controller import InboundWebhookController, TriggerController
from flowledger.http.users.controller import UserController
from flowledger.http.webhooks.controller import WebhookController
from flowledger.http.workflows.controller import WorkflowController
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from flowledger.runtime.workers import InProcessWorkers

API_DESCRIPTION = """
flowledger manages agent workflows: register A2A agents, define versioned workflows whose steps
call them, run them, follow each run step by step, cancel and retry, and audit every change.

Every `/api/v1` call needs a credential: an API key in `X-API-Key`, or an access token in
`Authorization: Bearer <token>`: a user's, from signing in at `POST /api/v1/auth/token` (the
OAuth2 password grant; Swagger UI's "Authorize" button does it), or an identity provider's JWT
when configured. Roles: viewer reads; operator also executes, cancels, retries, pauses, resumes
and tests, and signals waiting runs; editor also manages agents and workflows; admin may do
everything (API keys, users, webhooks, the audit log). 401 without valid credentials, 403 when
the role is not enough, 429 with `Retry-After` past the rate limit.

Every change is an event in an append-only store; reads come from projections of those events.
A write answers with `X-Flowledger-Position`; send it back as `X-Flowledger-Min-Position` on a
read to see your own write. Errors are JSON: `detail`, and for invalid input `errors` with one
entry per field (`location`, `field`, `message`).

Every event also leaves the system in one envelope: on Kafka, on the live stream
`/api/v1/events/stream` and to webhooks; `/asyncapi.json` documents all three.
"""


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    workers: tuple[str, ...] = (),
) -> Litestar:
    """The HTTP app. ``runtime`` is opened at start-up unless given (tests pass their own: the
    app and its in-process workers then read ``settings``, while the runtime's event store and
    pools stay as it opened them); ``workers`` names followers to run inside this process
    (``projections`` in tests)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = runtime is None
        rt = Runtime.open(settings) if runtime is None else replace(runtime, settings=settings)
        app.state.runtime = rt
        app.state.events_listener = Notifier(rt.database, EVENTS_TABLE)
        in_process = InProcessWorkers(rt, workers)
        in_process.start()
        # Every API process carries out bulk operations (ADR 0020).
        app.state.bulk_runner = BulkRunner(rt, BulkSettings.from_settings(settings))
        app.state.bulk_runner.start()
        try:
            yield
        finally:
            app.state.events_listener.close()
            app.state.bulk_runner.stop()
            in_process.stop()
            if owned:
                await rt.aclose()

    def provide_runtime(request: Request[Any, Any, Any]) -> Runtime:
        return request.app.state.runtime  # type: ignore[no-any-return]

    def provide_store(runtime: NamedDependency[Runtime]) -> EventStore:
        return runtime.store

    def provide_settings() -> Settings:
        return settings

    async def provide_db(runtime: NamedDependency[Runtime]) -> AsyncIterator[AsyncConnection]:
        async with runtime.async_engine.connect() as conn:
            yield conn

    def provide_meta(request: Request[Any, Any, Any]) -> EventMetadata:
        return metadata_for(request)

    limits = LimitSettings.from_settings(settings).limits()

    def provide_limits() -> RunLimits:
        return limits

    workflow_access = WorkflowAccess.from_settings(settings)
    security = ApiSecurity(settings, workflow_access.policy())
    app = Litestar(
        route_handlers=[
            health,
            readiness,
            metrics_endpoint,
            *docs_handlers,
            AgentController,
            WorkflowController,
            WorkflowRunsController,
            WorkflowGrantsController,
            RunController,
            BulkOperationController,
            ApiKeyController,
            whoami,
            AuditController,
            asyncapi_json,
            WebhookController,
            EventStreamController,
            TriggerController,
            InboundWebhookController,
            IntegrationController,
            call_hook,
            UserController,
            AuthController,
            AnalyticsController,
            *dashboard_handlers,
        ],
        dependencies={
            "runtime": Provide(provide_runtime, sync_to_thread=False),
            "store": Provide(provide_store, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "db": Provide(provide_db),
            "meta": Provide(provide_meta, sync_to_thread=False),
            "limits": Provide(provide_limits, sync_to_thread=False),
            "visibility": Provide(workflow_access.visibility, sync_to_thread=False),
            "sign_in": Provide(lambda: security.sign_in, sync_to_thread=False),
        },
        lifespan=[lifespan],
        middleware=security.middleware,
        guards=security.guards,
        exception_handlers=exception_handlers,
        openapi_config=OpenAPIConfig(
            title="flowledger",
            version=__version__,
            description=API_DESCRIPTION.strip(),
            path="/schema",
            render_plugins=RENDER_PLUGINS,
            tags=[
                Tag(name="agents", description="External A2A services that steps call."),
                Tag(
                    name="workflows",
                    description="Versioned, validated step graphs whose steps call agents.",
                ),
                Tag(name="runs", description="Executions of workflows, step by step."),
                Tag(
                    name="grants",
                    description="Who besides its owner may view or execute a workflow "
                    "(enforced with FLOWLEDGER_WORKFLOW_GRANTS=on).",
                ),
                Tag(name="api-keys", description="Credentials for the API (admin)."),
                Tag(
                    name="auth",
                    description="Signing in (OAuth2 password grant), refreshing, signing out.",
                ),
                Tag(
                    name="users",
                    description="People who sign in (admin); each user's own account.",
                ),
                Tag(
                    name="analytics",
                    description="Runs per status over time, success rates, durations, "
                    "retries and failures per agent, the busiest workflows.",
                ),
                Tag(name="audit", description="Who changed what, and when (admin)."),
                Tag(
                    name="events",
                    description="Every event, live: Server-Sent Events of the event envelope "
                    "(its schema, the Kafka topics and webhooks: `/asyncapi.json`).",
                ),
                Tag(
                    name="webhooks",
                    description="URLs that receive events as signed POSTs, with retries.",
                ),
                Tag(
                    name="triggers",
                    description="Schedules and inbound webhooks that start runs: their next "
                    "fire times and last runs, pause, resume, backfill; `/hooks/{path}`.",
                ),
                Tag(
                    name="integrations",
                    description="n8n instances whose workflows become agents.",
                ),
                Tag(name="system", description="Health, readiness and metrics."),
            ],
            components=security.openapi_components,
            use_handler_docstrings=False,
        ),
        cors_config=CORSConfig(allow_origins=[]),
        logging_config=None,
        debug=False,
    )
    # Around Litestar's own handler, so that every request (routed or not, errors included)
    # gets a correlation id, a span, metrics and one log line.
    app.asgi_handler = correlation_middleware(observability_middleware(app.asgi_handler))
    security.secure(app)  # refuses to start when an API route declares no permission
    return app
