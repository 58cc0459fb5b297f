"""The n8n caller's request, as a webhook receives it: the step's message id and the caller's
trace go with the step input, beside the credentials."""

from __future__ import annotations

import asyncio

import pytest

from flowledger.a2a import AgentAuth
from flowledger.n8n.caller import MESSAGE_ID_HEADER, N8nCaller
from tests.support.raw_server import answering, request_head

pytestmark = pytest.mark.integration

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_a_webhook_gets_the_message_id_the_trace_and_the_credentials() -> None:
    heads: list[bytes] = []

    async def webhook(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append((await request_head(reader)).lower())
        body = b'{"ok": true}'
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
        writer.write(b"content-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    caller = N8nCaller()
    try:
        async with answering(webhook) as served:
            reply = await caller.send(
                f"{served.url}webhook/greet",
                {"who": "Ada"},
                auth=AgentAuth.bearer("s3cret"),
                timeout_s=5,
                message_id="run:step:1",
                headers={"traceparent": TRACEPARENT},
            )
    finally:
        await caller.aclose()
    assert reply.output == {"ok": True}
    [head] = heads
    assert f"traceparent: {TRACEPARENT}".encode() in head
    assert f"{MESSAGE_ID_HEADER.lower()}: run:step:1".encode() in head
    assert b"authorization: bearer s3cret" in head
