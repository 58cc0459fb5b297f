"""Streamed calls (A2A ``SendStreamingMessage``, every step's call) straight over aiohttp.

a2a-sdk sends a streamed call through httpx (``send_http_stream_request``): httpx builds the
request (its URL parsed, its headers merged and checked), sends it through its transport
(aiohttp's pool here, :mod:`flowledger.a2a.pools`) and reads the answer back through its
decoders, line by line: a third of the client's CPU per call (measured on the sample echo
agent: 0.93 ms of client CPU per call through httpx, 0.65 ms this way). :class:`DirectStreams`
sends the same request on the same aiohttp session:

* the same JSON-RPC request a2a-sdk's ``JsonRpcTransport`` builds, encoded as httpx encodes
  ``json=`` bodies, with the headers httpx would have sent (the client's own, then the call's
  service parameters, ``Accept: text/event-stream``, ``Cache-Control: no-store``);
* the answer read as a2a-sdk reads it: the lines split as httpx splits them (its
  ``LineDecoder``), server-sent events parsed by a2a-sdk's own ``parse_sse_stream``, each
  event checked and converted by the transport's own methods, an answer that is not a stream
  read whole as one event, ``Content-Encoding`` decoded (by aiohttp, for this request);
* failures as before: aiohttp's errors become httpx's (:func:`~flowledger.a2a.pools.mapped`),
  an answer that is not 2xx an ``httpx.HTTPStatusError`` with its body, and all of them go
  through a2a-sdk's ``handle_http_exceptions``, so :func:`~flowledger.a2a.errors.call_error`
  sees what it saw.

Only streamed calls of JSON-RPC agents go this way, and only where httpx would have used the
aiohttp pool (no proxy for the agent's URL) with nothing of its own on the way (:func:`_plain`);
everything else (cards, reading and cancelling tasks, calls through a proxy) keeps httpx.
"""

from __future__ import annotations

import codecs
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Final, cast
from uuid import uuid4

import aiohttp
import httpx
import yarl
from a2a.client import ClientCallContext
from a2a.client.errors import A2AClientError
from a2a.client.transports.http_helpers import handle_http_exceptions, parse_sse_stream
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.types import SendMessageRequest, StreamResponse
from a2a.utils.proto_utils import parse_lenient
from google.protobuf import json_format
from httpx._decoders import LineDecoder  # the line splitting httpx's aiter_lines does
from multidict import CIMultiDict

from flowledger.a2a.pools import AiohttpTransport, mapped

STREAM_HEADERS: Final = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
"""What a2a-sdk asks of a streamed call (unless the call's own headers say otherwise)."""


