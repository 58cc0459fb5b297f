"""Which transport the agent client's HTTP connections go through
(``flowledger/a2a/pools.py``); the transport against real sockets is in
``tests/integration/test_agent_transport.py``, calls through real agents in
``tests/integration/test_agent_client.py``."""

from __future__ import annotations

import httpx
import pytest

from flowledger.a2a.pools import AiohttpTransport, agent_http_client

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


async def test_agents_are_called_through_aiohttp_unless_a_proxy_is_named(
    no_proxies: pytest.MonkeyPatch,
) -> None:
    async with agent_http_client(16) as client:
        assert isinstance(transport_for(client, "http://agent:9000/"), AiohttpTransport)
    no_proxies.setenv("HTTPS_PROXY", "http://proxy:3128")
    async with agent_http_client(16) as client:
        assert isinstance(transport_for(client, "http://agent:9000/"), AiohttpTransport)
        assert not isinstance(transport_for(client, "https://agent:9000/"), AiohttpTransport)
    no_proxies.setenv("ALL_PROXY", "http://proxy:3128")
    async with agent_http_client(16) as client:
        for url in ("http://agent:9000/", "https://agent:9000/"):
            assert not isinstance(transport_for(client, url), AiohttpTransport), url


async def test_a_given_proxy_is_kept(no_proxies: pytest.MonkeyPatch) -> None:
    async with agent_http_client(16, proxy="http://proxy:3128") as client:
        assert not isinstance(transport_for(client, "http://agent:9000/"), AiohttpTransport)
