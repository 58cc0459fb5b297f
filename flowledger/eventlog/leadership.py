"""One leader among the copies of a follower: the holder of a PostgreSQL session advisory lock.

A follower with effects outside the database (the Kafka relay) must not run twice at once,
yet a second copy should be ready to go on when the first dies. Each copy opens a connection
of its own and tries the lock; the one that gets it leads, the others try again every
``poll_s``. The lock belongs to the leader's session: when its process dies (even ``kill -9``)
its connection closes and PostgreSQL releases the lock at once, so a standby leads within
``poll_s``. A leader that loses its session (a network cut; the server restarted) notices
within ``check_s`` (:meth:`Leadership.held`) and must stop; it stands by again afterwards.

The connection must be a session of its own, not a transaction-pooled one (PgBouncer in
transaction mode would share the lock between clients).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from typing import Final

import psycopg

from flowledger.runtime.connections import application_name
from flowledger.runtime.database import Database

log = logging.getLogger(__name__)

LOCK_SPACE: Final = 0x466C6F77
"""The advisory lock space of flowledger's locks (also the rebuild's)."""
KEEPALIVES: Final = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}
"""A dead peer is noticed in about 11 s rather than the system's two hours."""


class Leadership:
    def __init__(
        self, database: Database, name: str, *, poll_s: float = 1.0, check_s: float = 1.0
    ) -> None:
        self.database = database
        self.name = name
        self.poll_s = poll_s
        self.check_s = check_s
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        """Who this copy is, as the status shows the leader."""
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._leading = False
        self._checked = 0.0

    @property
    def leading(self) -> bool:
        return self._leading

    def wait(self, stop: threading.Event) -> bool:
        """Block until this copy leads (True) or ``stop`` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if self._try():
                    return True
            except psycopg.Error as error:
                log.warning("%s: cannot ask for the lead (%s); trying again", self.name, error)
                self._close()
            if not announced:
                log.info("%s: another copy leads; standing by", self.name)
                announced = True
            stop.wait(self.poll_s)
        return False

    def held(self) -> bool:
        """Whether this copy still leads: its session is alive (checked at most every
        ``check_s``; in between the last answer stands)."""
        if not self._leading or self._conn is None:
            return False
        now = time.monotonic()
        if now - self._checked < self.check_s:
            return True
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error as error:
            log.error("%s: lost the lead (its database session ended: %s)", self.name, error)
            self._close()
            return False
        self._checked = now
        return True

    def release(self) -> None:
        """Give up the lead (closing the session releases the lock)."""
        self._close()

    def _try(self) -> bool:
        if self._conn is None or self._conn.closed:
            # Named like every connection of this process (its role and pid), so the
            # connection budget counts it: it takes the place of the second LISTEN
            # connection, which a relay does not use (ADR 0013).
            self._conn = psycopg.connect(
                self.database.conninfo(application_name=application_name(f"lead {self.name}")),
                autocommit=True,
                connect_timeout=5,
                **KEEPALIVES,  # type: ignore[arg-type]
            )
        row = self._conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_SPACE, f"lead:{self.name}")
        ).fetchone()
        self._leading = bool(row and row[0])
        if self._leading:
            self._checked = time.monotonic()
            log.info("%s: leading (%s)", self.name, self.me)
        return self._leading

    def _close(self) -> None:
        self._leading = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):  # closing a broken connection
                conn.close()
