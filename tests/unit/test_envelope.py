"""The envelope: stable ids, secrets masked, topic names, filters, and a lossless JSON form."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowledger.domain.agents import Agent
from flowledger.domain.webhooks import Webhook
from flowledger.eventlog.envelope import (
    EventFilter,
    decode,
    encode,
    envelope_of,
    event_id_of,
    plural,
    topic_for,
    type_matches,
)
from tests.support.domain import history
from tests.support.envelopes import envelope

pytestmark = pytest.mark.unit


def test_an_event_id_is_the_same_every_time_and_differs_per_version() -> None:
    aggregate = uuid.uuid4()
    assert event_id_of(aggregate, 3) == event_id_of(aggregate, 3)
    assert event_id_of(aggregate, 3) != event_id_of(aggregate, 4)
    assert event_id_of(aggregate, 3) != event_id_of(uuid.uuid4(), 3)


def test_an_agent_event_envelope_names_its_type_and_masks_the_token() -> None:
    agent = Agent.register(
        name="echo", url="http://a", auth_type="bearer", auth_config={"token": "s3cret"}
    )
    [registered] = history(agent)
    envelope = envelope_of(registered, position=7)
    assert envelope.event_type == "AgentRegistered"
    assert envelope.aggregate_type == "agent"
    assert (envelope.aggregate_id, envelope.aggregate_version) == (agent.id, 1)
    assert envelope.event_id == event_id_of(agent.id, 1)
    assert envelope.position == 7
    assert envelope.data["auth_config"] == {"token": "********"}
    assert envelope.data["name"] == "echo"
    assert "s3cret" not in encode(envelope).decode()


def test_a_webhook_secret_never_leaves_in_an_envelope() -> None:
    webhook = Webhook.register(url="http://h", secret="0123456789abcdef")
    [registered] = history(webhook)
    envelope = envelope_of(registered, position=1)
    assert envelope.event_type == "WebhookRegistered"
    assert envelope.data["secret"] == "********"


@pytest.mark.parametrize(
    ("aggregate", "topic"),
    [
        ("agent", "flowledger.agents.v1"),
        ("workflow", "flowledger.workflows.v1"),
        ("run", "flowledger.runs.v1"),
        ("webhook", "flowledger.webhooks.v1"),
        ("api_key", "flowledger.api_keys.v1"),
        ("policy", "flowledger.policies.v1"),
        ("status", "flowledger.statuses.v1"),
    ],
)
def test_each_aggregate_type_has_its_topic(aggregate: str, topic: str) -> None:
    assert topic_for(aggregate) == topic
    assert topic_for(aggregate, "acme.prod") == topic.replace("flowledger", "acme.prod")


def test_event_types_match_names_and_glob_patterns() -> None:
    assert type_matches([], "RunFailed")
    assert type_matches(["RunFailed"], "RunFailed")
    assert type_matches(["Run*"], "RunFailed")
    assert type_matches(["*Failed", "AgentDeleted"], "StepFailed")
    assert not type_matches(["Run*"], "AgentRegistered")
    assert not type_matches(["runfailed"], "RunFailed")


def test_filters_combine_aggregate_types_ids_event_types_and_runs() -> None:
    run_id = uuid.uuid4()
    step = envelope(data={"run_id": str(run_id)})
    run = envelope(aggregate_type="run", aggregate_id=run_id, event_type="RunStarted")
    other = envelope(aggregate_type="run", event_type="RunStarted")
    assert EventFilter().admits(step)
    assert EventFilter(aggregate_types=("runs",)).admits(run)
    assert EventFilter(aggregate_types=("run",)).admits(run)
    assert not EventFilter(aggregate_types=("run",)).admits(step)
    assert EventFilter(aggregate_ids=(run_id,)).admits(run)
    assert not EventFilter(aggregate_ids=(run_id,)).admits(other)
    assert EventFilter(event_types=("Step*",)).admits(step)
    by_run = EventFilter(run_id=str(run_id).upper())
    assert [by_run.admits(e) for e in (step, run, other)] == [True, True, False]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    data=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    version=st.integers(1, 10_000),
    position=st.integers(1, 2**62),
    traceparent=st.none() | st.just("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    at=st.datetimes(timezones=st.just(UTC)),
)
def test_the_json_form_round_trips_exactly(
    data: dict[str, object], version: int, position: int, traceparent: str | None, at: datetime
) -> None:
    original = envelope(
        data=data,
        aggregate_version=version,
        position=position,
        traceparent=traceparent,
        occurred_at=at,
    )
    assert decode(encode(original)) == original


def test_plural_is_regular_english_enough_for_aggregate_names() -> None:
    assert [plural(n) for n in ("agent", "box", "key", "entry")] == [
        "agents",
        "boxes",
        "keys",
        "entries",
    ]
