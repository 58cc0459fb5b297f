"""Checking data against a JSON Schema fetches nothing: a remote ``$ref`` is a problem of its
own, not a request made while a run is requested (it used to be an ``urlopen`` with no timeout,
on the API's event loop since execute is decided there) or while a dry run checks the schemas
an agent's card declares (where an unresolvable one was a 500)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from flowledger.domain.contracts import AgentContract, SkillContract, check_dry_run
from flowledger.domain.dry_run import dry_run
from flowledger.domain.plans import StepPlan, WorkflowPlan
from flowledger.domain.step_kinds import data_problems


class SchemaServer(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        SchemaServer.requests.append(self.path)
        body = b'{"type": "object", "required": ["text"]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/schema+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def schema_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), SchemaServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    SchemaServer.requests.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/input.json"
    server.shutdown()
    server.server_close()


def test_a_remote_ref_is_reported_and_never_fetched(schema_url: str) -> None:
    problems = data_problems({"$ref": schema_url}, {}, "input_data")

    assert [p.field for p in problems] == ["input_data"]
    assert "cannot be checked against the schema" in problems[0].message
    assert schema_url in problems[0].message
    assert SchemaServer.requests == [], "nothing was fetched"


def test_a_local_ref_is_still_followed() -> None:
    schema = {
        "$defs": {"text": {"type": "string"}},
        "type": "object",
        "properties": {"text": {"$ref": "#/$defs/text"}},
    }

    problems = data_problems(schema, {"text": 3}, "input_data")

    assert [p.field for p in problems] == ["input_data.text"]


def test_an_agent_schema_with_a_remote_ref_is_reported_by_a_dry_run_and_never_fetched(
    schema_url: str,
) -> None:
    contract = AgentContract("remote", (SkillContract("s", input_schema={"$ref": schema_url}),))
    plan = WorkflowPlan(steps=(StepPlan("call", "remote", input_mapping={"text": 1}),))

    problems = check_dry_run(plan, dry_run(plan, {}, {}, {}), {"remote": contract})

    assert [(p.step_id, p.field) for p in problems] == [("call", "input")]
    assert "cannot be checked" in problems[0].message and schema_url in problems[0].message
    assert SchemaServer.requests == [], "nothing was fetched"
