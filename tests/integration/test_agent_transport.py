"""The agent client's HTTP transport (``flowledger/a2a/pools.py``: aiohttp under httpx) against
real sockets served in the test's event loop: what an agent's server does wrong reaches callers
as the httpx error httpx's own transport raised for it (``call_error`` reads those), answers
stream as they arrive, bodies are decoded once, and a connection is kept only when its answer
was read to its end. Calls through real A2A agents are in ``test_agent_client.py``."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from flowledger.a2a import pools
from flowledger.a2a.errors import call_error
from flowledger.a2a.pools import agent_http_client
from tests.support.ports import free_port
from tests.support.raw_server import answering, request_head

pytestmark = pytest.mark.integration


def _answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def test_a_refused_connection_is_a_connect_error() -> None:
    port = free_port()  # nobody listens on it
    async with agent_http_client(4) as http:
        with pytest.raises(httpx.ConnectError) as caught:
            await http.get(f"http://127.0.0.1:{port}/")
    error = call_error(caught.value, "agent", "call the agent")
    assert (error.kind, error.retryable) == ("network", True)
    assert "cannot connect" in str(error)


async def test_an_agent_that_never_answers_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await request_head(reader)
        await reader.read()  # until the client gives up and closes

    async with answering(silent) as served:
        async with agent_http_client(4) as http:
            with pytest.raises(httpx.ReadTimeout) as caught:
                await http.get(served.url, timeout=httpx.Timeout(5.0, read=0.3))
        assert call_error(caught.value, served.url, "call the agent").kind == "timeout"


@pytest.mark.parametrize("cut", ["before its answer", "in its body"])
async def test_a_connection_dropped_mid_call_is_a_network_error(cut: str) -> None:
    """A dropped stream is read back by polling (``AgentClient._call``) only when it is a
    network error: a dropped connection must not look like a timeout."""

    async def dropping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await request_head(reader)
        if cut == "in its body":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
            await writer.drain()
        writer.transport.abort()

    async with answering(dropping) as served:
        async with agent_http_client(4) as http:
            with pytest.raises(httpx.TransportError) as caught:
                await http.get(served.url)
        assert not isinstance(caught.value, httpx.TimeoutException), caught.value
        assert call_error(caught.value, served.url, "call the agent").kind == "network"


async def test_a_streamed_answer_arrives_as_it_is_sent() -> None:
    """An agent's first stream event (its task, so that a cancel can reach it) must not wait
    for the rest of the answer: the server sends the rest only once the first was read."""
    first_read = asyncio.Event()

    async def streaming(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        for event in (b"data: first\n\n", b"data: last\n\n"):
            writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            await writer.drain()
            await asyncio.wait_for(first_read.wait(), 10)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    lines = []
    async with (
        answering(streaming) as served,
        agent_http_client(4) as http,
        http.stream("GET", served.url) as response,
    ):
        async for line in response.aiter_lines():
            if line:
                lines.append(line)
                first_read.set()
    assert lines == ["data: first", "data: last"]


async def test_a_compressed_answer_is_decoded_once() -> None:
    body = b'{"text": "hello"}'

    async def compressing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await request_head(reader)
        writer.write(_answer(gzip.compress(body), "Content-Encoding: gzip"))
        await writer.drain()

    async with answering(compressing) as served, agent_http_client(4) as http:
        response = await http.get(served.url)
    assert response.content == body


async def _answer_in_two(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Each answer's body comes in two parts, the second a moment after the first."""
    while True:
        await request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"world")
        await writer.drain()


async def test_a_connection_is_kept_only_after_its_answer_was_read_to_the_end() -> None:
    async with answering(_answer_in_two) as served, agent_http_client(4) as http:
        for _ in range(3):
            assert (await http.get(served.url)).content == b"helloworld"
        assert len(served.accepted) == 1, "answers read to their end: one connection"
        for _ in range(2):
            async with http.stream("GET", served.url):
                pass  # closed with its body unread: its connection is closed too
        assert len(served.accepted) == 2  # the first took the kept one, the second a new one
        assert (await http.get(served.url)).content == b"helloworld"
        assert len(served.accepted) == 3


def _recording(
    received: list[bytes],
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A handler keeping each request's head and body, answering 201 with a reason."""

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await request_head(reader)
            lengths = [
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            received.append(head + await reader.readexactly(lengths[0] if lengths else 0))
            writer.write(_answer(b"{}", status="201 Created"))
            await writer.drain()

    return record


@pytest.mark.parametrize(
    ("method", "path", "options"),
    [
        ("POST", "/", {"json": {"n": 1, "text": "é"}, "headers": {"X-Step": "a"}}),
        ("POST", "/webhook/a%2Cb/~x%7E?sig=a%2Cb%3D", {"content": b""}),
        ("GET", "/.well-known/agent-card.json", {"headers": {"Authorization": "Bearer t"}}),
    ],
    ids=["json", "quoted-url-empty-body", "get"],
)
async def test_the_request_goes_out_as_httpx_built_it(
    method: str, path: str, options: dict[str, Any]
) -> None:
    """Byte for byte what httpx's own transport sends for the same request: aiohttp adds no
    header, re-encodes no URL, keeps the headers' names as written."""
    received: list[bytes] = []
    async with answering(_recording(received)) as served:
        url = served.url.rstrip("/") + path
        async with agent_http_client(4) as http:
            response = await http.request(method, url, **options)
            async with httpx.AsyncClient(headers=http.headers) as plain:
                await plain.request(method, url, **options)
    ours, httpx_own = received
    assert (response.status_code, response.reason_phrase) == (201, "Created")
    assert ours == httpx_own


async def test_an_answer_httpx_reads_is_read() -> None:
    """A long header line (aiohttp refuses more than 8 KiB by default) and a reason phrase
    that is not UTF-8."""
    token = "x" * 20_000

    async def odd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await request_head(reader)
            reason = b"Fine \xff"
            head = b"HTTP/1.1 200 " + reason + f"\r\nX-Token: {token}\r\n".encode()
            writer.write(head + b"Content-Length: 2\r\n\r\nok")
            await writer.drain()

    async with answering(odd) as served, agent_http_client(4) as http:
        for _ in range(2):  # and its connection is kept for the next call
            response = await http.get(served.url)
            assert (response.status_code, response.text) == (200, "ok")
            assert response.headers["x-token"] == token
        assert len(served.accepted) == 1


async def test_a_connection_idle_for_its_keep_alive_is_not_used_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An agent's server closes a connection idle for its own keep-alive; aiohttp does not
    look before sending over a kept connection, so ours lets it go first."""
    assert pools.KEEPALIVE_S < 5, "shorter than uvicorn's keep-alive (the sample agents')"
    monkeypatch.setattr(pools, "KEEPALIVE_S", 0.2)
    async with answering(_answer_in_two) as served, agent_http_client(4) as http:
        await http.get(served.url)
        await http.get(served.url)
        assert len(served.accepted) == 1
        await asyncio.sleep(0.5)
        await http.get(served.url)
        assert len(served.accepted) == 2
