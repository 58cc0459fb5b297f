"""One trace across processes: a command in the API process, its events projected by a
separate ``flowledger worker projections`` process that exports its spans over OTLP/HTTP (to
a stand-in collector here). The worker's projection span belongs to the command's trace."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowledger.http.app import create_app
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.support.http import ApiClient
from tests.support.polling import eventually
from tests.support.tracing import spans  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


class Collector(ThreadingHTTPServer):
    """Receives OTLP/HTTP protobuf exports: the spans, as (name, trace id, service)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[tuple[str, bytes, str]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes
                 if a.key == "service.name"),
                "",
            )  # fmt: skip
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.server.received.append((span.name, span.trace_id, service))
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_projector_in_another_process_continues_the_commands_trace(
    settings: Settings,
    runtime: Runtime,
    collector: Collector,
    spans: InMemorySpanExporter,  # noqa: F811  (the fixture)
) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "flowledger", "worker", "projections"],
        env={
            **os.environ,
            "DATABASE_URL": runtime.database.libpq_url,
            "FLOWLEDGER_LOG_LEVEL": "WARNING",
            "FLOWLEDGER_FOLLOWER_IDLE_WAIT": "0.05",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        },
    )
    try:
        with ApiClient(create_app(settings, runtime=runtime)) as api:  # no in-process workers
            created = api.post("/api/v1/agents", json={"name": "echo", "url": "http://a"})
            assert created.status_code == 201
            assert api.get(f"/api/v1/agents/{created.json()['id']}").status_code == 200
        [command] = [s for s in spans.get_finished_spans() if s.name == "command register_agent"]
        trace_id = command.context.trace_id.to_bytes(16, "big")

        wanted = ("project agents", trace_id, "flowledger-worker-projections")

        def exported() -> list[Any]:
            received = list(collector.received)
            assert wanted in received or worker.poll() is None, "the worker died"
            return received

        eventually(
            exported,
            lambda received: wanted in received,
            what="the worker to export its projection span",
            timeout_s=30,
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    batches = [name for name, _, _ in collector.received if name == "follower batch agents"]
    assert batches, "the worker exports its batch spans too"
