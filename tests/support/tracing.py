"""Capturing spans in memory: the ``spans`` fixture.

OpenTelemetry allows one tracer provider per process, so the first use installs an SDK provider
whose processor hands finished spans to whichever test is capturing (and drops them otherwise).
Import the fixture into a test module: ``from tests.support.tracing import spans``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class _Switch(SpanProcessor):
    exporter: InMemorySpanExporter | None = None

    def on_end(self, span: ReadableSpan) -> None:
        if self.exporter is not None:
            self.exporter.export([span])


_SWITCH = _Switch()
_installed: list[TracerProvider] = []


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    if not _installed:
        provider = TracerProvider()
        provider.add_span_processor(_SWITCH)
        trace.set_tracer_provider(provider)
        _installed.append(provider)
    exporter = InMemorySpanExporter()
    _SWITCH.exporter = exporter
    try:
        yield exporter
    finally:
        _SWITCH.exporter = None
