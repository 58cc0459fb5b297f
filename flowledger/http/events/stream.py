"""The live event stream: envelopes read from the event store after a position, as
Server-Sent Events whose ``id`` is the event's global position.

The stream is not a projection: it reads the log itself, in batches, borrowing a pooled
connection for each read only. Between reads it waits on the app's shared LISTEN (a
:class:`~flowledger.eventlog.notify.Notifier`) or its polling interval, whichever comes first,
sends a comment as keep-alive when nothing was sent for a while, and ends when the client goes
away (Litestar cancels it) or the server shuts down (:func:`close_streams`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Final

import anyio.to_thread
from litestar.response import ServerSentEventMessage

from flowledger.eventlog.envelope import Envelope, EventFilter, encode, envelope_of
from flowledger.eventlog.notify import Notifier
from flowledger.eventlog.store import EventStore
from flowledger.http.events.settings import StreamSettings

RETRY_MS: Final = 2000
"""How long a browser's EventSource waits before reconnecting (with ``Last-Event-ID``)."""

_closing = threading.Event()


def close_streams() -> None:
    """End every open stream of this process soon (server shutdown)."""
    _closing.set()


@dataclass(frozen=True)
class Scan:
    position: int | None
    """The last position read (matching or not); None when nothing was read."""
    envelopes: Sequence[Envelope]
    full: bool
    """The read returned a full batch: read again at once."""


def scan(store: EventStore, after: int, limit: int, event_filter: EventFilter) -> Scan:
    """Read one batch after ``after`` and keep the envelopes the filter admits (blocking)."""
    batch = store.read(after, limit)
    found = []
    for notification in batch:
        if event_filter.admits_stored(notification):
            envelope = envelope_of(store.decode(notification), notification.id)
            if event_filter.admits(envelope):
                found.append(envelope)
    return Scan(batch[-1].id if batch else None, found, len(batch) == limit)


async def event_stream(
    store: EventStore,
    listener: Notifier,
    event_filter: EventFilter,
    after: int,
    settings: StreamSettings,
    *,
    follow: bool = True,
) -> AsyncIterator[ServerSentEventMessage]:
    """Envelopes after ``after`` as they are recorded; with ``follow=False``, only those already
    recorded (a catch-up read that ends)."""
    position = after
    quiet_since = time.monotonic()
    with listener.subscription():
        yield ServerSentEventMessage(data=None, comment=f"after {after}", retry=RETRY_MS)
        while not _closing.is_set():
            token = listener.token()
            found = await anyio.to_thread.run_sync(
                scan, store, position, settings.batch_size, event_filter
            )
            for envelope in found.envelopes:
                yield ServerSentEventMessage(data=encode(envelope).decode(), id=envelope.position)
                quiet_since = time.monotonic()
            if found.position is not None:
                position = found.position
                if found.full:
                    continue
            if not follow:
                return
            if time.monotonic() - quiet_since >= settings.keepalive_s:
                yield ServerSentEventMessage(data=None, comment="keep-alive")
                quiet_since = time.monotonic()
            await listener.wait_async(token, _wait_s(listener, settings, quiet_since))


def _wait_s(listener: Notifier, settings: StreamSettings, quiet_since: float) -> float:
    """Poll often while notifications are not flowing; otherwise wait for one (up to the next
    keep-alive, and two seconds at most: a lost one, or shutdown)."""
    if not listener.connected:
        return settings.poll_interval_s
    until_keepalive = settings.keepalive_s - (time.monotonic() - quiet_since)
    return max(settings.poll_interval_s, min(until_keepalive, 2.0))
