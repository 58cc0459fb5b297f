"""Publishing envelopes to Kafka with aiokafka, from blocking code (the relay's follower).

The async clients live on a private event loop in a background thread. Topics are created
explicitly, with the configured partitions, before anything is produced to them (a broker that
auto-creates topics would otherwise pick its own partition count). Any failure drops the
clients: the next attempt starts with a *new* producer and admin client, which is what a broker
that restarted empty needs (see kafka_notes.md), and raises :class:`BrokerUnavailable`, a
``ConnectionError`` the follower retries with backoff for as long as it takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from flowledger.eventlog.envelope import Envelope, encode, topic_for
from flowledger.kafka.config import KafkaSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

TOPIC_ALREADY_EXISTS = 36


class BrokerUnavailable(ConnectionError):
    """The broker could not be reached or did not acknowledge; try again later."""


@dataclass(frozen=True)
class BrokerView:
    cluster_id: str
    topics: frozenset[str]


class LoopThread:
    """An event loop running in a daemon thread, for async clients used from blocking code."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


def kafka_headers(envelope: Envelope) -> list[tuple[str, bytes]]:
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

    def cluster_id(self) -> str:
        return self._loop.run(self._guarded(self._cluster_id()))

    def publish(self, envelopes: Sequence[Envelope]) -> set[str]:
        """Publish and wait for every acknowledgement; the topics published to."""
        return self._loop.run(self._guarded(self._publish(envelopes)))

    def disconnect(self) -> None:
        self._loop.run(self._disconnect())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.disconnect()
        self._loop.close()

    # ------------------------------------------------------------------ async internals
    async def _guarded(self, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await coroutine
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
            await producer.start()
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

    async def _publish(self, envelopes: Sequence[Envelope]) -> set[str]:
        await self._connect()
        assert self._producer is not None
        prefix = self.config.topic_prefix
        topics = {topic_for(e.aggregate_type, prefix) for e in envelopes}
        await self._ensure_topics(topics)
        acks = []
        for envelope in envelopes:
            acks.append(
                await self._producer.send(
                    topic_for(envelope.aggregate_type, prefix),
                    value=encode(envelope),
                    key=str(envelope.aggregate_id).encode(),
                    headers=kafka_headers(envelope),
                )
            )
        await asyncio.gather(*acks)
        return topics

    async def _disconnect(self) -> None:
        producer, admin = self._producer, self._admin
        self._producer = self._admin = self._view = None
        self._created = set()
        if producer is not None:
            await _quietly(producer.stop())
        if admin is not None:
            await _quietly(admin.close())


async def _quietly(closing: Coroutine[Any, Any, Any], timeout_s: float = 2.0) -> None:
    """Close a client, giving up after a moment (a producer flushes to a broker that may be
    gone); what it had in flight is published again from the event store."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout_s):
            await closing
