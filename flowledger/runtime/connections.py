"""The connection budget: how many PostgreSQL connections a flowledger process may hold, how its
pools share them, how idle ones go back, and who holds what on the server.

Every process has a *role*: the API, one kind of worker, or an operator's command. A server
process (the API, a worker) holds at most ``FLOWLEDGER_DB_POOL_SIZE`` connections, all its pools
and its LISTEN connections together: :data:`LISTEN_CONNECTIONS` for NOTIFY, the rest shared
among the event store's pool (psycopg), the sync engine (projectors, metrics) and the async
engine (HTTP queries) by the role's :class:`PoolShares`. An operator's command holds at most
:data:`COMMAND_BUDGET`. So the connections of a deployment add up to a number known in
advance: N API processes and M workers hold at most ``(N + M) x FLOWLEDGER_DB_POOL_SIZE``.

Idle connections go back to the server: each pool keeps at most one connection open while
nothing happens, and closes the others after ``FLOWLEDGER_DB_IDLE_TIMEOUT`` seconds without use
(the event store's pool one at a time, psycopg-pool's own way; the engines' connections are
closed by the server's ``idle_session_timeout``, and an engine replaces a closed one when it is
next needed). Every connection says whose it is in ``pg_stat_activity.application_name``
(``flowledger worker projections pid=4242``), so what a process holds can be counted (and a
dead process's backends found).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from sqlalchemy import text

from flowledger.runtime.environment import integer, read_settings, seconds, setting

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from flowledger.runtime.settings import Settings

LISTEN_CONNECTIONS: Final = 2
"""LISTEN connections a server process may hold (the event log's channel and one more)."""
CLIENT_CHECK_INTERVAL_MS: Final = 2000
"""How often the server checks, while it runs a query, that our end of the connection is still
there: the query of a killed process stops within this long instead of running to its end."""
TCP_KEEPALIVES: Final = (
    "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"
)
"""Over TCP, the server drops a connection whose host vanished after about a minute (the
operating system's default is two hours)."""
APPLICATION_PREFIX: Final = "flowledger "
_OWNER = re.compile(r"^flowledger (?P<role>.+?) pid=(?P<pid>\d+)(?: |$)")


@dataclass(frozen=True)
class PoolShares:
    """How a role divides its connections among its pools: weights, 0 for a pool it hardly
    uses (it gets one connection)."""

    store: int = 1
    sync: int = 1
    async_: int = 1


EVEN: Final = PoolShares()


@dataclass(frozen=True)
class PoolBudget:
    """The most connections each pool of a process may open."""

    store: int
    """The event store's pool (commands, reading the log, tracking positions)."""
    sync: int
    """The sync engine (projectors' batches, metrics at scrape time, operators' commands)."""
    async_: int
    """The async engine (HTTP queries, the executor's and the webhook sender's lookups)."""
    listen: int
    """LISTEN connections (one per NOTIFY channel the process waits on; a relay, which waits
    on one, holds its lead lock's session in the other)."""

    @property
    def total(self) -> int:
        return self.store + self.sync + self.async_ + self.listen


COMMAND_BUDGET: Final = PoolBudget(store=1, sync=2, async_=1, listen=1)
"""An operator's command (rebuild, audit, migrate, status, tail) holds at most this many."""
MINIMUM_POOL_SIZE: Final = LISTEN_CONNECTIONS + 3
"""The smallest per-process budget: the LISTEN connections and one connection per pool."""


@dataclass(frozen=True)
class ProcessRole:
    """What a process is, for its connections' name and for its budget."""

    name: str
    """As ``pg_stat_activity`` shows it: ``api``, ``worker projections``, ``audit verify``."""
    shares: PoolShares | None = EVEN
    """How its budget is shared; None for an operator's command (:data:`COMMAND_BUDGET`)."""

    def budget(self, pool_size: int) -> PoolBudget:
        """Its pools' sizes when the process may hold ``pool_size`` connections in all."""
        if self.shares is None:
            return COMMAND_BUDGET
        store, sync, async_ = split(pool_size - LISTEN_CONNECTIONS, self.shares)
        return PoolBudget(store=store, sync=sync, async_=async_, listen=LISTEN_CONNECTIONS)


API: Final = ProcessRole("api", PoolShares(store=1, sync=0, async_=2))
"""``flowledger serve`` and the API inside ``flowledger dev``."""
IN_PROCESS: Final = ProcessRole("process")
"""A process that was not given a role (tests and benchmarks run everything in one)."""


def command(name: str) -> ProcessRole:
    """An operator's command: ``command("projections rebuild")``."""
    return ProcessRole(name, None)


def split(connections: int, shares: PoolShares) -> tuple[int, int, int]:
    """``connections`` shared by three pools by weight, each getting at least one (the
    remainders go to the largest fractions, the first pool winning ties)."""
    if connections < 3:
        raise ValueError(f"three pools need at least 3 connections, not {connections}")
    weights = (shares.store, shares.sync, shares.async_)
    if sum(weights) <= 0:
        weights = (1, 1, 1)
    spare = connections - 3
    exact = [spare * weight / sum(weights) for weight in weights]
    sizes = [1 + int(share) for share in exact]
    by_fraction = sorted(range(3), key=lambda i: (-(exact[i] - int(exact[i])), i))
    for i in by_fraction[: connections - sum(sizes)]:
        sizes[i] += 1
    return sizes[0], sizes[1], sizes[2]


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ConnectionSettings:
    pool_size: int = 10
    """``FLOWLEDGER_DB_POOL_SIZE`` (a core setting): the most connections a server process
    holds, all pools and LISTEN connections together."""
    idle_timeout_s: float = setting("FLOWLEDGER_DB_IDLE_TIMEOUT", 30.0, seconds())
    """A pooled connection unused this long is closed (0: never; for poolers such as PgBouncer
    in transaction mode, which do not pass on the server settings this needs)."""
    reserved: int = setting("FLOWLEDGER_DB_RESERVED_CONNECTIONS", 10, integer(minimum=0))
    """Connections ``flowledger dev`` keeps free on its embedded server for operators'
    commands (each holds at most :data:`COMMAND_BUDGET`)."""
    retry_s: float = setting("FLOWLEDGER_DB_RETRY", 30.0, seconds())
    """How long an operator's command tries again when the database refuses a connection or
    does not answer, before it gives up (exit code 75)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionSettings:
        return read_settings(cls, settings.extra, pool_size=settings.db_pool_size)

    def budget(self, role: ProcessRole) -> PoolBudget:
        return role.budget(self.pool_size)

    def server_connections(self, processes: int) -> int:
        """``max_connections`` for a server that ``processes`` server processes use, with
        :attr:`reserved` connections kept for operators (superuser slots not counted)."""
        return processes * self.pool_size + self.reserved


# ---------------------------------------------------------------------------- this process

_role: ProcessRole = IN_PROCESS


def set_process_role(role: ProcessRole) -> None:
    """Say what this process is (each ``flowledger`` command does, before it connects)."""
    global _role  # noqa: PLW0603  (one role per process, like its logging)
    _role = role


def process_role() -> ProcessRole:
    return _role


def application_name(use: str = "") -> str:
    """What ``pg_stat_activity`` shows for a connection of this process."""
    name = f"{APPLICATION_PREFIX}{_role.name} pid={os.getpid()}"
    return (f"{name} {use}" if use else name)[:63]


@dataclass(frozen=True)
class Owner:
    role: str
    pid: int


def owner_of(application: str | None) -> Owner | None:
    """Which flowledger process a connection belongs to, from its application name."""
    found = _OWNER.match(application or "")
    return Owner(found["role"], int(found["pid"])) if found else None


def session_options(*, idle_timeout_s: float = 0.0, tcp: bool = False) -> str:
    """Server settings for our sessions (libpq ``options``)."""
    options = [f"-c client_connection_check_interval={CLIENT_CHECK_INTERVAL_MS}"]
    if idle_timeout_s > 0:
        options.append(f"-c idle_session_timeout={max(int(idle_timeout_s * 1000), 1)}")
    if tcp:
        options.append(TCP_KEEPALIVES)
    return " ".join(options)


# ---------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class ConnectionUsage:
    """Client connections on the server now, against its limit."""

    in_use: int
    """Every client connection (ours, operators', anyone's)."""
    limit: int
    """How many our database user may open: ``max_connections``, less the reserved slots
    when the user is not a superuser."""
    max_connections: int
    by_role: Mapping[str, int] = field(default_factory=dict)
    """Ours by role (``api``, ``worker projections``, ...); others under ``other``."""


_USAGE = text(
    "SELECT application_name, count(*) AS n FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' GROUP BY application_name"
)
_LIMIT = text(
    "SELECT current_setting('max_connections')::int AS max_connections, "
    "current_setting('superuser_reserved_connections')::int "
    "+ coalesce(current_setting('reserved_connections', true), '0')::int AS reserved, "
    "current_setting('is_superuser') = 'on' AS superuser"
)
OTHER: Final = "other"


def connection_usage(conn: Connection) -> ConnectionUsage:
    limits = conn.execute(_LIMIT).one()
    by_role: dict[str, int] = {}
    for application, count in conn.execute(_USAGE):
        owner = owner_of(application)
        role = owner.role if owner else OTHER
        by_role[role] = by_role.get(role, 0) + int(count)
    limit = limits.max_connections - (0 if limits.superuser else limits.reserved)
    return ConnectionUsage(
        in_use=sum(by_role.values()),
        limit=limit,
        max_connections=limits.max_connections,
        by_role=dict(sorted(by_role.items())),
    )
