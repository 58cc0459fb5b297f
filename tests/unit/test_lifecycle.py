"""The lifecycle agents, workflows and webhooks share (activate, deactivate, delete, refuse
changes once deleted), specified once for each of them, given/when/then."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    UUIDAsHex,
)

from flowledger.domain.agents import Agent
from flowledger.domain.errors import Conflict
from flowledger.domain.webhooks import Webhook
from flowledger.domain.workflows import Workflow
from flowledger.http.events.asyncapi import public_event_classes
from tests.support.domain import given, history, names, replay, when

pytestmark = pytest.mark.unit

DEFINITION = {"steps": {"fetch": {"agent_name": "fetcher"}}}


def an_agent() -> list[Any]:
    return history(Agent.register(name="summarizer", url="https://agents.example/sum"))


def a_workflow() -> list[Any]:
    return history(
        Workflow.create(
            name="summarise-page", definition=DEFINITION, agents={"fetcher": "active"}, owner="o"
        )
    )


def a_webhook() -> list[Any]:
    return history(Webhook.register(url="https://example.com/hook", secret="0123456789abcdef"))


SWITCHABLE: list[Any] = [
    pytest.param(an_agent, "Agent", "agent 'summarizer'", id="agent"),
    pytest.param(a_workflow, "Workflow", "workflow 'summarise-page'", id="workflow"),
]
DELETABLE: list[Any] = [
    pytest.param(an_agent, "Agent", id="agent"),
    pytest.param(a_workflow, "Workflow", id="workflow"),
    pytest.param(a_webhook, "Webhook", id="webhook"),
]
STORED_TOPICS = [
    ("flowledger.domain.agents:Agent.Activated", an_agent, "activate"),
    ("flowledger.domain.agents:Agent.Deactivated", an_agent, "deactivate"),
    ("flowledger.domain.agents:Agent.Deleted", an_agent, "delete"),
    ("flowledger.domain.workflows:Workflow.Activated", a_workflow, "activate"),
    ("flowledger.domain.workflows:Workflow.Deactivated", a_workflow, "deactivate"),
    ("flowledger.domain.workflows:Workflow.Deleted", a_workflow, "delete"),
    ("flowledger.domain.webhooks:Webhook.Deleted", a_webhook, "delete"),
]


@pytest.mark.parametrize(("created", "kind", "label"), SWITCHABLE)
def test_deactivating_then_activating_records_each_once(
    created: Callable[[], list[Any]], kind: str, label: str
) -> None:
    past = created()
    aggregate = given(past)
    deactivated = when(aggregate, lambda a: a.deactivate())
    assert names(deactivated) == [f"{kind}.Deactivated"]
    assert aggregate.status == "inactive"
    assert when(aggregate, lambda a: a.deactivate()) == []
    activated = when(aggregate, lambda a: a.activate())
    assert names(activated) == [f"{kind}.Activated"]
    assert when(aggregate, lambda a: a.activate()) == []
    assert aggregate.status == "active"
    assert replay(past + deactivated).status == "inactive"
    assert replay(past + deactivated + activated).status == "active"


@pytest.mark.parametrize(("created", "kind", "label"), SWITCHABLE)
def test_switching_to_a_status_activates_or_deactivates_and_none_changes_nothing(
    created: Callable[[], list[Any]], kind: str, label: str
) -> None:
    aggregate = given(created())
    assert when(aggregate, lambda a: a.switch(None)) == []
    assert names(when(aggregate, lambda a: a.switch("inactive"))) == [f"{kind}.Deactivated"]
    assert when(aggregate, lambda a: a.switch(None)) == []
    assert aggregate.status == "inactive"
    assert names(when(aggregate, lambda a: a.switch("active"))) == [f"{kind}.Activated"]
    assert when(aggregate, lambda a: a.switch("active")) == []


@pytest.mark.parametrize(("created", "kind"), DELETABLE)
def test_deleting_records_one_deletion_and_replays_to_deleted(
    created: Callable[[], list[Any]], kind: str
) -> None:
    past = created()
    aggregate = given(past)
    deleted = when(aggregate, lambda a: a.delete())
    assert names(deleted) == [f"{kind}.Deleted"]
    assert aggregate.status == "deleted" and aggregate.is_deleted
    assert when(aggregate, lambda a: a.delete()) == []
    assert replay(past + deleted).is_deleted


@pytest.mark.parametrize(("created", "kind", "label"), SWITCHABLE)
@pytest.mark.parametrize("action", ["activate", "deactivate"])
def test_a_deleted_aggregate_refuses_to_switch_and_records_nothing(
    created: Callable[[], list[Any]], kind: str, label: str, action: str
) -> None:
    aggregate = given(created())
    when(aggregate, lambda a: a.delete())
    with pytest.raises(Conflict) as refused:
        getattr(aggregate, action)()
    assert str(refused.value) == f"{label} is deleted and cannot {action}"
    assert history(aggregate) == []
    assert aggregate.status == "deleted"


@pytest.mark.parametrize(("topic", "created", "command"), STORED_TOPICS)
def test_lifecycle_events_keep_the_topics_stored_events_carry(
    topic: str, created: Callable[[], list[Any]], command: str
) -> None:
    mapper: Mapper[Any] = Mapper(transcoder=json_transcoder())
    past = created()
    aggregate = given(past)
    if command == "activate":
        past += when(aggregate, lambda a: a.deactivate())
    [recorded] = when(aggregate, lambda a: getattr(a, command)())
    stored = mapper.to_stored_event(recorded)
    assert stored.topic == topic
    loaded = mapper.to_domain_event(
        StoredEvent(stored.originator_id, stored.originator_version, topic, stored.state)
    )
    assert names([loaded]) == names([recorded])
    assert replay([*past, loaded]).status == aggregate.status


def json_transcoder() -> JSONTranscoder:
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


def test_the_shared_lifecycle_is_no_aggregate_type_of_its_own() -> None:
    published = {
        kind: [event.__qualname__ for event in events]
        for kind, events in public_event_classes().items()
    }
    assert set(published) == {
        "agent",
        "api_key",
        "bulk_item",
        "bulk_operation",
        "run",
        "webhook",
        "workflow",
        "trigger",
        "trigger_firing",
        "integration",
        "session",
        "user",
    }
    assert published["agent"] == [
        "Agent.Registered",
        "Agent.Updated",
        "Agent.Activated",
        "Agent.Deactivated",
        "Agent.Deleted",
    ]
    assert published["webhook"] == ["Webhook.Registered", "Webhook.Deleted"]
    assert "User.Deleted" in published["user"]
    assert {"Workflow.Activated", "Workflow.Deactivated", "Workflow.Deleted"} <= set(
        published["workflow"]
    )
