"""The AsyncAPI 3 document for integrators, generated from the code: the envelope schema comes
from :class:`~flowledger.eventlog.envelope.Envelope`, and the topics, event types and each event's
``data`` schema from the aggregates in :mod:`flowledger.domain` (so new aggregates appear
without changes here)."""

from __future__ import annotations

import importlib
import pkgutil
import typing
from functools import lru_cache
from typing import Any, ClassVar

import msgspec
from eventsourcing.domain import Aggregate

from flowledger import __version__
from flowledger.eventlog.envelope import DEFAULT_TOPIC_PREFIX, Envelope, plural, topic_for
from flowledger.eventlog.store import ENVELOPE_FIELDS, aggregate_type, event_type, is_internal
from flowledger.kafka.config import KafkaSettings
from flowledger.runtime.settings import Settings

REF = "#/components/schemas/{name}"
SIGNING = (
    "Each delivery is a POST of one envelope (`Content-Type: application/json`) with headers "
    "`X-Flowledger-Event-Id`, `X-Flowledger-Event-Type`, `X-Flowledger-Delivery-Id`, "
    "`X-Flowledger-Delivery-Attempt`, `X-Flowledger-Timestamp` (Unix seconds) and "
    "`X-Flowledger-Signature: t=<timestamp>,v1=<hex>` where hex is "
    "HMAC-SHA256(secret, `<timestamp>.<raw body>`). Verify it with a constant-time comparison "
    "and refuse timestamps older than a few minutes. Any 2xx acknowledges; anything else (or no "
    "answer within the timeout) is retried with exponential backoff. Deliveries to one webhook "
    "are sent one at a time in log order."
)
KAFKA_HEADERS = {
    "type": "object",
    "properties": {
        "event_type": {"type": "string", "description": "The envelope's event_type."},
        "event_id": {"type": "string", "description": "The envelope's event_id."},
        "aggregate_type": {"type": "string"},
        "position": {"type": "string", "description": "Global position, decimal."},
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context, when known."},
    },
}


def public_event_classes() -> dict[str, list[type[Any]]]:
    """Every public aggregate type and its event classes, found in ``flowledger.domain``."""
    from flowledger import domain  # noqa: PLC0415

    found: dict[str, list[type[Any]]] = {}
    for info in pkgutil.iter_modules(domain.__path__):
        module = importlib.import_module(f"{domain.__name__}.{info.name}")
        for candidate in vars(module).values():
            if (
                isinstance(candidate, type)
                and issubclass(candidate, Aggregate)
                and candidate.__module__ == module.__name__
                and not is_internal(_topic(candidate))
            ):
                found[aggregate_type(_topic(candidate))] = _events_of(candidate)
    return dict(sorted(found.items()))


def _topic(cls: type[Any]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _events_of(aggregate: type[Aggregate]) -> list[type[Any]]:
    nested = [
        v
        for k, v in vars(aggregate).items()
        if isinstance(v, type) and issubclass(v, Aggregate.Event)
    ]
    created = [e for e in nested if issubclass(e, Aggregate.Created)]
    auto = {"Event"} | ({"Created"} if len(created) > 1 else set())
    return [e for e in nested if e.__name__ not in auto]


def _data_struct(event_class: type[Any]) -> type[msgspec.Struct] | None:
    try:
        hints = typing.get_type_hints(event_class)
    except (NameError, TypeError):
        return None
    fields = [
        (name, hint)
        for name, hint in hints.items()
        if name not in ENVELOPE_FIELDS
        and name != "originator_id_type"
        and typing.get_origin(hint) is not ClassVar
    ]
    return msgspec.defstruct(f"{event_type(_topic(event_class))}Data", fields)


@lru_cache(maxsize=4)
def _components() -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]:
    classes = public_event_classes()
    structs: list[Any] = [Envelope]
    names: dict[str, list[str]] = {}
    for aggregate, events in classes.items():
        names[aggregate] = []
        for event_class in events:
            name = event_type(_topic(event_class))
            names[aggregate].append(name)
            struct = _data_struct(event_class)
            if struct is not None:
                structs.append(struct)
    try:
        _, schemas = msgspec.json.schema_components(structs, ref_template=REF)
    except (TypeError, ValueError):
        _, schemas = msgspec.json.schema_components([Envelope], ref_template=REF)
    messages: dict[str, Any] = {}
    for aggregate, event_names in names.items():
        for name in event_names:
            data = {"$ref": REF.format(name=f"{name}Data")} if f"{name}Data" in schemas else {}
            messages[name] = {
                "name": name,
                "title": name,
                "summary": f"{name} ({aggregate})",
                "contentType": "application/json",
                "headers": KAFKA_HEADERS,
                "payload": {
                    "allOf": [
                        {"$ref": REF.format(name="Envelope")},
                        {
                            "type": "object",
                            "properties": {
                                "event_type": {"const": name},
                                "aggregate_type": {"const": aggregate},
                                **({"data": data} if data else {}),
                            },
                        },
                    ]
                },
            }
    return schemas, messages, names


def asyncapi_document(settings: Settings) -> dict[str, Any]:
    kafka = KafkaSettings.from_settings(settings)
    prefix = kafka.topic_prefix if kafka else DEFAULT_TOPIC_PREFIX
    schemas, messages, names = _components()
    every = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for aggregate, event_names in names.items():
        channel = plural(aggregate)
        channels[channel] = {
            "address": topic_for(aggregate, prefix),
            "title": f"{channel} events",
            "description": f"Every {aggregate} event, keyed by aggregate_id (one partition per "
            "aggregate, so its events stay in order). At least once: drop duplicates by "
            "event_id.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in event_names},
        }
        operations[f"publish{channel.title().replace('_', '')}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"The relay publishes each {aggregate} event.",
        }
    channels["eventStream"] = {
        "address": "/api/v1/events/stream",
        "title": "Live stream (Server-Sent Events)",
        "description": "SSE message id = position, data = envelope; resume with Last-Event-ID.",
        "servers": [{"$ref": "#/servers/api"}],
        "messages": every,
    }
    channels["webhooks"] = {
        "address": None,
        "title": "Webhook deliveries",
        "description": SIGNING,
        "servers": [{"$ref": "#/servers/webhooks"}],
        "messages": every,
    }
    operations["streamEvents"] = {"action": "send", "channel": {"$ref": "#/channels/eventStream"}}
    operations["deliverWebhooks"] = {"action": "send", "channel": {"$ref": "#/channels/webhooks"}}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "flowledger events",
            "version": __version__,
            "description": "Every event flowledger records, in one envelope, on Kafka, on the "
            "live stream and to webhooks. In order per aggregate, at least once, replayable.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": kafka.bootstrap_servers if kafka else "localhost:9092",
                "protocol": "kafka",
                "description": "Topics `<prefix>.<aggregate type plural>.v1`.",
            },
            "api": {"host": f"{settings.host}:{settings.port}", "protocol": "http"},
            "webhooks": {"host": "your-receiver.example", "protocol": "https"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }
