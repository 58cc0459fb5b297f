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

    @classmethod
    def open(
        cls, settings: Settings, *, database: Database | None = None, migrate: bool = True
    ) -> Runtime:
        database = database or resolve_database(settings)
        if migrate:
            migrations.upgrade(database)
        return cls(
            settings=settings,
            database=database,
            store=EventStore(
                database,
                pool_size=settings.db_pool_size,
                settings=EventStoreSettings.from_settings(settings),
                uncached=(Run,),  # many, large, each read rarely (the executor keeps its own)
            ),
            engine=database.create_engine(pool_size=max(2, settings.db_pool_size // 2)),
            async_engine=database.create_async_engine(pool_size=settings.db_pool_size),
        )

    async def aclose(self) -> None:
        await self.async_engine.dispose()
        self.close_sync()

    def close_sync(self) -> None:
        self.engine.dispose()
        self.store.close()
