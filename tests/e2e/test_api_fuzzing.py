"""Schemathesis against ``/openapi.json`` of a live server, as an admin.

The document lists every operation the app serves (only the documentation pages themselves are
left out), and every operation it lists is sent generated requests: valid ones, half of them on
resources that exist (an agent, a workflow, a run, a grant, a webhook, an API key), and invalid
ones. No answer is a 5xx, and the answers to valid requests are what the document says: a
documented status code, content type, headers and body.

One server (uvicorn on a free port, projections in-process) and one database serve the whole
module; each operation gets a bounded number of generated requests, destructive ones last.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from litestar import Litestar
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from flowledger.http.app import create_app
from flowledger.http.consistency import MIN_POSITION_HEADER
from flowledger.http.errors import ErrorBody
from flowledger.runtime.database import Database, create_database_if_missing, drop_database
from flowledger.runtime.process import Runtime
from tests.conftest import make_settings
from tests.support.http import ADMIN_API_KEY
from tests.support.polling import eventually
from tests.support.server import serving

pytestmark = pytest.mark.e2e

AUTH: Final = {"X-API-Key": ADMIN_API_KEY}
EXAMPLES: Final = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}
"""Generated requests per operation and mode: about a minute for the module on two cores."""
ERROR_STATUSES: Final = frozenset({400, 404, 409, 422})
"""The answers to a request the app refuses (ADR 0004): any operation may give them, though the
document does not list 404, 409 and 422 for each operation (it lists 400, 401 and 403)."""


def status_documented_or_a_refusal(ctx: Any, response: Any, case: Any) -> bool | None:
    """The status code is one the document gives the operation, or an ADR 0004 refusal."""
    if response.status_code in ERROR_STATUSES:
        return None
    return status_code_conformance(ctx, response, case)  # type: ignore[no-any-return]


def refusals_are_error_bodies(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx answer is ADR 0004's JSON error body, with a ``detail`` that says why."""
    if 400 <= response.status_code < 500:
        try:
            body = msgspec.json.decode(response.content, type=ErrorBody)
        except msgspec.DecodeError as error:
            raise AssertionError(
                f"{response.status_code} is not an error body ({error}): {response.text[:300]}"
            ) from error
        assert body.detail, f"{response.status_code} without a detail"
    return None


def with_a_body(check: Any) -> Any:
    """``check`` on answers that have a body: a 204 has none, whatever the document says (it
    gives every 204 an ``application/json`` null)."""

    def checked(ctx: Any, response: Any, case: Any) -> bool | None:
        if response.status_code == 204:
            return None
        return check(ctx, response, case)  # type: ignore[no-any-return]

    checked.__name__ = check.__name__
    return checked


CHECKS: Final = {
    GenerationMode.POSITIVE: [
        not_a_server_error,
        status_documented_or_a_refusal,
        refusals_are_error_bodies,
        response_headers_conformance,
        with_a_body(content_type_conformance),
        with_a_body(response_schema_conformance),
    ],
    # Invalid requests meet the same rules but the body schema: the document gives 400 the
    # body of Litestar's own validation error, while the app answers ADR 0004's error body.
    GenerationMode.NEGATIVE: [
        not_a_server_error,
        status_documented_or_a_refusal,
        refusals_are_error_bodies,
        response_headers_conformance,
        with_a_body(content_type_conformance),
    ],
}
UNDOCUMENTED: Final = re.compile(
    r"^/(schema(/.*)?|openapi\.json|docs|redoc|asyncapi\.json|ui(/.*)?)?$"
)
"""The documentation pages (Litestar's own under ``/schema``, ours at the spec's paths), and the
dashboard's files under ``/ui`` with ``/`` redirecting there."""
PATH_PARAMETER_TYPE: Final = re.compile(r":\w+(?=})")
"""The type of a path parameter in a Litestar route (``{agent_id:uuid}``)."""


@dataclass(frozen=True)
class LiveServer:
    url: str
    app: Litestar


@pytest.fixture(scope="module")
def live_server(pg_server: Database, template_database: str) -> Iterator[LiveServer]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    create_database_if_missing(pg_server, name, template=template_database)
    database = pg_server.with_dbname(name)
    test_settings = make_settings(database)
    runtime = Runtime.open(test_settings, database=database, migrate=False)
    app = create_app(test_settings, runtime=runtime, workers=("projections",))
    try:
        with serving(app) as url:
            yield LiveServer(url, app)
    finally:
        runtime.close_sync()
        drop_database(pg_server, name)


