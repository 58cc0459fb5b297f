"""OpenTelemetry traces: set-up, and one helper per kind of work.

A trace starts at an HTTP request (or continues the caller's ``traceparent``), goes through
the command that appends events, and is carried *inside the events*: ``EventStore.record``
stamps the current span's context into each event's ``EventMetadata.traceparent``. Whoever
handles the event later, in any process, continues that trace with :func:`handling_event`, so
one trace follows a change from the request to the projector, the relay, the executor and the
agent calls.

The helpers, for the code that does the work::

    with command_span("register_agent"):                 # a command (http/commands.py)
    with follower_batch_span("agents", batch):           # a follower batch (eventlog/follower.py)
    with handling_event("project agents", event):        # one event: projector, relay, executor
    with outgoing_call_span("agent call", "echo", url) as headers:   # an agent call, a webhook
        httpx.post(url, headers=headers)                 # headers carry ``traceparent``

Nothing is exported unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-only variant) is
set; then spans go to that OTLP/HTTP collector. Without it the API's no-op tracer still passes
an incoming ``traceparent`` on to events, at almost no cost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

TRACER_NAME: Final = "flowledger"
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_configured = False


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def configure_tracing(env: Mapping[str, str], service_name: str) -> bool:
    """Export spans over OTLP/HTTP when an endpoint is configured; whether it is."""
    global _configured  # noqa: PLW0603  (one provider per process)
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint or _configured:
        return _configured
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True
    log.info("exporting traces to %s", endpoint)
    return True


def recording() -> bool:
    """Whether spans go anywhere (a tracer provider is installed): per-event spans cost more
    than applying most events, so followers make them only then."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def traceparent_of(span: Span | None = None) -> str | None:
    """The W3C ``traceparent`` of ``span`` (default: the current span); None when invalid."""
    context = trace.set_span_in_context(span) if span is not None else None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier.get("traceparent")


def context_from(traceparent: str | None) -> Context | None:
    """The context a ``traceparent`` header names, to continue its trace; None without one."""
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def context_from_headers(headers: Mapping[str, str]) -> Context:
    return _PROPAGATOR.extract(headers)


@contextmanager
def command_span(name: str, **attributes: Any) -> Iterator[Span]:
    """A write-side command; the events it appends carry this span's context."""
    with tracer().start_as_current_span(
        f"command {name}", attributes={"flowledger.command": name, **attributes}
    ) as span:
        yield span


@contextmanager
def follower_batch_span(follower: str, batch: Sequence[Any]) -> Iterator[Span]:
    """One batch handled by a follower (its own trace; each event's span links to it)."""
    attributes = {
        "flowledger.follower": follower,
        "flowledger.batch.size": len(batch),
        "flowledger.batch.first_position": getattr(batch[0], "id", 0) if batch else 0,
        "flowledger.batch.last_position": getattr(batch[-1], "id", 0) if batch else 0,
    }
    with tracer().start_as_current_span(
        f"follower batch {follower}", context=Context(), attributes=attributes
    ) as span:
        yield span


@contextmanager
def handling_event(
    name: str,
    event: Any,
    *,
    position: int | None = None,
    kind: SpanKind = SpanKind.CONSUMER,
    **attributes: Any,
) -> Iterator[Span]:
    """Handle one stored event inside the trace of the request that caused it.

    The span's parent is the event's ``traceparent`` (a link points back to the current
    span, usually the follower's batch); log lines inside carry the event's correlation id.
    """
    meta = getattr(event, "metadata", None)  # EventMetadata as stored: a dict
    meta = meta if isinstance(meta, dict) else {}
    correlation_id = str(meta.get("correlation_id") or "")
    parent = context_from(meta.get("traceparent"))
    current = trace.get_current_span().get_span_context()
    links = [Link(current)] if parent is not None and current.is_valid else None
    span_attributes = {
        "flowledger.event.type": type(event).__qualname__,
        "flowledger.correlation_id": correlation_id,
        **attributes,
    }
    if position is not None:
        span_attributes["flowledger.event.position"] = position
    with (
        structlog.contextvars.bound_contextvars(correlation_id=correlation_id),
        tracer().start_as_current_span(
            name, context=parent, kind=kind, links=links, attributes=span_attributes
        ) as span,
    ):
        yield span


@contextmanager
def outgoing_call_span(
    name: str, target: str, url: str | None = None, **attributes: Any
) -> Iterator[dict[str, str]]:
    """A call to another service (an agent, a webhook subscriber, a broker).

    Yields the headers to send with the call: they carry the span's ``traceparent`` so the
    callee can continue the trace. A raised exception marks the span as an error. With no
    spans recorded (no exporter), no span is made: one that is not recorded carries its
    parent's context, which the headers then carry as they are (making it was 3% of the
    executor's CPU with runs in flight, in a profile).
    """
    if not recording():
        carried: dict[str, str] = {}
        _PROPAGATOR.inject(carried)
        yield carried
        return
    span_attributes = {"peer.service": target, **attributes}
    if url:
        span_attributes["url.full"] = url
    with tracer().start_as_current_span(
        f"{name} {target}", kind=SpanKind.CLIENT, attributes=span_attributes
    ):
        headers: dict[str, str] = {}
        _PROPAGATOR.inject(headers)
        yield headers
