"""The HTTP connections to agents (A2A agents and n8n webhooks): many small connection pools
instead of one large one.

httpx's pool (httpcore's) checks every connection it holds, twice per request: whether it has
expired (a system call on its socket) and whether it is idle. And it closes a connection that
goes idle whenever it holds more connections *in all* than ``max_keepalive_connections``. So
one pool serving many calls at once either closes almost every connection after its call
(keep-alive below the calls in flight: with 64 calls in flight to the sample echo agent, 1,465
new connections for 1,700 calls) or spends its time checking connections (keep-alive as large
as the pool: 35 ms of client CPU per 5-call chain instead of 10).

:class:`SpreadTransport` keeps, per agent (scheme, host and port), a list of small pools of
:data:`POOL_SIZE` connections that keep every idle connection. A request goes to the first
pool with a free connection (so a quiet agent is served by one pool, one connection after
another), a new pool is opened when all are busy, and past ``max_connections`` per agent
the least busy pool queues it. A pool counts a request busy until its response is closed:
a streamed answer holds its connection until then. A pool other than the first that has been
idle for :data:`IDLE_S` is closed with its connections (httpcore closes a pool's expired
connections only when a request passes through it).

The client keeps no cookies (:class:`~flowledger.a2a.cookies.NoCookies`).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from flowledger.a2a.cookies import NoCookies

POOL_SIZE: Final = 8
"""Connections of one small pool: each request checks this many, not every connection."""
IDLE_S: Final = 5.0
"""How long a pool other than an agent's first may go unused before it is closed (httpx's
keep-alive expiry: its connections have expired by then)."""


@dataclass
class _Pool:
    transport: httpx.AsyncHTTPTransport
    size: int
    busy: int = 0
    used_at: float = field(default_factory=time.monotonic)


@dataclass
class _Agent:
    pools: list[_Pool] = field(default_factory=list)


class _Released(httpx.AsyncByteStream):
    """A response's body that frees its pool's place once it is closed."""

    def __init__(self, body: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._body = body
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._body:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._body.aclose()
        finally:
            self._free()

    def _free(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class SpreadTransport(httpx.AsyncBaseTransport):
    """An httpx transport over small pools (see the module's doc); at most ``max_connections``
    connections to each agent."""

    def __init__(self, *, max_connections: int, pool_size: int = POOL_SIZE) -> None:
        self._max_connections = max(1, max_connections)
        self._pool_size = max(1, pool_size)
        self._agents: dict[tuple[bytes, bytes, int | None], _Agent] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        agent = self._agents.setdefault((url.raw_scheme, url.raw_host, url.port), _Agent())
        await self._close_idle(agent)
        pool = self._choose(agent)
        pool.busy += 1

        def release() -> None:
            pool.busy -= 1
            pool.used_at = time.monotonic()

        try:
            response = await pool.transport.handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Released(response.stream, release)
        return response

    def _choose(self, agent: _Agent) -> _Pool:
        for pool in agent.pools:
            if pool.busy < pool.size:
                return pool
        room = self._max_connections - sum(pool.size for pool in agent.pools)
        if room > 0:
            size = min(self._pool_size, room)
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            agent.pools.append(_Pool(httpx.AsyncHTTPTransport(limits=limits), size))
            return agent.pools[-1]
        return min(agent.pools, key=lambda pool: pool.busy / pool.size)

    @staticmethod
    async def _close_idle(agent: _Agent) -> None:
        now = time.monotonic()
        idle = [p for p in agent.pools[1:] if p.busy == 0 and now - p.used_at >= IDLE_S]
        if idle:
            agent.pools = [p for p in agent.pools if p not in idle]
            for pool in idle:
                await pool.transport.aclose()

    async def aclose(self) -> None:
        agents, self._agents = list(self._agents.values()), {}
        for agent in agents:
            for pool in agent.pools:
                await pool.transport.aclose()


def agent_http_client(max_connections: int, **options: Any) -> httpx.AsyncClient:
    """The httpx client agents are called with (:class:`~flowledger.a2a.AgentClient`, the
    n8n caller; ``options`` go to ``httpx.AsyncClient``): small pools for every URL, and no
    cookies kept (whatever ``options`` say). A proxy
    keeps httpx's own transport, one pool of ``max_connections``, as before: for every URL
    when ``ALL_PROXY`` is set or a ``proxy`` is given, and otherwise for the URLs that
    ``HTTP_PROXY`` or ``HTTPS_PROXY`` send through one (and the hosts in ``NO_PROXY``)."""
    proxied = "proxy" in options or "all" in urllib.request.getproxies()
    spread = {} if proxied else {"all://": SpreadTransport(max_connections=max_connections)}
    return httpx.AsyncClient(
        **{
            "timeout": httpx.Timeout(30.0),
            "headers": {"User-Agent": "flowledger-agent-client"},
            **options,
            "cookies": NoCookies(),
            "limits": httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
            "mounts": spread,
        }
    )
