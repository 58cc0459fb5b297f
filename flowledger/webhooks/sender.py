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
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final
from uuid import UUID

import httpx
from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from flowledger import __version__
from flowledger.database import Database
from flowledger.following import TRANSIENT_ERRORS
from flowledger.listening import Listener
from flowledger.projections.tables import (
    webhook_deliveries,
    webhook_delivery_attempts,
    webhook_leases,
    webhooks,
)
from flowledger.projections.webhooks import DELIVERIES_CHANNEL
from flowledger.runtime import Runtime
from flowledger.settings import Settings, _float, _int
from flowledger.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_header

log = logging.getLogger(__name__)

EXCERPT_BYTES: Final = 500
USER_AGENT: Final = f"flowledger-webhooks/{__version__}"


@dataclass(frozen=True)
class WebhookSettings:
    timeout_s: float = 10.0
    """Longest wait for a receiver's answer."""
    max_attempts: int = 10
    retry_initial_s: float = 1.0
    retry_max_s: float = 600.0
    concurrency: int = 32
    """Webhooks delivered to at the same time by one sender process."""
    poll_interval_s: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookSettings:
        env = settings.extra
        return cls(
            timeout_s=_float(env, "FLOWLEDGER_WEBHOOK_TIMEOUT", 10.0) or 10.0,
            max_attempts=_int(env, "FLOWLEDGER_WEBHOOK_MAX_ATTEMPTS", 10, minimum=1),
            retry_initial_s=_float(env, "FLOWLEDGER_WEBHOOK_RETRY_INITIAL", 1.0),
            retry_max_s=_float(env, "FLOWLEDGER_WEBHOOK_RETRY_MAX", 600.0),
            concurrency=_int(env, "FLOWLEDGER_WEBHOOK_CONCURRENCY", 32, minimum=1),
            poll_interval_s=settings.follower_idle_wait_s,
        )

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1 for the first), with jitter."""
        base: float = min(self.retry_max_s, self.retry_initial_s * 2 ** max(attempt - 1, 0))
        return base * random.uniform(0.75, 1.0)  # noqa: S311  (jitter, not cryptography)

    @property
    def lease_s(self) -> float:
        return 2 * self.timeout_s + 30


@dataclass(frozen=True)
class Job:
    delivery_id: UUID
    webhook_id: UUID
    position: int
    event_id: UUID
    event_type: str
    payload: str
    attempts: int
    due: bool
    url: str | None
    secret: str | None
    webhook_status: str | None


@dataclass(frozen=True)
class Attempt:
    started_at: datetime
    duration_ms: float
    succeeded: bool
    status_code: int | None = None
    error: str | None = None
    excerpt: str | None = None


_DUE_WEBHOOKS = text(
    """
    SELECT head.webhook_id FROM (
        SELECT DISTINCT ON (webhook_id) webhook_id, next_attempt_at
        FROM webhook_deliveries WHERE status = 'pending'
        ORDER BY webhook_id, position
    ) AS head
    LEFT JOIN webhook_leases AS lease ON lease.webhook_id = head.webhook_id
    WHERE head.next_attempt_at <= now()
      AND (lease.webhook_id IS NULL OR lease.lease_until < now() OR lease.owner = :owner)
    ORDER BY head.next_attempt_at
    LIMIT :limit
    """
)


class WebhookSender:
    def __init__(
        self,
        database: Database,
        config: WebhookSettings,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.database = database
        self.config = config
        self.owner = f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._client = client
        self._engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "the sender is not running"
        return self._engine

    async def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set."""
        self._engine = self.database.create_async_engine(pool_size=5)
        client = self._client or httpx.AsyncClient(
            timeout=self.config.timeout_s,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        listener = Listener(self.database, DELIVERIES_CHANNEL)
        lanes: dict[UUID, asyncio.Task[None]] = {}
        try:
            async with listener.subscription():
                while not stop.is_set():
                    token = listener.token()
                    try:
                        await self._open_lanes(lanes, client, stop)
                    except TRANSIENT_ERRORS as error:
                        log.warning("webhook sender: database unavailable (%s); retrying", error)
                    await listener.wait(token, self.config.poll_interval_s)
        finally:
            for lane in lanes.values():
                lane.cancel()
            await asyncio.gather(*lanes.values(), return_exceptions=True)
            if self._client is None:
                await client.aclose()
            await self.engine.dispose()

    async def _open_lanes(
        self,
        lanes: dict[UUID, asyncio.Task[None]],
        client: httpx.AsyncClient,
        stop: threading.Event,
    ) -> None:
        room = self.config.concurrency - len(lanes)
        if room <= 0:
            return
        async with self.engine.connect() as conn:
            due = (
                await conn.execute(_DUE_WEBHOOKS, {"owner": self.owner, "limit": room + len(lanes)})
            ).scalars()
            hooks = [hook for hook in due if hook not in lanes][:room]
        for hook in hooks:
            lane = asyncio.create_task(self._lane(hook, client, stop), name=f"webhook-{hook}")
            lanes[hook] = lane
            lane.add_done_callback(partial(_forget, lanes, hook))

    async def _lane(self, hook: UUID, client: httpx.AsyncClient, stop: threading.Event) -> None:
        try:
            while not stop.is_set() and await self._lease(hook):
                job = await self._next(hook)
                if job is None or not job.due or job.webhook_status is None:
                    return
                if job.webhook_status != "active" or job.url is None or job.secret is None:
                    await self._cancel(job)
                    continue
                await self._record(job, await self._attempt(client, job))
        except TRANSIENT_ERRORS as error:
            log.warning("webhook %s: database unavailable (%s); will retry", hook, error)
        finally:
            with contextlib.suppress(Exception):
                await self._release(hook)

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
    async def _next(self, hook: UUID) -> Job | None:
        d = webhook_deliveries.c
        query = (
            select(
                d.id,
                d.webhook_id,
                d.position,
                d.event_id,
                d.event_type,
                d.payload,
                d.attempts,
                (d.next_attempt_at <= func.now()).label("due"),
                webhooks.c.url,
                webhooks.c.secret,
                webhooks.c.status.label("webhook_status"),
            )
            .select_from(webhook_deliveries.outerjoin(webhooks, webhooks.c.id == d.webhook_id))
            .where(d.webhook_id == hook, d.status == "pending")
            .order_by(d.position)
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return Job(
            delivery_id=row.id,
            webhook_id=row.webhook_id,
            position=row.position,
            event_id=row.event_id,
            event_type=row.event_type,
            payload=row.payload,
            attempts=row.attempts,
            due=bool(row.due),
            url=row.url,
            secret=row.secret,
            webhook_status=row.webhook_status,
        )

    async def _record(self, job: Job, attempt: Attempt) -> None:
        number = job.attempts + 1
        values: dict[str, Any] = {
            "attempts": number,
            "last_attempt_at": attempt.started_at,
            "last_status_code": attempt.status_code,
            "last_error": attempt.error,
        }
        if attempt.succeeded:
            values.update(status="succeeded", completed_at=func.now())
        elif number >= self.config.max_attempts:
            values.update(status="failed", completed_at=func.now())
            log.warning(
                "webhook %s: delivery of event %s failed after %d attempts (%s)",
                job.webhook_id,
                job.position,
                number,
                attempt.error,
            )
        else:
            values["next_attempt_at"] = func.now() + timedelta(seconds=self.config.delay_s(number))
        async with self.engine.begin() as conn:
            await conn.execute(
                pg_insert(webhook_delivery_attempts)
                .values(
                    delivery_id=job.delivery_id,
                    attempt=number,
                    started_at=attempt.started_at,
                    duration_ms=attempt.duration_ms,
                    succeeded=attempt.succeeded,
                    status_code=attempt.status_code,
                    error=attempt.error,
                    response_excerpt=attempt.excerpt,
                )
                .on_conflict_do_nothing()
            )
            await conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.id == job.delivery_id,
                    webhook_deliveries.c.status == "pending",
                )
                .values(**values)
            )

    async def _cancel(self, job: Job) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.id == job.delivery_id,
                    webhook_deliveries.c.status == "pending",
                )
                .values(status="cancelled", completed_at=func.now())
            )

    async def _lease(self, hook: UUID) -> bool:
        """Take or renew this webhook's lease; False when another sender holds it."""
        lease = webhook_leases.c
        claim = pg_insert(webhook_leases).values(
            webhook_id=hook,
            owner=self.owner,
            lease_until=func.now() + timedelta(seconds=self.config.lease_s),
        )
        statement = claim.on_conflict_do_update(
            index_elements=["webhook_id"],
            set_={"owner": claim.excluded.owner, "lease_until": claim.excluded.lease_until},
            where=or_(lease.owner == self.owner, lease.lease_until < func.now()),
        ).returning(lease.owner)
        async with self.engine.begin() as conn:
            return (await conn.execute(statement)).first() is not None

    async def _release(self, hook: UUID) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(webhook_leases).where(
                    webhook_leases.c.webhook_id == hook, webhook_leases.c.owner == self.owner
                )
            )


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
    sender = WebhookSender(runtime.database, WebhookSettings.from_settings(runtime.settings))
    asyncio.run(sender.run(stop))
