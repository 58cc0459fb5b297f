"""An outgoing call's span (``outgoing_call_span``) when no span is recorded: none is made,
and the headers carry the caller's trace as a span that is not recorded would have."""

from __future__ import annotations

import pytest
from opentelemetry import context as otel_context

from flowledger.observability import tracing

pytestmark = pytest.mark.unit

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_unrecorded_calls_carry_the_callers_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "recording", lambda: False)
    parent = tracing.context_from(TRACEPARENT)
    assert parent is not None
    token = otel_context.attach(parent)
    try:
        with tracing.outgoing_call_span("agent call", "echo", "http://agent/") as headers:
            assert headers == {"traceparent": TRACEPARENT}
            assert tracing.traceparent_of() == TRACEPARENT  # no span of its own in between
    finally:
        otel_context.detach(token)


def test_unrecorded_calls_outside_a_trace_carry_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "recording", lambda: False)
    with tracing.outgoing_call_span("agent call", "echo") as headers:
        assert headers == {}
