"""The composition root's parts: settings, database, event store and engines, opened once per
process and shared by the API and the in-process followers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from flowledger.domain.runs import Run
from flowledger.eventlog.settings import EventStoreSettings
from flowledger.eventlog.store import EventStore
from flowledger.runtime import migrations
from flowledger.runtime.connections import ConnectionSettings, PoolBudget, process_role
from flowledger.runtime.database import Database, resolve_database
from flowledger.runtime.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    database: Database
    store: EventStore
    engine: Engine
    """Sync engine: projectors and other followers."""
    async_engine: AsyncEngine
    """Async engine: HTTP queries."""
    budget: PoolBudget | None = None
    """The most connections each of its pools opens (this process's role and settings)."""

    @classmethod
    def open(
        cls, settings: Settings, *, database: Database | None = None, migrate: bool = True
    ) -> Runtime:
        database = database or resolve_database(settings)
        if migrate:
            migrations.upgrade(database)
        connections = ConnectionSettings.from_settings(settings)
        budget = connections.budget(process_role())
        idle_s = connections.idle_timeout_s
        return cls(
            settings=settings,
            database=database,
            store=EventStore(
                database,
                pool_size=budget.store,
                idle_timeout_s=idle_s,
                settings=EventStoreSettings.from_settings(settings),
                uncached=(Run,),  # many, large, each read rarely (the executor keeps its own)
            ),
            engine=database.create_engine(budget.sync, idle_timeout_s=idle_s),
            async_engine=database.create_async_engine(budget.async_, idle_timeout_s=idle_s),
            budget=budget,
        )

    def new_async_engine(self) -> AsyncEngine:
        """Another async engine of this process's size, for a worker whose event loop is its
        own (the webhook sender): such a worker uses it instead of :attr:`async_engine`."""
        idle_s = ConnectionSettings.from_settings(self.settings).idle_timeout_s
        size = self.budget.async_ if self.budget else 5
        return self.database.create_async_engine(size, idle_timeout_s=idle_s)

    async def aclose(self) -> None:
        await self.async_engine.dispose()
        self.close_sync()

    def close_sync(self) -> None:
        self.engine.dispose()
        self.store.close()
