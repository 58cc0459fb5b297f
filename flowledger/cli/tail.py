"""``flowledger events tail``: print event envelopes as JSON lines, live.

From Kafka when a broker is configured (``KAFKA_BOOTSTRAP_SERVERS``, or the embedded broker a
running ``flowledger dev`` wrote down in its data folder), otherwise straight from the event
store. Kafka delivers at least once; the tail drops what it has already printed, and a tail
"from now" also drops events recorded before it started (a broker that restarted empty gets
the whole history again). From the store, the tail is a :class:`Follower` like every worker
(same batches, NOTIFY wake-up and retries) whose position lives only in memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

from flowledger.eventlog.envelope import Envelope, EventFilter, encode, envelopes
from flowledger.runtime.settings import Settings

if TYPE_CHECKING:
    from eventsourcing.persistence import Notification

    from flowledger.eventlog.store import EventStore

DEV_BROKER_FILE = "kafka.json"


CLOCK_TOLERANCE: Final = timedelta(seconds=1)
"""A tail from now starts reading Kafka this much before it started (producer clocks), and
prints events recorded from when it started (``--from-position`` is exact)."""


@dataclass(frozen=True)
class TailRequest:
    event_filter: EventFilter
    after: int | None
    """Start after this position; None: from now."""
    limit: int | None = None
    """Stop after printing this many events."""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def write_dev_broker(settings: Settings, bootstrap_servers: str) -> Path:
    """Where ``flowledger dev`` says its embedded broker listens, for tails in other shells."""
    path = settings.data_dir / DEV_BROKER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"bootstrap_servers": bootstrap_servers, "pid": os.getpid()}))
    return path


def dev_broker(settings: Settings) -> str | None:
    """The bootstrap servers of a running ``flowledger dev``'s embedded broker, if any."""
    path = settings.data_dir / DEV_BROKER_FILE
    try:
        found = json.loads(path.read_text())
        os.kill(int(found["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(found["bootstrap_servers"])


class Printer:
    def __init__(self, request: TailRequest, out: TextIO) -> None:
        self.request = request
        self.out = out
        self.printed = 0

    def wanted(self, envelope: Envelope) -> bool:
        request = self.request
        if request.after is None:
            # From now: a broker that restarted empty gets the history again; skip it.
            recent = envelope.occurred_at >= request.started_at
        else:
            recent = envelope.position > request.after
        return recent and request.event_filter.admits(envelope)

    def __call__(self, envelope: Envelope) -> bool:
        """Print the envelope if wanted; False once the limit is reached."""
        if self.wanted(envelope):
            self.out.write(encode(envelope).decode() + "\n")
            self.out.flush()
            self.printed += 1
        return self.request.limit is None or self.printed < self.request.limit


class StoreTail:
    """A follower's handler that prints what it is given; its position is kept in memory only,
    so each tail starts where it is asked to. Sets ``stop`` once it has printed enough."""

    name = "events-tail"

    def __init__(
        self, store: EventStore, printer: Printer, start: int, stop: threading.Event
    ) -> None:
        self.store = store
        self.printer = printer
        self.stop = stop
        self.output_closed: BrokenPipeError | None = None
        self._position = start

    def position(self) -> int | None:
        return self._position

    def handle(self, batch: Sequence[Notification]) -> None:
        wanted = [n for n in batch if self.printer.request.event_filter.admits_stored(n)]
        try:
            for envelope in envelopes(self.store, wanted):
                if not self.printer(envelope):
                    self.stop.set()
                    break
        except BrokenPipeError as error:  # ``| head`` has read enough: not worth a retry
            self.output_closed = error
            self.stop.set()
        self._position = batch[-1].id


def tail_store(
    settings: Settings,
    request: TailRequest,
    out: TextIO = sys.stdout,
    stop: threading.Event | None = None,
) -> None:
    from flowledger.eventlog.follower import Follower  # noqa: PLC0415
    from flowledger.runtime.process import Runtime  # noqa: PLC0415

    stop = stop or threading.Event()
    runtime = Runtime.open(settings)
    try:
        start = runtime.store.head() if request.after is None else request.after
        printer = Printer(replace(request, after=start), out)
        tail = StoreTail(runtime.store, printer, start, stop)
        Follower(
            runtime.store,
            tail,
            batch_size=settings.follower_batch_size,
            idle_wait_s=settings.follower_idle_wait_s,
        ).run(stop)
        if tail.output_closed is not None:
            raise tail.output_closed
    finally:
        runtime.close_sync()


def tail_kafka(
    settings: Settings,
    bootstrap_servers: str,
    request: TailRequest,
    out: TextIO = sys.stdout,
    on_ready: Callable[[], None] | None = None,
) -> None:
    asyncio.run(_tail_kafka(settings, bootstrap_servers, request, out, on_ready))


async def _tail_kafka(
    settings: Settings,
    bootstrap_servers: str,
    request: TailRequest,
    out: TextIO,
    on_ready: Callable[[], None] | None,
) -> None:
    from flowledger.kafka.config import KafkaSettings  # noqa: PLC0415
    from flowledger.kafka.consumer import FAST_GROUP_SETTINGS, EnvelopeConsumer  # noqa: PLC0415

    config = KafkaSettings.from_env(settings.extra, bootstrap_servers)
    printer = Printer(request, out)
    consumer = EnvelopeConsumer(
        config,
        group_id=f"flowledger-tail-{uuid.uuid4().hex[:12]}",
        aggregate_types=request.event_filter.aggregate_types,
        from_beginning=request.after is not None,
        start_time_ms=int((request.started_at - CLOCK_TOLERANCE).timestamp() * 1000),
        group_settings=FAST_GROUP_SETTINGS,
    )
    async with consumer:
        if on_ready is not None:
            on_ready()
        while True:
            for envelope in await consumer.getmany(timeout_ms=500):
                if not printer(envelope):
                    return
            await consumer.commit()