@pytest.fixture(scope="module")
def api_schema(live_server: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")


@pytest.fixture(scope="module")
def existing(live_server: LiveServer) -> dict[str, str]:
    """Path parameters that name resources which exist, by parameter name."""
    with httpx.Client(base_url=f"{live_server.url}/api/v1", headers=AUTH, timeout=30) as api:

        def created(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = api.post(path, json=body)
            assert response.is_success, response.text
            return response.json()  # type: ignore[no-any-return]

        agent = created("/agents", {"name": "fuzz-echo", "url": "http://127.0.0.1:9"})
        workflow = created(
            "/workflows",
            {
                "name": "fuzz-flow",
                "start_step": "say",
                "steps": {"say": {"agent_name": "fuzz-echo", "input_mapping": {}}},
                "triggers": [{"type": "webhook", "path": "fuzz-hook"}],
            },
        )
        run = created(f"/workflows/{workflow['id']}/execute", {})
        principal = "role:viewer"
        granted = api.put(f"/workflows/{workflow['id']}/grants/{principal}", json={})
        assert granted.is_success, granted.text
        webhook = created("/webhooks", {"url": "http://127.0.0.1:9/hook", "secret": "s" * 32})
        key = created("/api-keys", {"name": "fuzz-key", "role": "viewer"})
        user = created(
            "/users",
            {"email": "fuzz@example.com", "name": "fuzz", "role": "viewer", "password": "p" * 12},
        )
        eventually(  # every projection has them: reads of these ids find them
            lambda: api.get(f"/runs/{run['run_id']}").status_code,
            lambda status: status == 200,
            what="the seeded run to be readable",
        )
    return {
        "agent_id": agent["id"],
        "workflow_id": workflow["id"],
        "version": "1",
        "execution_id": run["run_id"],
        "run_id": run["run_id"],
        "principal": principal,
        "webhook_id": webhook["id"],
        "key_id": key["id"],
        "path": "fuzz-hook",
        "user_id": user["id"],
    }


def operations(api_schema: Any) -> list[Any]:
    """Every operation of the document, the destructive ones (DELETE) last."""
    found = [result.ok() for result in api_schema.get_all_operations()]
    return sorted(found, key=lambda op: op.method.upper() == "DELETE")


def cases(operation: Any, mode: GenerationMode, existing: dict[str, str]) -> Any:
    """Generated requests for one operation; valid ones also on resources that exist."""
    # A read asked to wait for a position nobody wrote answers 503 by design (ADR 0002):
    # fix the read-your-writes header at 0 so every other input is fuzzed.
    fixed = {MIN_POSITION_HEADER: "0"} if _has(operation.headers, MIN_POSITION_HEADER) else None
    # A live event stream never ends; its catch-up form does, and takes the same other inputs.
    query = {"follow": "false"} if _has(operation.query, "follow") else None
    generated = operation.as_strategy(generation_mode=mode, headers=fixed, query=query)
    known = {p.name: existing[p.name] for p in operation.path_parameters if p.name in existing}
    if mode is GenerationMode.NEGATIVE or not known:
        return generated
    on_existing = operation.as_strategy(
        generation_mode=mode, headers=fixed, query=query, path_parameters=known
    )
    return st.one_of(generated, on_existing)


def _has(parameters: Any, name: str) -> bool:
    return any(p.name == name for p in parameters)


CREDENTIAL_HEADERS: Final = frozenset({"x-api-key", "authorization"})
"""Headers of the security schemes: credentials, which every protected operation takes (and
which, with several schemes to choose from, schemathesis does not make invalid)."""


def takes_input(operation: Any) -> bool:
    """Whether the operation takes an input that is fuzzed: of its own (a credential is not
    one) and not fixed by :func:`cases` (the read-your-writes header)."""
    fixed = {*CREDENTIAL_HEADERS, MIN_POSITION_HEADER.lower()}
    headers = [h for h in operation.headers if h.name.lower() not in fixed]
    inputs = (operation.path_parameters, operation.query, headers, operation.body)
    return any(list(part) for part in inputs)


def fuzz(operation: Any, mode: GenerationMode, existing: dict[str, str]) -> int:
    """Send up to ``EXAMPLES[mode]`` generated requests to one operation and check each answer;
    return how many were sent."""
    sent = Counter[str]()

    @given(case=cases(operation, mode, existing))
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        sent["requests"] += 1
        case.call_and_validate(headers=AUTH, checks=CHECKS[mode])

    send()
    return sent["requests"]


def served_operations(app: Litestar) -> set[str]:
    """``METHOD /path`` of every route the app answers, but the documentation pages."""
    return {
        f"{method} {PATH_PARAMETER_TYPE.sub('', route.path)}"
        for route in app.routes
        for method in getattr(route, "methods", ())
        if method not in {"OPTIONS", "HEAD"} and not UNDOCUMENTED.match(route.path)
    }


def test_the_schema_documents_every_api_operation(api_schema: Any, live_server: LiveServer) -> None:
    documented = {op.label for op in operations(api_schema)}
    assert {"POST /api/v1/agents", "GET /api/v1/audit", "DELETE /api/v1/api-keys/{key_id}"} <= (
        documented
    )
    assert documented == served_operations(live_server.app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_makes_the_server_fail_or_stray_from_the_schema(
    api_schema: Any, existing: dict[str, str], mode: GenerationMode
) -> None:
    failures: list[str] = []
    sent: dict[str, int] = {}
    for operation in operations(api_schema):
        try:
            sent[operation.label] = fuzz(operation, mode, existing)
        except Unsatisfiable:  # no invalid request can be made
            sent[operation.label] = 0
        except (Exception, BaseExceptionGroup) as error:  # collect them all, then report
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)
    unsent = {label for label, count in sent.items() if count == 0}
    if mode is GenerationMode.POSITIVE:
        assert unsent == set()
    else:  # only an operation without any input has nothing to get wrong
        assert unsent == {op.label for op in operations(api_schema) if not takes_input(op)}
