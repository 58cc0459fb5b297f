"""The advisory locks that make one executor the driver of a run (ADR 0014).

They are session locks on a connection of the executor's own: they live as long as it does,
so the runs of an executor that dies (or loses that connection) are free at once for another.
Locks and unlocks asked for while a statement is out wait for it, and go together in the next
one: a burst of runs is locked in a statement or two, not a round trip each (a round trip per
run to take its lock and one to free it were a tenth of the executor's time with runs in
flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import psycopg

log = logging.getLogger(__name__)

_TRY_LOCKS = "SELECT k, pg_try_advisory_lock(k) FROM unnest(%s::bigint[]) AS k"
_UNLOCKS = "SELECT pg_advisory_unlock(k) FROM unnest(%s::bigint[]) AS k"


def lock_key(run_id: UUID) -> int:
    """The advisory lock key of a run: 64 bits of its id, as a signed bigint."""
    return int.from_bytes(run_id.bytes[:8], "big", signed=True)


class RunLocks:
    """The run locks of one executor, on one connection (made when first needed).

    ``on_lost`` is called when the connection fails (or a statement on it fails in any way):
    every lock it held is gone, so the executor stops driving; the locks asked for in that
    statement are refused. It is awaited by the task that sends the statements, so it must not
    wait for the drivers (they may be waiting for that task to give their lock back)."""

    def __init__(self, url: str, on_lost: Callable[[BaseException], Awaitable[None]]) -> None:
        self._url = url
        self._on_lost = on_lost
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._held: set[int] = set()
        """Keys locked on the current connection (an unlock of any other is pointless)."""
        self._locking: dict[int, asyncio.Future[bool]] = {}
        self._unlocking: dict[int, asyncio.Future[None]] = {}
        self._sending: dict[int, asyncio.Future[bool]] = {}
        """The locks of the statement out now."""
        self._sender: asyncio.Task[None] | None = None

    async def lock(self, run_id: UUID) -> bool:
        """Whether this executor now holds the run's lock (False: another one does, or the
        connection failed). A caller cancelled once its lock was taken has it given back."""
        key = lock_key(run_id)
        if key in self._held or self._asked(key):
            return False  # another driver of this executor has it (or is taking it)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._locking[key] = future
        self._send_soon()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.result():
                self._give_back(key)  # taken, but its caller went before it heard so
            raise

    async def unlock(self, run_id: UUID) -> None:
        """Give back a lock :meth:`lock` took (and returned)."""
        key = lock_key(run_id)
        if key not in self._held:
            return  # gone with a lost connection
        await asyncio.shield(self._give_back(key))

    async def close(self) -> None:
        """Drop the connection (and the locks with it); whoever waits is answered."""
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        self._refuse_waiting()
        await self._drop_connection()

    def _asked(self, key: int) -> bool:
        """Whether a lock of ``key`` is asked for by a caller still waiting for it."""
        return any(
            key in locking and not locking[key].cancelled()
            for locking in (self._locking, self._sending)
        )

    def _give_back(self, key: int) -> asyncio.Future[None]:
        future = self._unlocking.get(key)
        if future is None:
            future = self._unlocking[key] = asyncio.get_running_loop().create_future()
            self._send_soon()
        return future

    def _send_soon(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="executor-run-locks")

    async def _send(self) -> None:
        """Send what waits, unlocks first (a run freed and taken again in one batch is
        then held once), until nothing waits. Whatever happens, every caller of the batch is
        answered."""
        while self._locking or self._unlocking:
            unlocking, self._unlocking = self._unlocking, {}
            locking = {k: f for k, f in self._locking.items() if not f.cancelled()}
            self._locking = {}
            self._sending = locking
            try:
                taken = await self._statements(unlocking, locking)
            except BaseException as error:
                _settle(unlocking, locking, {})
                if not isinstance(error, Exception):
                    raise  # cancelled: closing
                await self._lost(error)
                continue
            finally:
                self._sending = {}
            _settle(unlocking, locking, taken)
            for key, future in locking.items():
                if future.cancelled() and taken.get(key):  # its driver went meanwhile
                    self._give_back(key)

    async def _statements(
        self, unlocking: dict[int, asyncio.Future[None]], locking: dict[int, asyncio.Future[bool]]
    ) -> dict[int, bool]:
        if not unlocking and not locking:
            return {}
        conn = await self._connection()
        if unlocking:
            await conn.execute(_UNLOCKS, (list(unlocking),))
            self._held.difference_update(unlocking)
        if not locking:
            return {}
        cursor = await conn.execute(_TRY_LOCKS, (list(locking),))
        taken = {key: bool(got) for key, got in await cursor.fetchall()}
        self._held.update(key for key, got in taken.items() if got)
        return taken

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._held.clear()
            self._conn = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=5
            )
        return self._conn

    async def _lost(self, error: Exception) -> None:
        await self._drop_connection()
        try:
            await self._on_lost(error)
        except Exception:
            log.exception("the executor could not stop its drivers after losing its locks")

    async def _drop_connection(self) -> None:
        self._held.clear()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None

    def _refuse_waiting(self) -> None:
        unlocking, self._unlocking = self._unlocking, {}
        locking, self._locking = self._locking, {}
        _settle(unlocking, locking, {})


def _settle(
    unlocking: dict[int, asyncio.Future[None]],
    locking: dict[int, asyncio.Future[bool]],
    taken: dict[int, bool],
) -> None:
    for done in unlocking.values():
        if not done.done():
            done.set_result(None)
    for key, answer in locking.items():
        if not answer.done():
            answer.set_result(taken.get(key, False))
