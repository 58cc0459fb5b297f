"""The one envelope every event leaves the system in: Kafka, the live stream, webhooks and
``flowledger events tail`` all carry exactly this JSON object.

It is built from the event log alone, generically, so new aggregates (workflows, runs, ...)
flow out without changes here. Name claims are internal and never get an envelope. Secrets in
the event data are masked (:func:`~flowledger.domain.redaction.redact`).

``event_id`` is ``uuid5`` of the aggregate id and version: the same every time an event is
published again (after a relay crash, a broker restart or a replay), so consumers drop
duplicates by it.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from datetime import datetime
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Annotated, Any, Final, NamedTuple, cast
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec
from eventsourcing.persistence import Notification
from msgspec import Meta

from flowledger.domain.redaction import SECRET_KEYS, redact
from flowledger.eventlog.store import (
    ENVELOPE_FIELDS,
    EventStore,
    aggregate_type,
    event_data,
    event_type,
    is_internal,
    metadata_of,
)

_SECRET_KEY_JSON: Final = re.compile(
    b'"(?:' + b"|".join(re.escape(key.encode()) for key in sorted(SECRET_KEYS)) + b')"'
)
"""A key that may name a secret, as JSON writes it."""
_encoder = msgspec.json.Encoder()


def redacted(data: dict[str, Any]) -> dict[str, Any]:
    """:func:`~flowledger.domain.redaction.redact` for an event's fresh JSON builtins, returned
    as they are when no key can name a secret: looking for the keys in its JSON is several times
    cheaper than walking it, and most events (runs, steps) hold none."""
    try:
        encoded = _encoder.encode(data)
    except (TypeError, msgspec.EncodeError):
        return dict(redact(data))
    if _may_hold_secrets(encoded):
        return dict(redact(data))
    return data


def _may_hold_secrets(encoded: bytes) -> bool:
    return _SECRET_KEY_JSON.search(encoded) is not None


def data_json(event: Any, omit: Iterable[str] = ()) -> bytes:
    """The event's own fields (:func:`~flowledger.eventlog.store.event_data`, less ``omit``) as
    JSON with secrets masked, encoded once: the fields are encoded as they are (msgspec writes
    ids and times as ``event_data`` makes them), and only JSON that may hold a secret is
    redacted and encoded again."""
    fields = {k: v for k, v in vars(event).items() if k not in ENVELOPE_FIELDS and k not in omit}
    encoded = _encoder.encode(fields)
    if _may_hold_secrets(encoded):
        return _encoder.encode(redact(msgspec.to_builtins(fields)))
    return encoded


EVENT_ID_NAMESPACE: Final = uuid5(NAMESPACE_URL, "https://flowledger.dev/events")
DEFAULT_TOPIC_PREFIX: Final = "flowledger"
TOPIC_VERSION: Final = "v1"


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """One event, as every subscriber receives it."""

    event_id: Annotated[
        UUID,
        Meta(
            description="Stable id of the event (uuid5 of aggregate id and version): the same "
            "on every re-delivery, so consumers drop duplicates by it."
        ),
    ]
    event_type: Annotated[
        str, Meta(description="Past-tense event name.", examples=["AgentRegistered"])
    ]
    aggregate_type: Annotated[
        str, Meta(description="The kind of entity that changed.", examples=["agent"])
    ]
    aggregate_id: Annotated[UUID, Meta(description="The entity that changed (the Kafka key).")]
    aggregate_version: Annotated[
        int, Meta(ge=1, description="The entity's version after this event: 1, 2, 3... in order.")
    ]
    position: Annotated[
        int,
        Meta(
            ge=1,
            description="Global position in the event log (increasing, with gaps). SSE event id; "
            "resume a stream after it with `Last-Event-ID` or `from_position`.",
        ),
    ]
    occurred_at: Annotated[datetime, Meta(description="When the event was recorded (UTC).")]
    actor: Annotated[str, Meta(description="Who caused it.", examples=["admin"])]
    correlation_id: Annotated[
        str | None, Meta(description="The request that caused it (`X-Correlation-ID`).")
    ]
    traceparent: Annotated[
        str | None, Meta(description="W3C trace context of that request, if any.")
    ]
    data: Annotated[
        dict[str, Any],
        Meta(description="The event's own fields; secrets are masked as `********`."),
    ]


_decoder = msgspec.json.Decoder(Envelope)


def encode(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


def decode(raw: bytes | str) -> Envelope:
    return _decoder.decode(raw)


def event_id_of(aggregate_id: UUID, aggregate_version: int) -> UUID:
    return uuid5(EVENT_ID_NAMESPACE, f"{aggregate_id}:{aggregate_version}")


def envelope_of(event: Any, position: int) -> Envelope:
    """The envelope of a decoded (public) domain event stored at ``position``."""
    meta = metadata_of(event)
    return Envelope(
        event_id=event_id_of(event.originator_id, event.originator_version),
        event_type=event_type(event),
        aggregate_type=aggregate_type(event),
        aggregate_id=event.originator_id,
        aggregate_version=event.originator_version,
        position=position,
        occurred_at=event.timestamp,
        actor=meta.actor,
        correlation_id=meta.correlation_id or None,
        traceparent=meta.traceparent,
        data=redacted(event_data(event)),
    )


class _WireEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """:class:`Envelope` with its ``data`` already encoded: the same fields in the same order,
    so it encodes to the same JSON."""

    event_id: UUID
    event_type: str
    aggregate_type: str
    aggregate_id: UUID
    aggregate_version: int
    position: int
    occurred_at: datetime
    actor: str
    correlation_id: str | None
    traceparent: str | None
    data: msgspec.Raw


class WireEvent(NamedTuple):
    """An event ready to send: its encoded envelope, and what a transport puts beside it."""

    event_id: UUID
    event_type: str
    aggregate_type: str
    aggregate_id: UUID
    position: int
    traceparent: str | None
    body: bytes
    """The envelope's JSON, exactly ``encode(envelope_of(event, position))``."""


