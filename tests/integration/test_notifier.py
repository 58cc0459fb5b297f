"""The one NOTIFY waker: a LISTEN connection per process and channel that wakes threads and
tasks alike, misses nothing sent between a read and the wait after it, and falls back to the
waiters' polling when the database cannot be reached."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from flowledger.eventlog.follower import Follower
from flowledger.eventlog.notify import Notifier
from flowledger.projections.agents import AgentsProjection
from flowledger.projections.audit import AuditLogProjection
from flowledger.projections.projector import Projector
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime

pytestmark = pytest.mark.integration
CHANNEL = "test_channel"
LONG_S = 30.0
"""A timeout no test waits out: only a notification ends the wait in time."""


def notify(database: Database, channel: str = CHANNEL) -> None:
    with database.connect() as conn:
        conn.execute(f"NOTIFY {channel}")


def listening(notifier: Notifier) -> None:
    """Return once the notifier's connection listens (connecting counts as a notification)."""
    assert notifier.wait(0, 10.0), "the notifier did not connect"
    assert notifier.connected


def listen_connections(database: Database, notifier: Notifier) -> int:
    with database.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            (notifier.application_name,),
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_a_notify_wakes_a_waiting_thread_and_a_waiting_task(database: Database) -> None:
    notifier = Notifier(database, CHANNEL)
    with notifier.subscription():
        listening(notifier)
        token = notifier.token()
        woken: list[float] = []

        def thread_waits() -> None:
            started = time.monotonic()
            assert notifier.wait(token, LONG_S)
            woken.append(time.monotonic() - started)

        async def task_waits() -> float:
            started = time.monotonic()
            waiting = asyncio.create_task(notifier.wait_async(token, LONG_S))
            await asyncio.sleep(0.2)
            assert not waiting.done(), "a task waits for the notification"
            await asyncio.to_thread(notify, database)
            assert await waiting
            return time.monotonic() - started

        thread = threading.Thread(target=thread_waits, daemon=True)
        thread.start()
        task_s = asyncio.run(task_waits())
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert task_s < 5 and woken and woken[0] < 5


def test_a_notify_between_taking_the_token_and_waiting_is_not_missed(database: Database) -> None:
    notifier = Notifier(database, CHANNEL)
    with notifier.subscription():
        listening(notifier)
        token = notifier.token()  # before "reading"
        notify(database)  # a commit while the reader reads
        time.sleep(0.3)
        started = time.monotonic()
        assert notifier.wait(token, LONG_S)
        assert asyncio.run(notifier.wait_async(token, LONG_S))
        assert time.monotonic() - started < 1.0
        assert not notifier.wait(notifier.token(), 0.2), "nothing new since"


def test_every_follower_of_a_process_shares_one_listen_connection(runtime: Runtime) -> None:
    followers = [
        Follower(runtime.store, Projector(p, runtime.store, runtime.engine), idle_wait_s=LONG_S)
        for p in (AgentsProjection(), AuditLogProjection())
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=f.run, args=(stop,), daemon=True) for f in followers]
    for thread in threads:
        thread.start()
    notifier = runtime.store.notifier
    try:
        deadline = time.monotonic() + 10
        while notifier.subscribers < len(followers) or not notifier.connected:
            assert time.monotonic() < deadline, "the followers did not subscribe"
            time.sleep(0.02)
        assert listen_connections(runtime.database, notifier) == 1
    finally:
        stop.set()
        notifier.close()  # wakes the followers, which are waiting for LONG_S
        for thread in threads:
            thread.join(timeout=5)
    assert not any(thread.is_alive() for thread in threads)
    assert notifier.subscribers == 0


def test_the_connection_is_held_only_while_someone_is_subscribed(database: Database) -> None:
    notifier = Notifier(database, CHANNEL)
    with notifier.subscription():
        listening(notifier)
        assert listen_connections(database, notifier) == 1
    deadline = time.monotonic() + 10
    while listen_connections(database, notifier):
        assert time.monotonic() < deadline, "the connection outlived its last subscriber"
        time.sleep(0.1)
    assert not notifier.connected


def test_without_a_database_a_wait_lasts_its_timeout_the_polling_interval() -> None:
    notifier = Notifier(Database.from_url("postgresql://nobody@127.0.0.1:9/none"), CHANNEL)
    with notifier.subscription():
        started = time.monotonic()
        assert not notifier.wait(notifier.token(), 0.3)
        assert not asyncio.run(notifier.wait_async(notifier.token(), 0.3))
        assert 0.6 <= time.monotonic() - started < 3
        assert not notifier.connected
