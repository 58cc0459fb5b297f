"""Consuming flowledger's topics: a consumer-group reader of envelopes that drops duplicates.

The relay is at least once (a crash or a broker that restarted empty makes it publish again),
so every consumer must be idempotent. :class:`Deduplicator` keeps, per aggregate, the last
version seen and drops anything not newer: a record seen again, or a whole history published
again. It relies on Kafka's per-key order (one aggregate, one partition), and holds a bounded
number of aggregates. :class:`EnvelopeConsumer` subscribes by pattern (no metadata request
ever names a topic that does not exist yet, so nothing gets auto-created), commits after each
batch the caller has handled, and is meant to be reused by the executor::

    async with EnvelopeConsumer(config, group_id="executor", aggregate_types=["run"]) as c:
        while True:
            for envelope in await c.getmany():
                handle(envelope)
            await c.commit()
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final, Self
from uuid import UUID

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaConnectionError

from flowledger.eventlog.envelope import TOPIC_VERSION, Envelope, decode, plural
from flowledger.kafka.config import KafkaSettings

log = logging.getLogger(__name__)

GROUP_SETTINGS: Final[dict[str, Any]] = {
    "session_timeout_ms": 10000,
    "heartbeat_interval_ms": 3000,
}
FAST_GROUP_SETTINGS: Final[dict[str, Any]] = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 200,
    "rebalance_timeout_ms": 2000,
    "metadata_max_age_ms": 1000,
    "fetch_max_wait_ms": 20,
}
"""Group timings for the embedded broker, dev, tests and tails: joins in about a second, new
topics noticed within a second, and a fetch that waits at most 20 ms: a group member of the
embedded (Tansu) broker gets new records only when its fetch wait runs out (~140 ms median with
the default 500 ms, up to 50 ms with 50), which delays every event's delivery by as much. (The
executors' group is slower: they hear of runs from their own feed first, ADR 0024.)"""


class Deduplicator:
    def __init__(self, max_aggregates: int = 100_000) -> None:
        self._versions: OrderedDict[UUID, int] = OrderedDict()
        self._max = max_aggregates

    def is_new(self, envelope: Envelope) -> bool:
        """True the first time an aggregate version is seen (and remembers it)."""
        last = self._versions.get(envelope.aggregate_id)
        if last is not None and envelope.aggregate_version <= last:
            return False
        self._versions[envelope.aggregate_id] = envelope.aggregate_version
        self._versions.move_to_end(envelope.aggregate_id)
        if len(self._versions) > self._max:
            self._versions.popitem(last=False)
        return True


def topic_pattern(prefix: str, aggregate_types: Sequence[str] = ()) -> str:
    """The regex of flowledger's topics (of some aggregate types, singular or plural)."""
    if aggregate_types:
        names = sorted({n for t in aggregate_types for n in (t, plural(t))})
        kinds = "(" + "|".join(re.escape(n) for n in names) + ")"
    else:
        kinds = "[A-Za-z0-9_]+"
    return f"^{re.escape(prefix)}\\.{kinds}\\.{TOPIC_VERSION}$"


class _StartAt(ConsumerRebalanceListener):  # type: ignore[misc]
    """On the first assignment, start each partition at the first record produced at or after
    ``time_ms`` (its end when there is none); partitions that appear later are read from their
    start. The position is committed, so a later rebalance does not rewind."""

    def __init__(self, consumer: AIOKafkaConsumer, time_ms: int) -> None:
        self.consumer = consumer
        self.time_ms = time_ms
        self.first = True

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if not self.first:
            return
        self.first = False
        if not assigned:
            return
        found = await self.consumer.offsets_for_times({tp: self.time_ms for tp in assigned})
        for tp in assigned:
            at = found.get(tp)
            if at is not None and at.timestamp >= 0:  # (Tansu answers -1 for "none")
                self.consumer.seek(tp, at.offset)
            else:
                await self.consumer.seek_to_end(tp)
        offsets = {tp: await self.consumer.position(tp) for tp in assigned}
        await self.consumer.commit(offsets)


class EnvelopeConsumer:
    def __init__(
        self,
        config: KafkaSettings,
        *,
        group_id: str,
        aggregate_types: Sequence[str] = (),
        from_beginning: bool = True,
        start_time_ms: int | None = None,
        dedupe: bool = True,
        group_settings: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        kwargs = {**config.consumer_kwargs(), **(group_settings or GROUP_SETTINGS)}
        self.consumer = AIOKafkaConsumer(group_id=group_id, auto_offset_reset="earliest", **kwargs)
        listener = None
        if not from_beginning:
            now_ms = int(time.time() * 1000)
            listener = _StartAt(self.consumer, now_ms if start_time_ms is None else start_time_ms)
        self.consumer.subscribe(
            pattern=topic_pattern(config.topic_prefix, aggregate_types), listener=listener
        )
        self.deduplicator = Deduplicator() if dedupe else None
        self.undecodable = 0

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def getmany(self, timeout_ms: int = 500) -> list[Envelope]:
        """The next envelopes (new ones only, when deduplicating), in order per aggregate."""
        batches = await self.consumer.getmany(timeout_ms=timeout_ms)
        found: list[Envelope] = []
        for records in batches.values():
            for record in records:
                try:
                    envelope = decode(record.value)
                except msgspec.DecodeError:
                    self.undecodable += 1
                    continue
                if self.deduplicator is None or self.deduplicator.is_new(envelope):
                    found.append(envelope)
        return found

    async def commit(self) -> None:
        """Commit what :meth:`getmany` returned: call after handling it. A commit lost to a
        rebalance only means some records come again (and are dropped as duplicates)."""
        if not self.consumer.assignment():
            return
        try:
            await self.consumer.commit()
        except (CommitFailedError, IllegalStateError, KafkaConnectionError) as error:
            log.info("commit skipped (%s); records may come again", type(error).__name__)

    def assignment(self) -> set[TopicPartition]:
        return set(self.consumer.assignment())
