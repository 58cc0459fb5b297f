"""Pooled connections are pinged before use only when they idled for a while: one that died
while idle (closed by the server, or a restart) is replaced before anyone uses it."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from flowledger.eventlog.store import EventStore
from flowledger.runtime.database import Database
from flowledger.runtime.liveness import ping_after

pytestmark = pytest.mark.integration


def _terminate(database: Database, pid: int) -> None:
    with database.connect() as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_an_engine_replaces_a_connection_that_died_while_idle(database: Database) -> None:
    engine = database.create_engine(1, idle_timeout_s=0.4)  # pinged after 0.2 s idle
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        _terminate(database, first)
        time.sleep(ping_after(0.4) + 0.1)
        with engine.connect() as conn:
            second = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert second != first
    finally:
        engine.dispose()


def test_an_engine_hands_out_a_connection_used_a_moment_ago_without_a_ping(
    database: Database,
) -> None:
    """Had it been pinged, the pool would have replaced the terminated connection; handed out
    as it is, its first statement meets the closed connection."""
    engine = database.create_engine(1)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        _terminate(database, pid)
        with pytest.raises(OperationalError, match=r"terminat|closed|connection"):
            engine.connect().execute(text("SELECT 1"))
        with engine.connect() as conn:  # the pool replaced it after the failure
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_the_event_store_replaces_a_connection_that_died_while_idle(database: Database) -> None:
    store = EventStore(database, pool_size=1)
    try:
        with store.application_recorder.datastore.get_connection() as conn:
            row = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
        assert row is not None
        _terminate(database, int(row["pid"]))
        time.sleep(ping_after(0.0) + 0.2)
        with store.application_recorder.datastore.get_connection() as conn:
            again = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
        assert again is not None and again["pid"] != row["pid"]
    finally:
        store.close()
