"""A raw HTTP server for client tests: each connection is answered by the test's own
handler, byte by byte (what an agent's server may do wrong, or exactly what it sends)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


@dataclass
class Served:
    url: str
    accepted: list[asyncio.StreamWriter] = field(default_factory=list)
    """Every connection the server accepted."""


@contextlib.asynccontextmanager
async def answering(handler: Handler) -> AsyncIterator[Served]:
    """A server on 127.0.0.1 answering each connection with ``handler``."""
    accepted: list[asyncio.StreamWriter] = []

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}/", accepted)
    finally:
        for writer in accepted:
            writer.close()
        server.close()
