"""The one event store: an ``eventsourcing`` application on PostgreSQL.

All aggregates share one events table, so every event has one global position (its
notification id). Every event is stamped with :class:`EventMetadata` (who, which request,
which trace) when it is saved; the library's mapper stores the stamp with the event's state.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cached_property
from typing import Any, TypeVar
from uuid import UUID

import msgspec
from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Notification, Recording
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import Environment

from flowledger.domain.errors import ConcurrentModification, NotFound
from flowledger.eventlog.notify import Notifier
from flowledger.observability import metrics
from flowledger.observability.tracing import traceparent_of
from flowledger.runtime.database import Database

APPLICATION_NAME = "flowledger"
EVENTS_TABLE = f"{APPLICATION_NAME}_events"
INTERNAL_TOPIC_PREFIXES = ("flowledger.domain.names:",)
"""Events of bookkeeping aggregates (name claims) that never leave the system."""

A = TypeVar("A", bound=Aggregate)
POOL_WAIT_S = 0.5


class EventMetadata(msgspec.Struct, frozen=True):
    """Who caused an event, and in which request and trace."""

    actor: str
    correlation_id: str
    traceparent: str | None = None

    @classmethod
    def system(cls, actor: str = "system", correlation_id: str | None = None) -> EventMetadata:
        return cls(actor=actor, correlation_id=correlation_id or str(uuid.uuid4()))

    def in_current_trace(self) -> EventMetadata:
        """This stamp with the current span's trace context, when there is a valid one."""
        current = traceparent_of()
        if current is None or current == self.traceparent:
            return self
        return msgspec.structs.replace(self, traceparent=current)


def metadata_of(event: object) -> EventMetadata:
    raw = getattr(event, "metadata", None)
    if isinstance(raw, dict):
        return msgspec.convert(raw, EventMetadata)
    return EventMetadata(actor="unknown", correlation_id="")


ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "metadata", "originator_topic"}
)


def event_data(event: object) -> dict[str, Any]:
    """The event's own fields as JSON-ready builtins (ids, times and the stamp left out)."""
    fields = {k: v for k, v in vars(event).items() if k not in ENVELOPE_FIELDS}
    data: dict[str, Any] = msgspec.to_builtins(fields)
    return data


def event_type(event_or_topic: object) -> str:
    """The public name of an event: ``Agent.Registered`` is ``AgentRegistered``."""
    topic = event_or_topic if isinstance(event_or_topic, str) else _topic_of(event_or_topic)
    return topic.rsplit(":", 1)[-1].replace(".", "")


def aggregate_type(event_or_topic: object) -> str:
    """The public name of the aggregate an event belongs to: ``agent``, ``workflow``, ``run``."""
    topic = event_or_topic if isinstance(event_or_topic, str) else _topic_of(event_or_topic)
    qualname = topic.rsplit(":", 1)[-1]
    return snake_case(qualname.split(".", 1)[0])


def is_internal(topic: str) -> bool:
    return topic.startswith(INTERNAL_TOPIC_PREFIXES)


def _topic_of(event: object) -> str:
    cls = type(event)
    return f"{cls.__module__}:{cls.__qualname__}"


def snake_case(name: str) -> str:
    out = []
    for i, char in enumerate(name):
        if char.isupper() and i:
            out.append("_")
        out.append(char.lower())
    return "".join(out)


class EventStore(Application[UUID]):
    """The write side's store, and the log every follower reads."""

    name = APPLICATION_NAME

    def __init__(
        self, database: Database, *, pool_size: int = 5, idle_timeout_s: float = 0.0
    ) -> None:
        """``pool_size``: the most connections the store opens; it keeps one while idle and
        closes the others, one at a time, each ``idle_timeout_s`` they go unused (0: never)."""
        self.database = database
        self._idle_timeout_s = idle_timeout_s
        super().__init__(env=database.eventsourcing_env(pool_size))
        # How long one attempt waits for a pooled connection. The library retries each call
        # 10 times, so while the database is down a command fails (HTTP 503) after ~7 s
        # rather than after 10 x POSTGRES_CONNECT_TIMEOUT (whole seconds only).
        self.application_recorder.datastore.pool.timeout = POOL_WAIT_S

    def construct_factory(self, env: Environment) -> InfrastructureFactory:
        """The library's factory, its pool named and set up before it opens (the recorders
        open it as they are made). The library's pool hands connections out in turn, so it
        shrinks its own way (``max_idle``), not by the server's idle timeout."""
        factory = super().construct_factory(env)
        if isinstance(factory, PostgresFactory):
            pool = factory.datastore.pool
            assert isinstance(pool.kwargs, dict)
            pool.kwargs.update(self.database.session_parameters())
            if self._idle_timeout_s > 0:
                pool.max_idle = self._idle_timeout_s
        return factory

    @cached_property
    def notifier(self) -> Notifier:
        """The NOTIFY sent with each append, shared by this process's followers of the store."""
        return Notifier(self.database, EVENTS_TABLE)

    def close(self) -> None:
        if "notifier" in self.__dict__:
            self.notifier.close()
        super().close()

    @property
    def application_recorder(self) -> PostgresApplicationRecorder:
        assert isinstance(self.recorder, PostgresApplicationRecorder)
        return self.recorder

    def get(self, aggregate_class: type[A], aggregate_id: UUID, *, kind: str | None = None) -> A:
        """The aggregate, or :class:`NotFound` when there is none of that class with that id."""
        label = kind or aggregate_class.__name__.lower()
        try:
            aggregate: object = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(f"{label} {aggregate_id} not found") from None
        if not isinstance(aggregate, aggregate_class):
            raise NotFound(f"{label} {aggregate_id} not found")
        return aggregate

    def find(self, aggregate_class: type[A], aggregate_id: UUID) -> A | None:
        try:
            return self.get(aggregate_class, aggregate_id)
        except NotFound:
            return None

    def record(self, *aggregates: Aggregate | None, metadata: EventMetadata) -> int | None:
        """Append the aggregates' pending events atomically; the position of the last one.

        ``None`` when there was nothing to append. A conflicting concurrent append raises
        :class:`ConcurrentModification` and appends nothing. The events carry ``metadata``
        with the current span's trace context, so whoever handles them continues the trace.
        """
        try:
            recordings = self.save(*aggregates, metadata=metadata.in_current_trace())
        except IntegrityError as error:
            raise ConcurrentModification(
                "the entity was changed by another request; read it again and retry"
            ) from error
        for recording in recordings:
            metrics.EVENTS_APPENDED.labels(event_type=event_type(recording.domain_event)).inc()
        return last_position(recordings)

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        metadata = processing_event.saved_kwargs.pop("metadata", None)
        if metadata is not None:
            stamp = msgspec.to_builtins(metadata)
            for domain_event in processing_event.events:
                object.__setattr__(domain_event, "metadata", stamp)
        return super()._record(processing_event)

    def read(
        self, after: int | None, limit: int, until: int | None = None
    ) -> Sequence[Notification]:
        """Up to ``limit`` stored events after position ``after`` (from the start when None)."""
        return self.recorder.select_notifications(
            start=after, limit=limit, stop=until, inclusive_of_start=after is None
        )

    def decode(self, notification: Notification) -> DomainEventProtocol[Any]:
        return self.mapper.to_domain_event(notification)

    def head(self) -> int:
        """The position of the newest event (0 when the store is empty)."""
        return self.recorder.max_notification_id() or 0


def last_position(recordings: Sequence[Recording[UUID]]) -> int | None:
    if not recordings:
        return None
    return max(recording.notification.id for recording in recordings)
