"""Reading what the relay published, straight from the broker, for assertions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from flowledger.eventlog.envelope import Envelope, decode
from flowledger.eventlog.envelope import envelopes as envelopes_of
from flowledger.eventlog.store import EventStore
from flowledger.kafka.config import KafkaSettings
from tests.support.polling import eventually_async


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    offset: int
    key: bytes
    headers: dict[str, bytes]
    envelope: Envelope


def kafka_settings(bootstrap: str, prefix: str, **overrides: object) -> KafkaSettings:
    base = KafkaSettings(
        bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        idempotence=False,
        request_timeout_ms=2000,
        check_interval_s=0.2,
    )
    return KafkaSettings(**{**base.__dict__, **overrides})  # type: ignore[arg-type]


async def topics_with_prefix(bootstrap: str, prefix: str) -> dict[str, int]:
    """The prefix's topics and their partition counts."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(f"{prefix}."))
        if not names:
            return {}
        described = await admin.describe_topics(names)
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


async def read_published(
    bootstrap: str, prefix: str, expected_ids: Iterable[UUID], timeout_s: float = 30.0
) -> list[Published]:
    """Everything on the prefix's topics, from the start to the end, once every expected event
    id has been seen (a guard timeout fails the test otherwise)."""
    wanted = set(expected_ids)

    def missing(found: list[Published]) -> set[UUID]:
        return wanted - {p.envelope.event_id for p in found}

    return await eventually_async(
        lambda: _read_to_end(bootstrap, prefix),
        lambda found: not missing(found),
        what=f"{len(wanted)} events on the {prefix}.* topics",
        timeout_s=timeout_s,
        interval_s=0.1,
        describe=lambda found: f"{len(found)} published, {len(missing(found))} of ours missing",
    )


async def _read_to_end(bootstrap: str, prefix: str) -> list[Published]:
    topics = await topics_with_prefix(bootstrap, prefix)
    if not topics:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t, count in topics.items() for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[Published] = []
        done: set[TopicPartition] = set()
        while len(done) < len(partitions):
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    found.append(
                        Published(
                            r.topic, r.partition, r.offset, r.key, dict(r.headers), decode(r.value)
                        )
                    )
            for tp in partitions:
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    done.add(tp)
        return found
    finally:
        await consumer.stop()


def expected_envelopes(store: EventStore) -> list[Envelope]:
    return envelopes_of(store, store.read(None, 1_000_000))


def by_aggregate(published: Iterable[Published]) -> dict[UUID, list[int]]:
    """Each aggregate's versions in the order they appear on their partition."""
    ordered = sorted(published, key=lambda p: (p.topic, p.partition, p.offset))
    versions: dict[UUID, list[int]] = defaultdict(list)
    for p in ordered:
        versions[p.envelope.aggregate_id].append(p.envelope.aggregate_version)
    return versions


def without_repeats(versions: list[int]) -> list[int]:
    """What a consumer keeping the last version per aggregate would accept."""
    kept: list[int] = []
    for v in versions:
        if not kept or v > kept[-1]:
            kept.append(v)
    return kept
