"""How the agent client's HTTP connections are pooled (``flowledger/a2a/pools.py``); calls
through real agents are in ``tests/integration/test_agent_client.py``."""

from __future__ import annotations

import httpx
import pytest

from flowledger.a2a import pools
from flowledger.a2a.pools import SpreadTransport, agent_http_client

pytestmark = pytest.mark.unit

PROXY_VARIABLES = ("ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def transport_for(client: httpx.AsyncClient, url: str) -> httpx.AsyncBaseTransport:
    return client._transport_for_url(httpx.URL(url))


async def test_agents_are_called_through_small_pools_unless_a_proxy_is_named(
    no_proxies: pytest.MonkeyPatch,
) -> None:
    async with agent_http_client(16) as client:
        assert isinstance(transport_for(client, "http://agent:9000/"), SpreadTransport)
    no_proxies.setenv("HTTPS_PROXY", "http://proxy:3128")
    async with agent_http_client(16) as client:
        assert isinstance(transport_for(client, "http://agent:9000/"), SpreadTransport)
        assert not isinstance(transport_for(client, "https://agent:9000/"), SpreadTransport)
    no_proxies.setenv("ALL_PROXY", "http://proxy:3128")
    async with agent_http_client(16) as client:
        for url in ("http://agent:9000/", "https://agent:9000/"):
            assert not isinstance(transport_for(client, url), SpreadTransport), url


async def test_a_given_proxy_is_kept(no_proxies: pytest.MonkeyPatch) -> None:
    async with agent_http_client(16, proxy="http://proxy:3128") as client:
        assert not isinstance(transport_for(client, "http://agent:9000/"), SpreadTransport)


async def test_pools_add_up_to_the_connection_limit_and_idle_ones_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport = SpreadTransport(max_connections=10, pool_size=4)
    agent = pools._Agent()
    chosen = []
    for _ in range(14):  # more requests at once than connections
        pool = transport._choose(agent)
        pool.busy += 1
        chosen.append(pool)
    assert [pool.size for pool in agent.pools] == [4, 4, 2]
    assert sum(pool.size for pool in agent.pools) == 10
    for pool in chosen:
        pool.busy -= 1
    monkeypatch.setattr(pools, "IDLE_S", 0.0)
    await transport._close_idle(agent)
    assert len(agent.pools) == 1  # the first pool stays, with its kept connections
    await transport.aclose()
