"""The database ``flowledger dev`` runs on, sized for what it starts.

Without ``DATABASE_URL`` it is the embedded server (ADR 0003): taken over when a killed
``flowledger dev`` left it running (so a clean stop stops it), its ``max_connections`` set to
what the processes ``flowledger dev`` starts may hold plus the connections kept free for
operators' commands (ADR 0013), and the backends that processes which are gone left behind
ended. With ``DATABASE_URL`` the server is someone else's: ``flowledger dev`` only warns when
its processes may need more connections than the server has free.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from flowledger.runtime import connections, embedded
from flowledger.runtime.connections import ConnectionSettings, Owner, connection_usage
from flowledger.runtime.database import (
    EMBEDDED_DATABASE_NAME,
    Database,
    create_database_if_missing,
    start_embedded_server,
)
from flowledger.runtime.settings import Settings

log = logging.getLogger("flowledger.dev")


@dataclass(frozen=True)
class DevDatabase:
    database: Database
    description: str
    """What the start-up banner says about it."""


def open_dev_database(settings: Settings, processes: int) -> DevDatabase:
    """The database for ``processes`` server processes (the API and the workers)."""
    budget = ConnectionSettings.from_settings(settings)
    needed = budget.server_connections(processes)
    sizing = (
        f"{processes} processes x {budget.pool_size} connections, "
        f"{budget.reserved} kept for operators' commands"
    )
    if settings.database_url:
        database = Database.from_url(settings.database_url)
        _warn_if_short(database, needed - budget.reserved)
        return DevDatabase(database, f"DATABASE_URL ({sizing})")
    pgdata = (settings.data_dir / "pgdata").expanduser().resolve()
    server = start_embedded_server(pgdata)
    waiting = embedded.configure(pgdata, {"max_connections": str(needed)})
    if waiting:
        log.warning(
            "the embedded PostgreSQL server keeps its max_connections until it restarts "
            "(other processes use it: %s); it needs %d for %s",
            ", ".join(map(str, embedded.holders(pgdata))),
            needed,
            sizing,
        )
    ended = end_backends(server, lambda owner: not embedded.alive(owner.pid))
    if ended:
        log.warning("ended %d connections of flowledger processes that are gone", ended)
    create_database_if_missing(server, EMBEDDED_DATABASE_NAME)
    return DevDatabase(
        server.with_dbname(EMBEDDED_DATABASE_NAME),
        f"embedded, {settings.data_dir} (max_connections {needed}: {sizing})",
    )


def end_backends(database: Database, gone: Callable[[Owner], bool]) -> int:
    """End the server's backends of flowledger processes for which ``gone`` holds (their
    process was killed: a backend busy with a query would run it to its end otherwise)."""
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT pid, application_name FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND application_name LIKE %s",
            (connections.APPLICATION_PREFIX + "%",),
        ).fetchall()
        owners = [(pid, connections.owner_of(str(name))) for pid, name in rows]
        doomed = [pid for pid, owner in owners if owner is not None and gone(owner)]
        for pid in doomed:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return len(doomed)


def child_exited(database: Database, role: str, pid: int) -> None:
    """End what a worker that exited left on the server, before it is started again."""
    try:
        ended = end_backends(database, lambda owner: owner.pid == pid and owner.role == role)
    except psycopg.Error as error:
        log.debug("could not end the connections of %s (pid %d): %s", role, pid, error)
        return
    if ended:
        log.info("ended %d connections left by %s (pid %d)", ended, role, pid)


def _warn_if_short(database: Database, most: int) -> None:
    engine = database.create_engine(1)
    try:
        with engine.connect() as conn:
            usage = connection_usage(conn)
    except Exception as error:  # the start will say what is wrong with the database
        log.debug("could not measure the server's connections: %s", error)
        return
    finally:
        engine.dispose()
    free = usage.limit - usage.in_use
    if most > free:
        log.warning(
            "the processes flowledger dev starts may open %d connections; the server has %d "
            "free (%d of %d in use): lower FLOWLEDGER_DB_POOL_SIZE or raise max_connections",
            most,
            free,
            usage.in_use,
            usage.limit,
        )
