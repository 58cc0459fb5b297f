"""Streams read to their end, so that a call's HTTP connection is kept for the next one.

a2a-sdk's client stops reading a streamed answer at the agent's final Message (and flowledger
stops at a final task state): the SSE response was then closed unread, which makes httpx close
its connection, so every call to an agent paid a new TCP connection (measured with the sample
agents: one per call, about a third of a call's CPU in the executor, and more in the agent).
:class:`DrainingTransport` wraps the transport of each a2a-sdk ``Client`` the way a2a-sdk's own
``TenantTransportDecorator`` does: when an event ends the call (:class:`Tracker`'s ``final``),
it reads the stream to its end before handing that event on (agents end the stream right
after it; at most :data:`DRAIN_S`), so the response is complete and its connection goes back
to the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any, Final

from a2a.client import Client, ClientCallContext
from a2a.types import SendMessageRequest, StreamResponse

from flowledger.a2a.direct import DirectStreams
from flowledger.a2a.tracker import Tracker

DRAIN_S: Final = 0.5
"""How long the rest of a stream is read after its final event, waiting for the agent to end
it; a stream left open longer is closed, with its connection, as before."""


class DrainingTransport:
    """An a2a-sdk client transport whose streams are read to their end at their final event,
    sent straight over aiohttp where they can be (:class:`~flowledger.a2a.direct.DirectStreams`)."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._streams = DirectStreams.of(transport) or transport

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    async def send_message_streaming(
        self, request: SendMessageRequest, *, context: ClientCallContext | None = None
    ) -> AsyncGenerator[StreamResponse]:
        stream = self._streams.send_message_streaming(request, context=context)
        tracker = Tracker()
        async with contextlib.aclosing(stream):
            async for event in stream:
                tracker.apply(event)
                if tracker.final:
                    await _read_to_end(stream)
                yield event


async def _read_to_end(stream: AsyncGenerator[StreamResponse]) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(DRAIN_S):
            async for _ in stream:
                pass


def keeping_connections(client: Client) -> Client:
    """``client`` (made by a2a-sdk's ``ClientFactory``) with its transport wrapped."""
    transport = getattr(client, "_transport", None)
    if transport is not None:
        client._transport = DrainingTransport(transport)  # type: ignore[attr-defined]
    return client
