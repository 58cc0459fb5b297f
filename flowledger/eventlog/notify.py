"""Waking whoever waits for a PostgreSQL NOTIFY channel, with polling as the safety net.

One :class:`Notifier` holds one ``LISTEN`` connection, on a thread of its own, for every waiter
of a process on that channel: the threaded followers (:mod:`flowledger.eventlog.follower`) and
async code alike (the live event stream, the webhook sender). It holds the connection only
while someone is subscribed. A lost notification or a dropped connection only delays a waiter
until its timeout, so every waiter passes one (its polling interval); the connection comes
back by itself with capped backoff.

The race between reading and waiting is closed by tokens: take :meth:`Notifier.token` *before*
reading, wait on it afterwards, and a notification that arrived in between ends the wait at
once. Each (re)connection counts as a notification too, since commits made while nobody was
listening sent theirs to no one: whoever read before the ``LISTEN`` took effect reads again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Final

import psycopg

from flowledger.domain.backoff import Backoff
from flowledger.runtime import connections
from flowledger.runtime.database import Database

log = logging.getLogger(__name__)

RECONNECT: Final = Backoff(initial=0.2, maximum=5.0)
TICK_S: Final = 1.0
"""How often the listening thread looks up from the connection (a closed or unused notifier
lets its connection go within this long)."""
CHECK_S: Final = 10.0
"""How often an idle connection is checked, so a dead one is noticed."""

Token = int
"""Which notifications a waiter has seen: the count when it took the token."""


class Notifier:
    def __init__(self, database: Database, channel: str) -> None:
        self._database = database
        self._channel = channel
        self._changed = threading.Condition()
        self._count: Token = 0
        self._subscribers = 0
        self._listening: threading.Event | None = None
        """The stop signal of the thread listening now; None when none is."""
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._connected: threading.Event | None = None
        """The stop signal of the thread whose connection listens now."""

    @property
    def application_name(self) -> str:
        """What ``pg_stat_activity`` shows for the LISTEN connection."""
        return connections.application_name(f"listen {self._channel}")

    @property
    def subscribers(self) -> int:
        return self._subscribers

    @property
    def connected(self) -> bool:
        """Whether notifications are flowing now (waiters may poll more often when not)."""
        return self._connected is not None

    @contextlib.contextmanager
    def subscription(self) -> Iterator[Notifier]:
        """Keep the LISTEN connection open while the block runs (threads and tasks alike: it
        never blocks)."""
        with self._changed:
            self._subscribers += 1
            if self._listening is None:
                self._listening = threading.Event()
                threading.Thread(
                    target=self._listen,
                    args=(self._listening,),
                    name=f"listen-{self._channel}",
                    daemon=True,
                ).start()
        try:
            yield self
        finally:
            with self._changed:
                self._subscribers -= 1

    def token(self) -> Token:
        """What to wait on for the next notification after now; take it before reading."""
        return self._count

    def wait(self, token: Token, timeout_s: float) -> bool:
        """Block until a notification after ``token``, or ``timeout_s``; True if notified."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count != token, timeout_s)

    async def wait_async(self, token: Token, timeout_s: float) -> bool:
        """:meth:`wait` for async code: the event loop runs on meanwhile."""
        loop = asyncio.get_running_loop()
        waiter = (loop, loop.create_future())
        with self._changed:
            if self._count != token:
                return True
            self._async_waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await waiter[1]
        finally:
            with self._changed:
                self._async_waiters.discard(waiter)
        return self._count != token

    def close(self) -> None:
        """Let the connection go and wake every waiter (shutdown). A later subscription
        listens again."""
        with self._changed:
            if self._listening is not None:
                self._listening.set()
                self._listening = None
        self._notified()

    def _notified(self) -> None:
        with self._changed:
            self._count += 1
            self._changed.notify_all()
            waiters, self._async_waiters = self._async_waiters, set()
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits
                loop.call_soon_threadsafe(_resolve, future)

    def _wanted(self, stop: threading.Event) -> bool:
        """Whether the thread that ``stop`` belongs to should go on listening."""
        with self._changed:
            if stop.is_set():
                return False
            if self._subscribers == 0:
                if self._listening is stop:
                    self._listening = None
                return False
            return True

    def _listen(self, stop: threading.Event) -> None:
        failures = 0
        while self._wanted(stop):
            try:
                with psycopg.connect(
                    self._database.conninfo(application_name=self.application_name),
                    autocommit=True,
                    connect_timeout=5,
                ) as conn:
                    conn.execute(f"LISTEN {self._channel}")
                    failures = 0
                    self._connected = stop
                    self._notified()  # commits made while nobody listened notified no one
                    checked = time.monotonic()
                    while self._wanted(stop):
                        # Run the generator to its end: it holds the connection's lock.
                        for _ in conn.notifies(timeout=TICK_S):
                            self._notified()
                        if time.monotonic() - checked >= CHECK_S:
                            conn.execute("SELECT 1")  # notice a dead connection
                            checked = time.monotonic()
            except (psycopg.Error, OSError) as error:
                failures += 1
                log.debug("LISTEN %s failed (%s); retrying", self._channel, error)
                stop.wait(RECONNECT.delay(failures))
            finally:
                with self._changed:
                    if self._connected is stop:
                        self._connected = None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
