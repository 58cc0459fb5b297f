"""Which projections exist, and the follower that keeps those of a process up to date."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from flowledger.eventlog.follower import Follower
from flowledger.eventlog.store import EventStore
from flowledger.projections.agents import AgentsProjection
from flowledger.projections.api_keys import ApiKeysProjection
from flowledger.projections.audit import AuditLogProjection
from flowledger.projections.bulk import BulkOperationsProjection
from flowledger.projections.grants import WorkflowGrantsProjection
from flowledger.projections.host import ProjectionHost
from flowledger.projections.integrations import IntegrationsProjection
from flowledger.projections.projector import Projection, Projector
from flowledger.projections.run_logs import RunLogsProjection
from flowledger.projections.runs import RunsProjection
from flowledger.projections.settings import PROJECTION_NAMES, ProjectionSettings
from flowledger.projections.triggers import TriggersProjection
from flowledger.projections.users import UsersProjection
from flowledger.projections.webhooks import WebhooksProjection
from flowledger.projections.workflows import WorkflowsProjection
from flowledger.runtime.settings import Settings


def all_projections() -> list[Projection]:
    """Every projection, once each; their names are ``PROJECTION_NAMES`` (the setting
    ``FLOWLEDGER_PROJECTIONS`` is checked against that list before the database is reached)."""
    projections: list[Projection] = [
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
    names = sorted(p.name for p in projections)
    if names != sorted(PROJECTION_NAMES):
        raise RuntimeError(f"PROJECTION_NAMES must list {names}, not {sorted(PROJECTION_NAMES)}")
    return projections


def projection_host(
    store: EventStore, engine: Engine, names: Sequence[str] | None = None
) -> ProjectionHost:
    """The projections named (all when None) behind one reader of the log."""
    chosen = [p for p in all_projections() if names is None or p.name in names]
    return ProjectionHost(store, engine, [Projector(p, store, engine) for p in chosen])


def projection_follower(
    store: EventStore, engine: Engine, settings: Settings, names: Sequence[str] | None = None
) -> Follower:
    """The follower of ``flowledger worker projections``: the projections ``names`` (or those
    ``FLOWLEDGER_PROJECTIONS`` lists) fed by one read of each batch."""
    configured = ProjectionSettings.from_settings(settings)
    return Follower(
        store,
        projection_host(store, engine, configured.hosted if names is None else names),
        batch_size=configured.batch_size,
        idle_wait_s=settings.follower_idle_wait_s,
        linger_s=settings.follower_linger_s,
    )
