"""Publishing envelopes to Kafka with aiokafka, from blocking code (the relay's follower).

The async clients live on a private event loop in a background thread. Topics are created
explicitly, with the configured partitions, before anything is produced to them (a broker that
auto-creates topics would otherwise pick its own partition count). Records are put in record
batches per partition (``create_batch``/``send_batch``: the key's partition is the one the
producer's own partitioner picks), which costs half of sending them one by one; the batches of
one call are queued before those of the next, so each key's records keep their order. Any
failure drops the clients: the next attempt starts with a *new* producer and admin client, which
is what a broker that restarted empty needs (see kafka_notes.md), and raises
:class:`BrokerUnavailable`, a ``ConnectionError`` the follower retries with backoff for as long
as it takes. A broker that refuses what the producer needs (an idempotent producer) raises
:class:`BrokerRefused`, which says so and names the setting that changes it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import uvloop
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from flowledger.eventlog.envelope import Envelope, WireEvent, topic_for
from flowledger.kafka.config import KafkaSettings
from flowledger.observability import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

TOPIC_ALREADY_EXISTS = 36


class BrokerUnavailable(ConnectionError):
    """The broker could not be reached or did not acknowledge; try again later."""


class BrokerRefused(ConnectionError):
    """The broker answers but refuses something the producer needs; trying again every few
    seconds will not help (the follower waits ``retry_after_s`` between attempts)."""

    retry_after_s = 60.0
    reported = False
    """Set once the relay has logged it (the follower then does not log it again)."""


IDEMPOTENCE_REFUSED: Final = (
    "the Kafka broker refuses an idempotent producer ({error} answering InitProducerId); set "
    "FLOWLEDGER_KAFKA_IDEMPOTENCE=false to publish without it (a retried send may then be "
    "stored twice; consumers drop duplicates by event_id), or use a broker that supports it"
)


class _ReportedByUs(logging.Filter):
    """aiokafka logs a refused InitProducerId itself, on every attempt; the relay reports it
    once, in its own words (:data:`IDEMPOTENCE_REFUSED`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unexpected error during InitProducerIdRequest")


logging.getLogger("aiokafka.producer.sender").addFilter(_ReportedByUs())


@dataclass(frozen=True)
class BrokerView:
    cluster_id: str
    topics: frozenset[str]


class LoopThread:
    """An event loop (uvloop's, as the workers': ADR 0028) running in a daemon thread, for
    async clients used from blocking code."""

    def __init__(self, name: str) -> None:
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.submit(coroutine).result()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start the coroutine on the loop; its result is awaited through the future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


def kafka_headers(envelope: Envelope | WireEvent) -> list[tuple[str, bytes]]:
    headers = [
        ("event_type", envelope.event_type.encode()),
        ("event_id", str(envelope.event_id).encode()),
        ("aggregate_type", envelope.aggregate_type.encode()),
        ("position", str(envelope.position).encode()),
        ("content-type", b"application/json"),
    ]
    if envelope.traceparent:
        headers.append(("traceparent", envelope.traceparent.encode()))
    return headers


class KafkaPublisher:
    def __init__(self, config: KafkaSettings) -> None:
        self.config = config
        self._loop = LoopThread("kafka-publisher")
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._view: BrokerView | None = None
        self._created: set[str] = set()
        self._partitioner = DefaultPartitioner()
        self._enqueue: asyncio.Lock | None = None
        self.connections = 0
        """How many times a connection was made; a new one means: check the broker again."""

    @property
    def timeout_s(self) -> float:
        return 3 * self.config.request_timeout_ms / 1000 + 5

    # ------------------------------------------------------------------ blocking API
    def connect(self) -> BrokerView:
        """Connect (if not connected); the cluster id and topics seen when connecting."""
        return self._loop.run(self._guarded(self._connect()))

    def describe(self) -> BrokerView:
        """The broker's cluster id and topics now."""
        return self._loop.run(self._guarded(self._describe()))

    def cluster_id(self, timeout_s: float | None = None) -> str:
        """The broker's cluster id now (``timeout_s``: at most that long, instead of
        :attr:`timeout_s`)."""
        return self._loop.run(self._guarded(self._cluster_id(), timeout_s))

    def publish(self, events: Sequence[WireEvent]) -> Counter[str]:
        """Publish and wait for every acknowledgement; the records published per topic."""
        return self.submit(events).result()

    def submit(self, events: Sequence[WireEvent]) -> concurrent.futures.Future[Counter[str]]:
        """Start publishing (it returns at once); the future's result is the records published
        per topic, once every one of them is acknowledged. Records of later calls are queued
        after those of earlier ones."""
        return self._loop.submit(self._guarded(self._publish(events)))

    def disconnect(self) -> None:
        self._loop.run(self._disconnect())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.disconnect()
        self._loop.close()

    # ------------------------------------------------------------------ async internals
    async def _guarded(
        self, coroutine: Coroutine[Any, Any, T], timeout_s: float | None = None
    ) -> T:
        try:
            async with asyncio.timeout(self.timeout_s if timeout_s is None else timeout_s):
                return await coroutine
        except BrokerRefused:
            await self._disconnect()
            raise
        except (KafkaError, OSError, TimeoutError) as error:
            await self._disconnect()
            raise BrokerUnavailable(f"{type(error).__name__}: {error}") from error

    async def _connect(self) -> BrokerView:
        if self._producer is not None and self._view is not None:
            return self._view
        admin = AIOKafkaAdminClient(**self.config.client_kwargs())
        producer: AIOKafkaProducer | None = None
        try:
            await admin.start()
            cluster: str = (await admin.describe_cluster())["cluster_id"]
            topics = frozenset(await admin.list_topics())
            producer = AIOKafkaProducer(**self.config.producer_kwargs())
            try:
                await producer.start()
            except KafkaError as error:
                if await self._refuses_idempotence(error):
                    raise BrokerRefused(
                        IDEMPOTENCE_REFUSED.format(error=type(error).__name__)
                    ) from error
                raise
        except BaseException:
            await _quietly(admin.close())
            if producer is not None:
                await _quietly(producer.stop())
            raise
        self._admin, self._producer = admin, producer
        self._view = BrokerView(cluster, topics)
        self._created = set(topics)
        self.connections += 1
        log.info("relay connected to Kafka cluster %s (%d topics)", cluster, len(topics))
        return self._view

    async def _refuses_idempotence(self, error: KafkaError) -> bool:
        """Whether a producer that failed to start with idempotence (with an error that is not
        about reaching the broker) starts without it."""
        if not self.config.idempotence or getattr(error, "retriable", False):
            return False
        plain = AIOKafkaProducer(**{**self.config.producer_kwargs(), "enable_idempotence": False})
        try:
            await plain.start()
        except KafkaError:
            return False
        finally:
            await _quietly(plain.stop())
        return True

    async def _describe(self) -> BrokerView:
        await self._connect()
        assert self._admin is not None
        cluster: str = (await self._admin.describe_cluster())["cluster_id"]
        return BrokerView(cluster, frozenset(await self._admin.list_topics()))

    async def _cluster_id(self) -> str:
        await self._connect()
        assert self._admin is not None
        cluster: str = (await self._admin.describe_cluster())["cluster_id"]
        return cluster

    async def _ensure_topics(self, names: set[str]) -> None:
        missing = sorted(names - self._created)
        if not missing:
            return
        assert self._admin is not None
        response = await self._admin.create_topics(
            [
                NewTopic(name, self.config.partitions, self.config.replication_factor)
                for name in missing
            ]
        )
        for name, code, *rest in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                message = rest[0] if rest else ""
                raise KafkaError(f"cannot create topic {name}: error {code} {message}")
        self._created.update(missing)
        log.info("created topics %s", ", ".join(missing))

    async def _publish(self, events: Sequence[WireEvent]) -> Counter[str]:
        await self._connect()
        producer = self._producer
        assert producer is not None
        prefix = self.config.topic_prefix
        by_topic: dict[str, list[WireEvent]] = {}
        for event in events:
            by_topic.setdefault(topic_for(event.aggregate_type, prefix), []).append(event)
        await self._ensure_topics(set(by_topic))
        if self._enqueue is None:
            self._enqueue = asyncio.Lock()
        acks: list[asyncio.Future[Any]] = []
        async with self._enqueue:  # the batches of one call are queued before the next's
            for topic, records in by_topic.items():
                acks += await self._send(producer, topic, records)
        await asyncio.gather(*acks)
        published = Counter({topic: len(records) for topic, records in by_topic.items()})
        for topic, count in published.items():
            metrics.RELAY_PUBLISHED.labels(topic).inc(count)
        return published

    async def _send(
        self, producer: AIOKafkaProducer, topic: str, events: Sequence[WireEvent]
    ) -> list[asyncio.Future[Any]]:
        """Queue the records in record batches per partition (a full batch is queued and the
        next one begun); the futures of their acknowledgements."""
        partitions = sorted(await producer.partitions_for(topic))
        acks: list[asyncio.Future[Any]] = []
        building: dict[int, BatchBuilder] = {}
        for event in events:
            key = str(event.aggregate_id).encode()
            partition = self._partitioner(key, partitions, partitions)
            headers = kafka_headers(event)
            batch = building.get(partition)
            if (
                batch is None
                or batch.append(timestamp=None, key=key, value=event.body, headers=headers) is None
            ):
                if batch is not None:
                    acks.append(await _queue(producer, batch, topic, partition))
                batch = building[partition] = producer.create_batch()
                if batch.append(timestamp=None, key=key, value=event.body, headers=headers) is None:
                    raise KafkaError(f"event {event.event_id} does not fit in a record batch")
        for partition, batch in building.items():
            acks.append(await _queue(producer, batch, topic, partition))
        return acks

    async def _disconnect(self) -> None:
        producer, admin = self._producer, self._admin
        self._producer = self._admin = self._view = None
        self._created = set()
        if producer is not None:
            await _quietly(producer.stop())
        if admin is not None:
            await _quietly(admin.close())


async def _queue(
    producer: AIOKafkaProducer, batch: BatchBuilder, topic: str, partition: int
) -> asyncio.Future[Any]:
    """Queue a record batch; closed first, so it goes out at once (no linger: it is whole)."""
    batch.close()
    future: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)
    return future


async def _quietly(closing: Coroutine[Any, Any, Any], timeout_s: float = 2.0) -> None:
    """Close a client, giving up after a moment (a producer flushes to a broker that may be
    gone); what it had in flight is published again from the event store."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout_s):
            await closing
