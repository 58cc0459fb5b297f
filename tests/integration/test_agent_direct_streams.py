"""Streamed calls straight over aiohttp (``flowledger/a2a/direct.py``) against a2a-sdk's own
path through httpx: for every answer an agent's server may give, byte by byte from a raw
server in the test's event loop, both send the same request and give the same events, or
fail with the same error (as :func:`~flowledger.a2a.errors.call_error` reports it)."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from typing import Any

import pytest
from a2a.client import A2AClientError, ClientCallContext
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from google.protobuf import json_format

from flowledger.a2a.direct import DirectStreams
from flowledger.a2a.draining import DrainingTransport
from flowledger.a2a.errors import call_error
from flowledger.a2a.pools import agent_http_client
from tests.support.raw_server import answering, request_head

pytestmark = pytest.mark.integration

REQUEST = SendMessageRequest(
    message=Message(role=Role.ROLE_USER, message_id="m-1", parts=[Part(text="héllo")])
)
HEADERS = {"Authorization": "Bearer secret", "X-Tenant": "t1", "accept": "text/event-stream, */*"}
"""The call's own headers (service parameters): one overrides a default, in another case."""


def _event(response: StreamResponse, *, rpc_id: str = "1") -> str:
    result = json_format.MessageToDict(response)
    return json.dumps({"jsonrpc": "2.0", "id": rpc_id, "result": result})


WORKING = _event(
    StreamResponse(
        task=Task(id="t-1", context_id="c-1", status=TaskStatus(state=TaskState.TASK_STATE_WORKING))
    )
)
DONE = _event(
    StreamResponse(
        status_update=TaskStatusUpdateEvent(
            task_id="t-1",
            context_id="c-1",
            status=TaskStatus(state=TaskState.TASK_STATE_COMPLETED),
        )
    )
)
BIG = _event(
    StreamResponse(
        message=Message(role=Role.ROLE_AGENT, message_id="m-2", parts=[Part(text="x" * 300_000)])
    )
)
RPC_ERROR = json.dumps({"jsonrpc": "2.0", "id": "1", "error": {"code": -32001, "message": "gone"}})


