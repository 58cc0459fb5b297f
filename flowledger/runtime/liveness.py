"""Checking a pooled connection before use only when it may have died meanwhile.

A pool that pings every connection it hands out ("pre-ping") pays a round trip on every
transaction: every group commit of the event store, every projection batch, every query. Under
load that is a tenth or more of a short transaction's time, spent on connections that were in
use a moment ago. A connection dies while idle: the server closed it (``idle_session_timeout``,
the connection budget) or went away (a restart). So a connection is pinged only when it has
been idle for longer than :func:`ping_after`: one used within that time is handed out as it is.
Should it have died anyway (a server restart within that moment), the statement fails with a
connection error, which every caller already retries (the writer, the followers, a request's
503), and the pool replaces the connection.

Both kinds of pool get it: SQLAlchemy's (:func:`ping_when_idle`, its pool events, and
``DisconnectionError`` to have the pool take a fresh connection) and psycopg-pool's of the event
store (:class:`IdleCheck`, its ``check`` callback).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any, Final

import psycopg
from sqlalchemy import Engine, event, exc
from sqlalchemy.ext.asyncio import AsyncEngine

PING_AFTER_IDLE_S: Final = 1.0
"""The longest a connection idles and is still handed out without a ping."""


def ping_after(idle_timeout_s: float) -> float:
    """How long a connection may idle unpinged: :data:`PING_AFTER_IDLE_S`, or half the
    server's idle-session timeout when that is shorter (the server closes it at the timeout)."""
    if idle_timeout_s > 0:
        return min(PING_AFTER_IDLE_S, idle_timeout_s / 2)
    return PING_AFTER_IDLE_S


def ping_when_idle(engine: Engine | AsyncEngine, idle_timeout_s: float = 0.0) -> None:
    """Ping ``engine``'s connections at checkout when they idled longer than
    :func:`ping_after` (instead of SQLAlchemy's ``pool_pre_ping``, which pings every time)."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    threshold = ping_after(idle_timeout_s)
    dialect = sync.dialect

    @event.listens_for(sync, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(sync, "checkout")
    def _taken(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned <= threshold:
            return  # new, or used a moment ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as error:  # the pool discards it and connects again
            raise exc.DisconnectionError(f"a pooled connection died while idle: {error}") from error
        if not alive:
            raise exc.DisconnectionError("a pooled connection died while idle")


class IdleCheck:
    """psycopg-pool's ``check`` callback that checks only connections idle (not handed out)
    for longer than ``threshold_s``; a failed check makes the pool take another connection."""

    def __init__(
        self,
        check: Callable[[psycopg.Connection[Any]], None],
        threshold_s: float = PING_AFTER_IDLE_S,
    ) -> None:
        self.check = check
        """The pool's own check (``ConnectionPool.check_connection``)."""
        self.threshold_s = threshold_s
        self._handed_out: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, conn: psycopg.Connection[Any]) -> None:
        now = time.monotonic()
        last = self._handed_out.get(conn)
        self._handed_out[conn] = now
        if last is None or now - last > self.threshold_s:
            self.check(conn)
