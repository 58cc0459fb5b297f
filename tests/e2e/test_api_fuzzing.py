"""Schemathesis against ``/openapi.json`` of a live server, as an admin: whatever it sends
within the documented shapes (and outside them), no answer is a 5xx.

One server (uvicorn on a free port, projections in-process) and one database serve the whole
module; each operation gets a bounded number of generated requests.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from flowledger.http.app import create_app
from flowledger.http.consistency import MIN_POSITION_HEADER
from flowledger.runtime.database import Database, create_database_if_missing, drop_database
from flowledger.runtime.process import Runtime
from tests.conftest import make_settings
from tests.support.http import ADMIN_API_KEY
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live_server(pg_server: Database, template_database: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    create_database_if_missing(pg_server, name, template=template_database)
    database = pg_server.with_dbname(name)
    test_settings = make_settings(database)
    runtime = Runtime.open(test_settings, database=database, migrate=False)
    port = free_port()
    app = create_app(test_settings, runtime=runtime, workers=("projections",))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    while not server.started and thread.is_alive():
        started.wait(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        runtime.close_sync()
        drop_database(pg_server, name)


@pytest.fixture(scope="module")
def api_schema(live_server: str) -> Any:
    return schemathesis.openapi.from_url(f"{live_server}/openapi.json")


def operations(api_schema: Any) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


def fuzz(operation: Any, mode: GenerationMode, examples: int) -> None:
    """Send up to ``examples`` generated requests to one operation; raise on a 5xx."""

    # A read asked to wait for a position nobody wrote answers 503 by design (ADR 0002):
    # fix the read-your-writes header at 0 so every other input is fuzzed.
    fixed = {MIN_POSITION_HEADER: "0"} if _has_header(operation, MIN_POSITION_HEADER) else None
    # A live event stream never ends; its catch-up form does, and takes the same other inputs.
    query = {"follow": "false"} if any(p.name == "follow" for p in operation.query) else None

    @given(case=operation.as_strategy(generation_mode=mode, headers=fixed, query=query))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        case.call_and_validate(headers={"X-API-Key": ADMIN_API_KEY}, checks=[not_a_server_error])

    send()


def _has_header(operation: Any, name: str) -> bool:
    return any(p.name == name for p in operation.headers)


def test_the_schema_documents_every_api_operation(api_schema: Any) -> None:
    labels = {op.label for op in operations(api_schema)}
    assert {"POST /api/v1/agents", "GET /api/v1/audit", "DELETE /api/v1/api-keys/{key_id}"} <= (
        labels
    )


@pytest.mark.parametrize(
    ("mode", "examples"), [(GenerationMode.POSITIVE, 25), (GenerationMode.NEGATIVE, 15)]
)
def test_no_generated_request_makes_the_server_fail(
    api_schema: Any, mode: GenerationMode, examples: int
) -> None:
    failures = []
    for operation in operations(api_schema):
        try:
            fuzz(operation, mode, examples)
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to get wrong (no parameters)
        except Exception as error:  # collect them all, then report
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)