def _stream(body: bytes, *headers: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _whole(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


ANSWERS: dict[str, bytes | None] = {
    "two events": _stream(f"data: {WORKING}\n\ndata: {DONE}\n\n".encode()),
    "CRLF lines, a comment, a named event, data over two lines": _stream(
        f": hello\r\nevent: message\r\ndata: {WORKING}\r\n\r\n".encode()
        + DONE.replace(",", ",\r\ndata: ", 1).join(["data: ", "\r\n\r\n"]).encode()
    ),
    "lone CR line ends": _stream(f"data: {WORKING}\r\rdata: {DONE}\r\r".encode()),
    "a data line of 300 kB": _stream(f"data: {BIG}\n\n".encode()),
    "the last event not ended by a blank line": _stream(
        f"data: {WORKING}\n\ndata: {DONE}".encode()
    ),
    "compressed": _whole(
        gzip.compress(f"data: {WORKING}\n\ndata: {DONE}\n\n".encode()),
        "Content-Type: text/event-stream",
        "Content-Encoding: gzip",
    ),
    "not a stream but a JSON-RPC error": _whole(
        RPC_ERROR.encode(), "Content-Type: application/json"
    ),
    "not a stream but a result": _whole(DONE.encode(), "Content-Type: application/json"),
    "an error event": _stream(f"data: {WORKING}\n\nevent: error\ndata: {RPC_ERROR}\n\n".encode()),
    "empty events, an error's too": _stream(
        f"data:\n\nevent: error\ndata:\n\ndata: {WORKING}\n\ndata: {DONE}\n\n".encode()
    ),
    "an error event that is not JSON-RPC": _stream(b"event: error\ndata: boom\n\n"),
    "an event that is not JSON": _stream(b"data: {nope\n\n"),
    "an event that is not JSON-RPC": _stream(b"data: [1, 2]\n\n"),
    "HTTP 500 with a body": _whole(b"agent exploded", status="500 Internal Server Error"),
    "HTTP 500 with a compressed body": _whole(
        gzip.compress(b"agent exploded, compressed"),
        "Content-Encoding: gzip",
        status="500 Internal Server Error",
    ),
    "HTTP 503 with its own reason phrase": _whole(b"later", status="503 Busy Right Now"),
    "not a stream and not UTF-8": _whole(b"\xff\xfe", "Content-Type: application/json"),
    "HTTP 302": _whole(b"", "Location: http://elsewhere/", status="302 Found"),
    "the connection dropped mid-stream": b"cut",
    "no answer within the timeout": None,
}


async def _outcome(
    path: str, answer: bytes | None
) -> tuple[list[dict[str, Any]], tuple[str, ...] | None, bytes, dict[str, Any]]:
    """The events (or the error) one path gives for ``answer``, and the request it sent."""
    requests: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await request_head(reader)
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        body = await reader.readexactly(int(length.group(1))) if length else b""
        requests.append((head, body))
        if answer is None:
            await reader.read()  # until the client gives up
        elif answer == b"cut":
            part = f"data: {WORKING}\n\ndata: {DONE[:20]}".encode()
            writer.write(_stream(part, f"Content-Length: {len(part) + 100}"))
            await writer.drain()
            writer.transport.abort()
        else:
            writer.write(answer)
            await writer.drain()

    events: list[dict[str, Any]] = []
    failure: tuple[str, ...] | None = None
    async with answering(handler) as served, agent_http_client(4) as http:
        transport = JsonRpcTransport(http, _card(served.url), served.url)
        streams = DirectStreams.of(transport) if path == "direct" else transport
        assert streams is not None
        context = ClientCallContext(timeout=0.5, service_parameters=dict(HEADERS))
        try:
            async for event in streams.send_message_streaming(REQUEST, context=context):
                events.append(json_format.MessageToDict(event))
        except Exception as exc:
            error = call_error(exc, served.url, "send a message")
            failure = (type(exc).__name__, error.kind, str(error.retryable), str(error))
        here = served.url.removeprefix("http://").rstrip("/")  # each path has its own server
    [(head, body)] = requests
    if failure is not None:
        failure = tuple(part.replace(here, "HOST") for part in failure)
    return events, failure, head.replace(here.encode(), b"HOST"), json.loads(body)


@pytest.mark.parametrize("answer", list(ANSWERS), ids=list(ANSWERS))
async def test_a_streamed_call_over_aiohttp_is_the_call_httpx_made(answer: str) -> None:
    direct = await _outcome("direct", ANSWERS[answer])
    through_httpx = await _outcome("httpx", ANSWERS[answer])
    assert direct[:2] == through_httpx[:2]
    assert _headers(direct[2]) == _headers(through_httpx[2])
    sent, expected = direct[3], through_httpx[3]
    assert sent.pop("id") != expected.pop("id")  # a new JSON-RPC id each call, as before
    assert sent == expected


def test_the_answers_cover_both_outcomes() -> None:
    """The comparison above means something only if some answers give events and others
    errors of each kind (checked here once, through the direct path)."""
    outcomes = {name: asyncio.run(_outcome("direct", answer)) for name, answer in ANSWERS.items()}
    assert len(outcomes["two events"][0]) == 2 and outcomes["two events"][1] is None
    assert len(outcomes["a data line of 300 kB"][0]) == 1
    assert outcomes["lone CR line ends"][0] == outcomes["two events"][0]
    assert outcomes["compressed"][0] == outcomes["two events"][0]
    assert len(outcomes["the last event not ended by a blank line"][0]) == 1
    kinds = {name: failure[1] for name, (_, failure, _, _) in outcomes.items() if failure}
    assert kinds["HTTP 500 with a body"] == "http"
    assert "agent exploded" in outcomes["HTTP 500 with a body"][1][3]  # type: ignore[index]
    assert kinds["the connection dropped mid-stream"] == "network"
    assert kinds["no answer within the timeout"] == "timeout"
    assert kinds["not a stream but a JSON-RPC error"] == kinds["an error event"]
    assert kinds["HTTP 500 with a compressed body"] == "http"
    assert "compressed" in outcomes["HTTP 500 with a compressed body"][1][3]  # type: ignore[index]
    assert "Busy Right Now" in outcomes["HTTP 503 with its own reason phrase"][1][3]  # type: ignore[index]
    assert outcomes["empty events, an error's too"][0] == outcomes["two events"][0]


async def test_only_calls_that_httpx_sends_over_aiohttp_as_built_go_direct() -> None:
    url = "http://127.0.0.1:9/"
    async with agent_http_client(4) as direct:
        assert DirectStreams.of(JsonRpcTransport(direct, _card(url), url)) is not None
    for options in (
        {"proxy": "http://proxy:1"},
        {"auth": ("user", "password")},
        {"follow_redirects": True},
        {"params": {"tenant": "t1"}},
        {"event_hooks": {"request": [print]}},
    ):
        async with agent_http_client(4, **options) as http:
            transport = JsonRpcTransport(http, _card(url), url)
            assert DirectStreams.of(transport) is None, options
    async with agent_http_client(4) as direct:
        wrapped = DrainingTransport(JsonRpcTransport(direct, _card(url), url))
        assert isinstance(wrapped._streams, DirectStreams)


def _card(url: str) -> AgentCard:
    return AgentCard(
        name="raw",
        supported_interfaces=[AgentInterface(url=url, protocol_binding="JSONRPC")],
        capabilities=AgentCapabilities(streaming=True),
    )


def _headers(head: bytes) -> dict[str, str]:
    """A request head's headers, their names as sent (their order aside)."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {
        name.strip(): value.strip()
        for name, _, value in (line.partition(":") for line in lines if line)
    }


async def test_a_closed_client_fails_the_same_way() -> None:
    url = "http://127.0.0.1:9/"
    failures = []
    for path in ("direct", "httpx"):
        async with agent_http_client(4) as http:
            transport = JsonRpcTransport(http, _card(url), url)
            streams = DirectStreams.of(transport) if path == "direct" else transport
        assert streams is not None
        with pytest.raises(A2AClientError, match="closed") as caught:
            async for _ in streams.send_message_streaming(REQUEST):
                pass
        failures.append((type(caught.value), str(caught.value)))
    assert failures[0] == failures[1]