@lru_cache(maxsize=512)
def _names(event_class: type[Any]) -> tuple[str, str]:
    """(event type, aggregate type) of an event class."""
    topic = f"{event_class.__module__}:{event_class.__qualname__}"
    return event_type(topic), aggregate_type(topic)


def wire_event(event: Any, position: int) -> WireEvent:
    """The envelope of a decoded (public) event, encoded once: the data is encoded as it is
    (redacted only when it may hold a secret) and copied into the envelope's JSON."""
    public_type, aggregate = _names(cast(Hashable, type(event)))
    meta = metadata_of(event)
    event_id = event_id_of(event.originator_id, event.originator_version)
    body = _encoder.encode(
        _WireEnvelope(
            event_id=event_id,
            event_type=public_type,
            aggregate_type=aggregate,
            aggregate_id=event.originator_id,
            aggregate_version=event.originator_version,
            position=position,
            occurred_at=event.timestamp,
            actor=meta.actor,
            correlation_id=meta.correlation_id or None,
            traceparent=meta.traceparent,
            data=msgspec.Raw(data_json(event)),
        )
    )
    return WireEvent(
        event_id, public_type, aggregate, event.originator_id, position, meta.traceparent, body
    )


def envelopes(store: EventStore, batch: Iterable[Notification]) -> list[Envelope]:
    """The envelopes of a batch of stored events, internal ones left out."""
    return [
        envelope_of(store.decode(notification), notification.id)
        for notification in batch
        if not is_internal(notification.topic)
    ]


def plural(name: str) -> str:
    """``agent`` → ``agents``, ``api_key`` → ``api_keys``, ``policy`` → ``policies``."""
    if name.endswith(("s", "x", "z", "ch", "sh")):
        return name + "es"
    if name.endswith("y") and name[-2:-1] not in ("a", "e", "i", "o", "u"):
        return name[:-1] + "ies"
    return name + "s"


def topic_for(aggregate: str, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """The Kafka topic of an aggregate type: ``flowledger.agents.v1``."""
    return f"{prefix}.{plural(aggregate)}.{TOPIC_VERSION}"


def type_matches(patterns: Iterable[str], public_event_type: str) -> bool:
    """Whether an event type matches any pattern (``RunFailed``, ``Run*``, ``*Deleted``);
    no patterns match everything."""
    patterns = list(patterns)
    return not patterns or any(fnmatchcase(public_event_type, p) for p in patterns)


def aggregate_matches(names: Iterable[str], aggregate: str) -> bool:
    """Whether an aggregate type is among ``names`` (singular or plural: ``run``, ``runs``)."""
    names = list(names)
    return not names or aggregate in names or plural(aggregate) in names


class EventFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which events a subscriber wants; empty fields admit everything."""

    aggregate_types: tuple[str, ...] = ()
    aggregate_ids: tuple[UUID, ...] = ()
    event_types: tuple[str, ...] = ()
    """Exact names or glob patterns (``Run*``)."""
    run_id: str | None = None
    """Events of that run: its own, and any whose data carries ``run_id`` equal to it."""

    def admits_stored(self, notification: Notification) -> bool:
        """A cheap first check on the stored event, before it is decoded."""
        topic = notification.topic
        if is_internal(topic):
            return False
        if self.aggregate_ids and notification.originator_id not in self.aggregate_ids:
            return False
        return aggregate_matches(self.aggregate_types, aggregate_type(topic)) and type_matches(
            self.event_types, event_type(topic)
        )

    def admits(self, envelope: Envelope) -> bool:
        if self.aggregate_ids and envelope.aggregate_id not in self.aggregate_ids:
            return False
        if not aggregate_matches(self.aggregate_types, envelope.aggregate_type):
            return False
        if not type_matches(self.event_types, envelope.event_type):
            return False
        if self.run_id is not None:
            run_id = self.run_id.lower()
            in_data = str(envelope.data.get("run_id", "")).lower()
            return str(envelope.aggregate_id) == run_id or in_data == run_id
        return True
