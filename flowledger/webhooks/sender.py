"""The webhook sender (``flowledger worker webhooks``): POSTs enqueued deliveries, signed.

Each webhook's queue is a *lane*: its deliveries go one at a time, oldest position first, so a
receiver sees each aggregate's events in order. A failed attempt (no answer within the timeout,
or anything but 2xx) is recorded and retried with exponential backoff; after the last attempt
the delivery is ``failed`` and the lane moves on. Lanes run concurrently, so a slow or dead
receiver only holds up its own queue, never commands (they only append events) nor other
webhooks. A lane is leased (``webhook_leases``) so several sender processes share the work
without two of them sending one webhook's queue; a crashed sender's lease expires and its
in-flight delivery is sent again (at least once: receivers drop duplicates by event id).

The sender records delivery state only (tables, not events), so deliveries cannot feed back
into the event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Final
from uuid import UUID

import httpx
import uvloop
from sqlalchemy.ext.asyncio import AsyncEngine

from flowledger import __version__
from flowledger.a2a.cookies import NoCookies
from flowledger.eventlog.follower import TRANSIENT_ERRORS
from flowledger.eventlog.notify import Notifier
from flowledger.projections.webhooks import DELIVERIES_CHANNEL
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from flowledger.webhooks.queue import Attempt, DeliveryQueue, Job
from flowledger.webhooks.settings import WebhookSettings
from flowledger.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_header

log = logging.getLogger(__name__)

EXCERPT_BYTES: Final = 500
USER_AGENT: Final = f"flowledger-webhooks/{__version__}"


class WebhookSender:
    def __init__(
        self,
        database: Database,
        config: WebhookSettings,
        *,
        client: httpx.AsyncClient | None = None,
        engine: Callable[[], AsyncEngine] | None = None,
    ) -> None:
        """``engine`` makes the sender's async engine (in its event loop): the process's
        budgeted one in the worker, a small default one elsewhere."""
        self.database = database
        self.config = config
        self._engine = engine or database.create_async_engine
        self.owner = f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._client = client
        self._queue: DeliveryQueue | None = None

    @property
    def queue(self) -> DeliveryQueue:
        assert self._queue is not None, "the sender is not running"
        return self._queue

    async def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set."""
        engine = self._engine()
        self._queue = DeliveryQueue(engine, self.config, self.owner)
        client = self._client or httpx.AsyncClient(
            timeout=self.config.timeout_s,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            cookies=NoCookies(),  # a receiver's cookie goes back to no receiver, itself included
        )
        listener = Notifier(self.database, DELIVERIES_CHANNEL)
        lanes: dict[UUID, asyncio.Task[None]] = {}
        try:
            with listener.subscription():
                while not stop.is_set():
                    token = listener.token()
                    try:
                        await self._open_lanes(lanes, client, stop)
                    except TRANSIENT_ERRORS as error:
                        log.warning("webhook sender: database unavailable (%s); retrying", error)
                    await listener.wait_async(token, self.config.poll_interval_s)
        finally:
            # A stopping sender lets each lane finish the attempt in flight and record it (a
            # lane checks ``stop`` before its next job), so a delivery the receiver accepted is
            # not left pending to be sent again; what does not finish in time is cancelled.
            if lanes:
                await asyncio.wait(list(lanes.values()), timeout=self.config.timeout_s + 1)
            for lane in lanes.values():
                lane.cancel()
            await asyncio.gather(*lanes.values(), return_exceptions=True)
            if self._client is None:
                await client.aclose()
            await engine.dispose()

    async def _open_lanes(
        self,
        lanes: dict[UUID, asyncio.Task[None]],
        client: httpx.AsyncClient,
        stop: threading.Event,
    ) -> None:
        room = self.config.concurrency - len(lanes)
        if room <= 0:
            return
        due = await self.queue.due_webhooks(limit=room + len(lanes))
        hooks = [hook for hook in due if hook not in lanes][:room]
        for hook in hooks:
            lane = asyncio.create_task(self._lane(hook, client, stop), name=f"webhook-{hook}")
            lanes[hook] = lane
            lane.add_done_callback(partial(_forget, lanes, hook))

    async def _lane(self, hook: UUID, client: httpx.AsyncClient, stop: threading.Event) -> None:
        try:
            while not stop.is_set() and await self.queue.lease(hook):
                job = await self.queue.next(hook)
                if job is None or not job.due or job.webhook_status is None:
                    return
                if job.webhook_status != "active" or job.url is None or job.secret is None:
                    await self.queue.cancel(job)
                    continue
                await self.queue.record(job, await self._attempt(client, job))
        except TRANSIENT_ERRORS as error:
            log.warning("webhook %s: database unavailable (%s); will retry", hook, error)
        finally:
            with contextlib.suppress(Exception):
                await self.queue.release(hook)

    # ---------------------------------------------------------------- one attempt
    async def _attempt(self, client: httpx.AsyncClient, job: Job) -> Attempt:
        assert job.url is not None and job.secret is not None
        body = job.payload.encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Flowledger-Event-Id": str(job.event_id),
            "X-Flowledger-Event-Type": job.event_type,
            "X-Flowledger-Delivery-Id": str(job.delivery_id),
            "X-Flowledger-Delivery-Attempt": str(job.attempts + 1),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature_header(job.secret, timestamp, body),
        }
        started_at, started = datetime.now(UTC), time.perf_counter()

        def took() -> float:
            return round((time.perf_counter() - started) * 1000, 2)

        try:
            async with client.stream("POST", job.url, content=body, headers=headers) as response:
                excerpt = await _excerpt(response)
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as error:
            message = f"{type(error).__name__}: {error}".rstrip(": ")
            return Attempt(started_at, took(), succeeded=False, error=message[:1000])
        ok = response.is_success
        return Attempt(
            started_at,
            took(),
            succeeded=ok,
            status_code=response.status_code,
            error=None if ok else f"HTTP {response.status_code}",
            excerpt=excerpt,
        )

    # ---------------------------------------------------------------- state


def _forget(lanes: dict[UUID, asyncio.Task[None]], hook: UUID, _: object) -> None:
    lanes.pop(hook, None)


async def _excerpt(response: httpx.Response) -> str | None:
    """The start of the receiver's answer (read no further)."""
    chunks = b""
    async for chunk in response.aiter_raw():
        chunks += chunk
        if len(chunks) >= EXCERPT_BYTES:
            break
    text_ = chunks[:EXCERPT_BYTES].decode("utf-8", errors="replace").strip()
    return text_ or None


def run_sender(runtime: Runtime, stop: threading.Event) -> None:
    """The ``webhooks`` worker kind."""
    sender = WebhookSender(
        runtime.database,
        WebhookSettings.from_settings(runtime.settings),
        engine=runtime.new_async_engine,
    )
    uvloop.run(sender.run(stop))
