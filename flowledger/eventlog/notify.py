"""Waking async code on a PostgreSQL NOTIFY channel, with polling as the safety net.

One :class:`Listener` holds one ``LISTEN`` connection for every task of a process that waits
on the channel, and only while at least one of them is subscribed: with no subscriber, no
connection is held. A lost notification or a dropped connection only delays a waiter until its
timeout, so callers always pass one (their polling interval).

Taking a :meth:`Listener.token` *before* reading and waiting on it afterwards closes the race
where a notification arrives between the read and the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg

from flowledger.domain.backoff import Backoff
from flowledger.runtime.database import Database

log = logging.getLogger(__name__)

RECONNECT = Backoff(initial=0.2, maximum=5.0)


class Listener:
    def __init__(self, database: Database, channel: str) -> None:
        self._database = database
        self._channel = channel
        self._event = asyncio.Event()
        self._subscribers = 0
        self._task: asyncio.Task[None] | None = None
        self.connected = False

    @property
    def subscribers(self) -> int:
        return self._subscribers

    def token(self) -> asyncio.Event:
        """What to wait on for the next notification after now."""
        return self._event

    async def wait(self, token: asyncio.Event, timeout_s: float) -> bool:
        """Wait for a notification after ``token`` was taken, or ``timeout_s``; True if notified."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await token.wait()
        return token.is_set()

    @contextlib.asynccontextmanager
    async def subscription(self) -> AsyncIterator[Listener]:
        """Keep the LISTEN connection open while the block runs."""
        self._subscribers += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name=f"listen-{self._channel}")
        try:
            yield self
        finally:
            self._subscribers -= 1
            if self._subscribers == 0 and self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
                self._task = None

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self._wake()

    def _wake(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._database.libpq_url, autocommit=True, connect_timeout=5
                )
                try:
                    await conn.execute(f"LISTEN {self._channel}")
                    self.connected = True
                    failures = 0
                    self._wake()  # anything committed while we were not listening
                    while True:
                        async for _ in conn.notifies(timeout=10.0):
                            self._wake()
                        await conn.execute("SELECT 1")  # notice a dead connection
                finally:
                    self.connected = False
                    await conn.close()
            except (psycopg.Error, OSError) as error:
                failures += 1
                log.debug("LISTEN %s failed (%s); retrying", self._channel, error)
                await asyncio.sleep(RECONNECT.delay(failures))
