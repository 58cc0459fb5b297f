"""Which projections exist, and the followers that keep them up to date."""

from __future__ import annotations

from sqlalchemy import Engine

from flowledger.eventlog.follower import Follower
from flowledger.eventlog.store import EventStore
from flowledger.projections.agents import AgentsProjection
from flowledger.projections.api_keys import ApiKeysProjection
from flowledger.projections.audit import AuditLogProjection
from flowledger.projections.bulk import BulkOperationsProjection
from flowledger.projections.grants import WorkflowGrantsProjection
from flowledger.projections.integrations import IntegrationsProjection
from flowledger.projections.projector import Projection, Projector
from flowledger.projections.run_logs import RunLogsProjection
from flowledger.projections.runs import RunsProjection
from flowledger.projections.triggers import TriggersProjection
from flowledger.projections.users import UsersProjection
from flowledger.projections.webhooks import WebhooksProjection
from flowledger.projections.workflows import WorkflowsProjection
from flowledger.runtime.settings import Settings


def all_projections() -> list[Projection]:
    return [
        AgentsProjection(),
        WorkflowsProjection(),
        WorkflowGrantsProjection(),
        AuditLogProjection(),
        ApiKeysProjection(),
        RunsProjection(),
        RunLogsProjection(),
        WebhooksProjection(),
        TriggersProjection(),
        IntegrationsProjection(),
        UsersProjection(),
        BulkOperationsProjection(),
    ]


def projection_followers(
    store: EventStore, engine: Engine, settings: Settings, names: list[str] | None = None
) -> list[Follower]:
    chosen = [p for p in all_projections() if names is None or p.name in names]
    return [
        Follower(
            store,
            Projector(projection, store, engine),
            batch_size=settings.follower_batch_size,
            idle_wait_s=settings.follower_idle_wait_s,
            linger_s=settings.follower_linger_s,
        )
        for projection in chosen
    ]
