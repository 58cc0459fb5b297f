"""Webhooks over HTTP, with the projections and the webhook sender running in-process and real
local receivers: signed deliveries in log order, retries after failures, every attempt shown,
a dead receiver that holds up nobody else, and secrets that never come back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from flowledger.eventlog.envelope import envelopes
from flowledger.http.app import create_app
from flowledger.projections.tables import audit_log
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.conftest import make_settings
from tests.support.http import ApiClient
from tests.support.receiver import running_receiver

pytestmark = pytest.mark.e2e

WEBHOOKS = "/api/v1/webhooks"
AGENTS = "/api/v1/agents"
SECRET = "whsec-0123456789abcdef"


@pytest.fixture
def settings(database: Database) -> Settings:
    return make_settings(
        database,
        extra={
            "FLOWLEDGER_WEBHOOK_RETRY_INITIAL": "0.05",
            "FLOWLEDGER_WEBHOOK_RETRY_MAX": "0.2",
            "FLOWLEDGER_WEBHOOK_TIMEOUT": "60",
            "FLOWLEDGER_WEBHOOK_MAX_ATTEMPTS": "5",
        },
    )


@pytest.fixture
def api(settings: Settings, runtime: Runtime) -> Iterator[ApiClient]:
    app = create_app(settings, runtime=runtime, workers=("projections", "webhooks"))
    with ApiClient(app) as client:
        yield client


def register_webhook(api: ApiClient, url: str, **fields: Any) -> dict[str, Any]:
    response = api.post(WEBHOOKS, json={"url": url, "secret": SECRET, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def register_agent(api: ApiClient, name: str) -> dict[str, Any]:
    response = api.post(AGENTS, json={"name": name, "url": "http://127.0.0.1:9101"})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_receiver_that_fails_twice_gets_the_delivery_on_retry_signed_and_in_order(
    api: ApiClient,
) -> None:
    with running_receiver(SECRET, fail_first=2) as receiver:
        hook = register_webhook(api, receiver.url, event_types=["Agent*"])
        agent = register_agent(api, "echo")
        api.put(f"{AGENTS}/{agent['id']}", json={"timeout_ms": 5000})
        api.delete(f"{AGENTS}/{agent['id']}")
        receiver.wait_for(lambda r: len(r.accepted) == 3)

    assert all(d.signature_valid for d in receiver.deliveries)
    assert [d.answered for d in receiver.deliveries[:3]] == [500, 500, 200]
    accepted = [d.envelope for d in receiver.accepted]
    assert [e.event_type for e in accepted] == ["AgentRegistered", "AgentUpdated", "AgentDeleted"]
    assert [e.aggregate_version for e in accepted] == [1, 2, 3]
    assert {str(e.aggregate_id) for e in accepted} == {agent["id"]}
    first = receiver.accepted[0]
    assert first.headers["X-Flowledger-Event-Id"] == str(accepted[0].event_id)
    assert first.headers["X-Flowledger-Event-Type"] == "AgentRegistered"
    assert first.headers["X-Flowledger-Delivery-Attempt"] == "3"

    deliveries = api.get(f"{WEBHOOKS}/{hook['id']}/deliveries", params={"order": "asc"}).json()
    assert deliveries["total"] == 3
    registered = deliveries["items"][0]
    assert registered["event_type"] == "AgentRegistered"
    assert registered["status"] == "succeeded"
    assert registered["attempt_count"] == 3
    assert [(a["attempt"], a["status_code"], a["succeeded"]) for a in registered["attempts"]] == [
        (1, 500, False),
        (2, 500, False),
        (3, 200, True),
    ]
    assert registered["attempts"][0]["response_excerpt"] == "try again later"
    assert {d["status"] for d in deliveries["items"]} == {"succeeded"}


def test_a_dead_receiver_does_not_delay_another_webhooks_deliveries(api: ApiClient) -> None:
    with (
        running_receiver(SECRET, hang=True) as dead,
        running_receiver(SECRET) as alive,
    ):
        stuck = register_webhook(api, dead.url, event_types=["AgentRegistered"])
        register_webhook(api, alive.url, event_types=["AgentRegistered"])
        for name in ("a", "b", "c"):
            register_agent(api, name)
        alive.wait_for(lambda r: len(r.accepted) == 3)

        assert [d.envelope.data["name"] for d in alive.accepted] == ["a", "b", "c"]
        assert dead.accepted == []
        pending = api.get(f"{WEBHOOKS}/{stuck['id']}/deliveries").json()["items"]
        assert {d["status"] for d in pending} == {"pending"}
        assert all(d["attempts"] == [] for d in pending)  # the first POST is still hanging


def test_register_list_read_and_delete_webhooks_without_ever_showing_the_secret(
    api: ApiClient, runtime: Runtime
) -> None:
    hook = register_webhook(
        api, "https://example.com/hook", event_types=["Run*", "AgentDeleted"], description="ops"
    )
    assert hook["event_types"] == ["Run*", "AgentDeleted"]
    assert hook["status"] == "active"
    assert api.get(f"{WEBHOOKS}/{hook['id']}").json() == hook
    listed = api.get(WEBHOOKS).json()
    assert listed["total"] == 1 and listed["items"] == [hook]
    everything = api.get(WEBHOOKS).text + api.get(f"{WEBHOOKS}/{hook['id']}").text
    assert SECRET not in everything
    [event] = envelopes(runtime.store, runtime.store.read(None, 10))
    assert event.event_type == "WebhookRegistered"
    assert event.data["secret"] == "********"
    with runtime.engine.connect() as conn:
        audited = [str(c) for c in conn.execute(select(audit_log.c.changes)).scalars()]
    assert SECRET not in "".join(audited)

    assert api.delete(f"{WEBHOOKS}/{hook['id']}").status_code == 204
    assert api.delete(f"{WEBHOOKS}/{hook['id']}").status_code == 204
    assert api.get(f"{WEBHOOKS}/{hook['id']}").json()["status"] == "deleted"
    assert api.get(WEBHOOKS).json()["total"] == 0
    assert api.get(WEBHOOKS, params={"status": "all"}).json()["total"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"secret": SECRET}, "url"),
        ({"url": "ftp://x", "secret": SECRET}, "url"),
        ({"url": "http://x"}, "secret"),
        ({"url": "http://x", "secret": "short"}, "secret"),
        ({"url": "http://x", "secret": SECRET, "event_types": ["Agent Registered"]}, "event_types"),
        ({"url": "http://x", "secret": SECRET, "colour": "red"}, "colour"),
    ],
)
def test_invalid_webhooks_are_422s_naming_the_field(
    api: ApiClient, body: dict[str, Any], field: str
) -> None:
    response = api.post(WEBHOOKS, json=body)
    assert response.status_code == 422, response.text
    assert any(e["field"].startswith(field) for e in response.json()["errors"])


def test_unknown_webhooks_are_404s(api: ApiClient) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert api.get(f"{WEBHOOKS}/{missing}").status_code == 404
    assert api.delete(f"{WEBHOOKS}/{missing}").status_code == 404
    assert api.get(f"{WEBHOOKS}/{missing}/deliveries").status_code == 404


def test_deleting_a_webhook_cancels_its_pending_deliveries(api: ApiClient) -> None:
    with running_receiver(SECRET, hang=True) as dead:
        hook = register_webhook(api, dead.url, event_types=["AgentRegistered"])
        register_agent(api, "one")
        register_agent(api, "two")
        api.delete(f"{WEBHOOKS}/{hook['id']}")
        items = api.get(f"{WEBHOOKS}/{hook['id']}/deliveries").json()["items"]
    assert {d["status"] for d in items} == {"cancelled"}