class DirectStreams:
    """``send_message_streaming`` of one agent's a2a-sdk JSON-RPC transport, over the aiohttp
    pool httpx would have sent it through (see the module's doc)."""

    def __init__(self, transport: JsonRpcTransport, pool: AiohttpTransport) -> None:
        self._transport = transport
        self._pool = pool
        self._url = yarl.URL(str(httpx.URL(transport.url)), encoded=True)

    @classmethod
    def of(cls, transport: Any) -> DirectStreams | None:
        """Streams for a2a-sdk's ``transport``, or None when it is not a JSON-RPC transport
        whose httpx client sends its URL through an :class:`AiohttpTransport`."""
        if type(transport) is not JsonRpcTransport:
            return None
        client: httpx.AsyncClient = transport.httpx_client
        if not _plain(client):
            return None
        try:
            pool = client._transport_for_url(httpx.URL(transport.url))  # its mounts, proxies
        except (AttributeError, httpx.InvalidURL):
            return None
        return cls(transport, pool) if isinstance(pool, AiohttpTransport) else None

    async def send_message_streaming(
        self, request: SendMessageRequest, *, context: ClientCallContext | None = None
    ) -> AsyncGenerator[StreamResponse]:
        transport = self._transport
        rpc = {  # what a2a-sdk's JSONRPC20Request(...).data is, in its order
            "method": "SendStreamingMessage",
            "params": json_format.MessageToDict(request),
            "id": str(uuid4()),
            "jsonrpc": "2.0",
        }
        events = self._events(rpc, context)
        async with contextlib.aclosing(events):
            async for data in events:
                try:
                    answer = json.loads(data)
                except json.JSONDecodeError as e:
                    raise A2AClientError(f"Invalid JSON-RPC response in SSE stream: {e}") from e
                answer = transport._check_jsonrpc_response(answer)
                yield parse_lenient(answer["result"], StreamResponse())

    async def _events(
        self, payload: dict[str, Any], context: ClientCallContext | None
    ) -> AsyncGenerator[str]:
        """The data of each server-sent event of the answer (a2a-sdk's
        ``send_http_stream_request``, over aiohttp)."""
        transport = self._transport
        client: httpx.AsyncClient = transport.httpx_client
        if client.is_closed:
            raise A2AClientError("HTTP client is closed")
        # The client's headers with their names as given (httpx.Headers.items() lowers them).
        headers = CIMultiDict(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in client.headers.raw
        )
        asked = CIMultiDict(
            context.service_parameters if context and context.service_parameters else {}
        )
        headers.update(asked)
        for name, value in STREAM_HEADERS.items():
            if name not in asked:
                headers[name] = value
        headers.setdefault("Content-Type", "application/json")
        seconds = context.timeout if context and context.timeout is not None else None
        timeout = client.timeout if seconds is None else httpx.Timeout(seconds)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        with handle_http_exceptions(), mapped():
            response = await self._pool.session().request(
                "POST",
                self._url,
                headers=headers,
                data=body.encode(),
                allow_redirects=False,
                compress=None,
                auto_decompress=True,
                timeout=self._pool.timeout(timeout.as_dict()),
            )
            try:
                if not 200 <= response.status < 300:
                    await _raise_status(response, str(self._url))
                if "text/event-stream" not in response.headers.get("Content-Type", ""):
                    yield (await response.read()).decode("utf-8")  # (strict, as a2a-sdk's)
                    return
                events = parse_sse_stream(cast(httpx.Response, _Lines(response)))
                async for event, data in events:
                    if not data:
                        continue  # (a2a-sdk skips an event with empty data, an error's too)
                    if event == "error":
                        transport._handle_sse_error(data)
                    yield data
            finally:
                response.release()  # the connection is kept if the answer was read to its end


async def _raise_status(response: aiohttp.ClientResponse, url: str) -> None:
    """Raise the ``httpx.HTTPStatusError`` httpx's ``raise_for_status`` raised for an answer
    that is not 2xx, with its body read (aiohttp decoded it already: the headers that said how
    it was encoded go) and the server's own reason phrase."""
    encoded = {b"content-encoding", b"content-length", b"transfer-encoding"}
    answer = httpx.Response(
        response.status,
        headers=[(k, v) for k, v in response.raw_headers if k.lower() not in encoded],
        content=await response.read(),
        request=httpx.Request("POST", url),
        extensions={"reason_phrase": (response.reason or "").encode("utf-8", "surrogateescape")},
    )
    answer.raise_for_status()


class _Lines:
    """What a2a-sdk's ``parse_sse_stream`` reads of an httpx response (``aiter_lines``), of an
    aiohttp one."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    def aiter_lines(self) -> AsyncIterator[str]:
        return _lines(self._response)


def _plain(client: httpx.AsyncClient) -> bool:
    """Whether the client sends a request as built, with nothing of its own on the way that
    :class:`DirectStreams` would leave out (auth, event hooks, query parameters, redirects
    followed, another default text encoding)."""
    return (
        client.auth is None
        and not client.params
        and not client.follow_redirects
        and not any(client.event_hooks.values())
        and getattr(client, "_default_encoding", "utf-8") == "utf-8"
    )


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    try:
        text = codecs.getincrementaldecoder(response.charset or "utf-8")(errors="replace")
    except LookupError:  # a charset Python does not know: httpx read the text as UTF-8
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    lines = LineDecoder()
    async for chunk in response.content.iter_any():
        for line in lines.decode(text.decode(chunk)):
            yield line
    for line in lines.decode(text.decode(b"", final=True)) + lines.flush():
        yield line
