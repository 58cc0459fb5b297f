"""The relay and the audit log encode an event's data once (redacting only JSON that may hold a
secret): what they write is exactly what the envelope and the audit row say, secrets masked."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowledger.domain.agents import Agent
from flowledger.domain.redaction import redact
from flowledger.domain.webhooks import Webhook
from flowledger.eventlog.envelope import encode, envelope_of, wire_event
from flowledger.eventlog.store import EventMetadata, event_data
from flowledger.projections.audit import audit_record, audit_row
from tests.support.domain import history
from tests.support.runs import requested

pytestmark = pytest.mark.unit

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["token", "secret", "x", "password", "n"]), inner, max_size=3
        )
    ),
    max_leaves=10,
)


def stamped(events: list[Any], traceparent: str | None) -> list[Any]:
    meta = msgspec.to_builtins(EventMetadata("ops", "corr-1", traceparent))
    for event in events:
        object.__setattr__(event, "metadata", meta)
    return events


def some_events(token: str, secret: str, description: Any, input_data: Any) -> list[Any]:
    agent = Agent.register(
        name="echo",
        url="http://a",
        auth_type="bearer",
        auth_config={"token": token},
        description=str(description),
    )
    webhook = Webhook.register(url="http://h", secret=secret)
    run = requested(input_data={"data": input_data})
    run.start()
    return [*history(agent), *history(webhook), *history(run)]


@given(
    token=st.text(alphabet="qwxz", min_size=8, max_size=12).map(lambda t: f"TOKEN-{t}"),
    secret=st.text(alphabet="qwxz", min_size=16, max_size=20).map(lambda t: f"SECRET-{t}"),
    # (an agent's description cannot hold NUL: PostgreSQL's text cannot)
    description=json_values.filter(lambda value: "\x00" not in str(value)),
    input_data=json_values,
    traceparent=st.none() | st.just(TRACE),
)
def test_the_relays_bytes_are_the_envelope_and_the_audit_row_is_the_redacted_data(
    token: str, secret: str, description: Any, input_data: Any, traceparent: str | None
) -> None:
    events = stamped(some_events(token, secret, description, input_data), traceparent)
    for position, event in enumerate(events, start=1):
        wire = wire_event(event, position)
        envelope = envelope_of(event, position)
        assert wire.body == encode(envelope)
        assert (wire.event_id, wire.event_type, wire.aggregate_type) == (
            envelope.event_id,
            envelope.event_type,
            envelope.aggregate_type,
        )
        assert wire.traceparent == traceparent

        row = audit_row(event, position)
        data = event_data(event)
        for omitted in getattr(event, "audit_omits", ()):
            data.pop(omitted, None)
        assert row["changes"] == (redact(data) or None)
        assert audit_record(event, position)[8] == (
            None if row["changes"] is None else msgspec.json.encode(row["changes"]).decode()
        )
        for text in (wire.body.decode(), str(row["changes"])):
            assert token not in text
            assert secret not in text
