"""What operators see: Prometheus series at ``/metrics``, one trace from a request through the
command and the projector, and one JSON log line per request carrying its correlation id."""

from __future__ import annotations

import io
import json
import logging
import uuid
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_trace_id
from prometheus_client.parser import text_string_to_metric_families

from flowledger.eventlog.store import metadata_of
from flowledger.observability.logs import configure_logging
from flowledger.observability.tracing import traceparent_of
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.support.http import ApiClient
from tests.support.polling import eventually
from tests.support.tracing import spans  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e

AGENT = {"name": "echo", "url": "http://127.0.0.1:9101"}
ROUTE = "/api/v1/agents/{agent_id}"


def scrape(api: ApiClient) -> dict[str, Any]:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def sample(families: dict[str, Any], name: str, **labels: str) -> float | None:
    for family in families.values():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def test_metrics_expose_requests_events_lag_and_the_series_later_workers_record(
    api: ApiClient, runtime: Runtime
) -> None:
    created = api.post("/api/v1/agents", json=AGENT).json()
    assert api.get(f"/api/v1/agents/{created['id']}").status_code == 200
    assert api.get(f"/api/v1/agents/{uuid.uuid4()}").status_code == 404
    assert api.get("/no/such/route").status_code == 404

    head = runtime.store.head()
    families = eventually(
        lambda: scrape(api),
        lambda scraped: (
            sample(scraped, "flowledger_follower_position", follower="audit_log") == head
        ),
        what=f"the audit log projector to reach {head}",
        timeout_s=20,
        describe=lambda scraped: str(
            sample(scraped, "flowledger_follower_position", follower="audit_log")
        ),
    )

    assert sample(families, "flowledger_http_requests_total", route=ROUTE, status="200") >= 1
    assert sample(families, "flowledger_http_request_errors_total", route=ROUTE, status="404")
    assert sample(families, "flowledger_http_requests_total", route="<unmatched>", status="404")
    assert sample(
        families, "flowledger_http_request_duration_seconds_count", route=ROUTE, method="GET"
    )
    routes = {
        s.labels["route"]
        for s in families["flowledger_http_requests"].samples
        if "route" in s.labels
    }
    assert not any(created["id"] in route for route in routes), "raw paths never become labels"

    assert sample(families, "flowledger_events_appended_total", event_type="AgentRegistered")
    assert sample(families, "flowledger_event_store_head_position") == head
    assert sample(families, "flowledger_database_up") == 1
    for follower in ("agents", "audit_log"):
        assert sample(families, "flowledger_follower_position", follower=follower) == head
        assert sample(families, "flowledger_follower_lag_events", follower=follower) == 0
        assert sample(families, "flowledger_follower_lag_seconds", follower=follower) == 0
    assert sample(families, "flowledger_follower_events_total", follower="agents")
    running = {"follower": "agents", "flowledger_follower_state": "running"}
    assert sample(families, "flowledger_follower_state", **running) == 1

    for later in (
        "flowledger_runs",
        "flowledger_step_duration_seconds",
        "flowledger_agent_call_errors",
        "flowledger_agent_call_retries",
        "flowledger_relay_published",
        "flowledger_webhook_deliveries",
        "flowledger_executor_consumer_lag",
        "flowledger_rebuilds",
    ):
        assert later in families, f"{later} is declared for the worker that will record it"


def test_one_trace_follows_a_command_from_the_request_through_the_projector(
    api: ApiClient,
    runtime: Runtime,
    spans: InMemorySpanExporter,  # noqa: F811  (the fixture)
) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    created = api.post(
        "/api/v1/agents",
        json=AGENT,
        headers={"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"},
    )
    assert created.status_code == 201
    assert api.get(f"/api/v1/agents/{created.json()['id']}").status_code == 200  # projected

    finished = {span.name: span for span in spans.get_finished_spans()}
    request = finished["POST /api/v1/agents"]
    command = finished["command register_agent"]
    projected = finished["project agents"]
    audited = finished["project audit_log"]
    for span in (request, command, projected, audited):
        assert format_trace_id(span.context.trace_id) == caller_trace, span.name
    assert command.parent.span_id == request.context.span_id
    assert projected.parent.span_id == command.context.span_id
    batch = finished["follower batch agents"]
    assert [link.context.span_id for link in projected.links] == [batch.context.span_id]
    assert batch.context.trace_id != projected.context.trace_id, "a batch is its own trace"

    [registered] = [
        n for n in runtime.store.read(None, 100) if n.topic.endswith(":Agent.Registered")
    ]
    stamped = metadata_of(runtime.store.decode(registered)).traceparent
    assert stamped == traceparent_of(_as_span(command)), "the event carries the command's span"


def _as_span(readable: Any) -> Any:
    from opentelemetry.trace import NonRecordingSpan  # noqa: PLC0415

    return NonRecordingSpan(readable.context)


def test_each_request_logs_one_json_line_with_its_correlation_id(api: ApiClient) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    try:
        configure_logging(Settings(log_format="json"))
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        response = api.post("/api/v1/agents", json=AGENT, headers={"X-Correlation-ID": "op-1234"})
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        structlog.reset_defaults()
    assert response.headers["X-Correlation-ID"] == "op-1234"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [request_line] = [line for line in lines if line.get("event") == "request"]
    assert request_line["method"] == "POST"
    assert request_line["path"] == "/api/v1/agents"
    assert request_line["route"] == "/api/v1/agents"
    assert request_line["status"] == 201
    assert request_line["duration_ms"] >= 0
    assert request_line["correlation_id"] == "op-1234"
    assert request_line["level"] == "info"
