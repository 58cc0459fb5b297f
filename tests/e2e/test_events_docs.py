"""What integrators read: the AsyncAPI document (generated from the Envelope struct and the
domain), the OpenAPI entries and permissions of the new routes, and readiness reporting how far
the relay and the webhooks are behind."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from flowledger.commands.agents import RegisterAgent, register_agent
from flowledger.eventlog.envelope import Envelope
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.store import EventMetadata
from flowledger.http.permissions import Permission
from flowledger.kafka.embedded import EmbeddedBroker
from flowledger.kafka.relay import Relay
from flowledger.runtime.process import Runtime
from tests.support.http import ApiClient
from tests.support.kafka import kafka_settings

pytestmark = pytest.mark.e2e


def test_the_asyncapi_document_describes_the_envelope_topics_stream_and_webhooks(
    api: ApiClient,
) -> None:
    doc = api.get("/asyncapi.json").json()
    assert doc["asyncapi"] == "3.0.0"
    envelope = doc["components"]["schemas"]["Envelope"]
    assert set(envelope["properties"]) == {f.name for f in msgspec.structs.fields(Envelope)}
    assert set(envelope["required"]) == set(envelope["properties"])
    assert doc["channels"]["agents"]["address"] == "flowledger.agents.v1"
    assert doc["channels"]["webhooks"]["address"] is None
    assert "X-Flowledger-Signature" in doc["channels"]["webhooks"]["description"]
    assert doc["channels"]["eventStream"]["address"] == "/api/v1/events/stream"
    registered = doc["components"]["messages"]["AgentRegistered"]
    data = doc["components"]["schemas"]["AgentRegisteredData"]
    assert {"name", "url", "auth_config"} <= set(data["properties"])
    assert registered["payload"]["allOf"][0] == {"$ref": "#/components/schemas/Envelope"}
    assert "NameClaimClaimed" not in doc["components"]["messages"]  # internal, never published
    assert "WebhookRegistered" in doc["channels"]["webhooks"]["messages"]


def test_the_new_routes_are_documented_and_declare_their_permission(api: ApiClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    operations = {
        op["operationId"]
        for path, item in paths.items()
        if path.startswith(("/api/v1/webhooks", "/api/v1/events")) or path.endswith("/stream")
        for op in item.values()
    }
    assert operations == {
        "registerWebhook",
        "listWebhooks",
        "getWebhook",
        "deleteWebhook",
        "listWebhookDeliveries",
        "streamEvents",
        "streamRunEvents",
    }
    for route in api.app.routes:
        for handler in getattr(route, "route_handlers", []):
            if "OPTIONS" in handler.http_methods:  # Litestar's own CORS preflight answer
                continue
            if route.path.startswith("/api/v1/webhooks"):
                assert handler.opt["permission"] is Permission.ADMIN
            elif route.path.endswith("/events/stream"):
                assert handler.opt["permission"] is Permission.READ


def test_readiness_reports_the_relay_lag_and_the_webhook_backlog(
    api: ApiClient, runtime: Runtime, kafka_broker: EmbeddedBroker
) -> None:
    before = api.get("/health/ready").json()
    assert before.get("relay") is None
    assert before["webhooks"] == {"pending": 0, "failed": 0}

    meta = EventMetadata.system()
    register_agent(runtime.store, RegisterAgent(name="one", url="http://a"), meta)
    config = kafka_settings(kafka_broker.bootstrap_servers, f"ready{uuid.uuid4().hex[:8]}")
    relay = Relay(runtime.store, runtime.engine, config)
    try:
        Follower(runtime.store, relay).catch_up()
    finally:
        relay.close()
    register_agent(runtime.store, RegisterAgent(name="two", url="http://a"), meta)

    ready = api.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["relay"]["position"] < body["head_position"]
    assert body["relay"]["lag_events"] == body["head_position"] - body["relay"]["position"]
    assert body["relay"]["cluster_id"] == kafka_broker.cluster_id
    assert "last_error" not in body["relay"]
