"""``/hooks/{path}``: an inbound webhook call starts a run of the trigger's workflow.

The request's JSON body (an object; empty: ``{}``) is the run input, with the headers and
query parameters the trigger maps added as input fields (and its ``event_type``). The answer is
202 with the run id. Credentials are the trigger's own (``auth``), never an API key: this path
is outside the API's authentication. Refusals: 401 (wrong or missing credentials, a replayed
signature; logged as ``AUTH``), 404 (no such hook), 405 (another method), 400 (not JSON), 422
(not an object, or input the workflow's ``input_schema`` refuses), 409 (the trigger is paused or
disabled, or the workflow is not active). An ``Idempotency-Key`` header makes a retried call
answer with the first call's run (``replayed``).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, Response, route
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_202_ACCEPTED

from flowledger.commands.triggers import FireTrigger, fire_trigger, trigger_actor
from flowledger.domain.errors import Conflict, FieldProblem, InvalidInput
from flowledger.eventlog.store import EventStore
from flowledger.http.consistency import MinPosition, wait_for_position
from flowledger.http.context import correlation_id_of, metadata_for
from flowledger.http.errors import ErrorBody
from flowledger.http.hooks.auth import check_call
from flowledger.http.triggers.queries import find_hook
from flowledger.http.triggers.schemas import HookAccepted
from flowledger.http.writes import WRITE_HEADERS, position_headers, run_command
from flowledger.observability import metrics
from flowledger.observability.logs import aaa_logger
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings

METHODS: Final = [
    HttpMethod.POST,
    HttpMethod.PUT,
    HttpMethod.PATCH,
    HttpMethod.GET,
    HttpMethod.DELETE,
]
IDEMPOTENCY_HEADER: Final = "idempotency-key"
HookPath = Annotated[str, Parameter(description="The webhook trigger's `path`.", max_length=100)]
MAX_KEY_LENGTH: Final = 200


def _refused(reason: str) -> None:
    metrics.WEBHOOK_REQUESTS_REFUSED.labels(reason=reason).inc()


@route(
    "/hooks/{path:str}",
    http_method=METHODS,
    operation_id=lambda handler, method, path: f"callHook{method.title()}",
    summary="Call an inbound webhook",
    description=__doc__.split("\n\n", 1)[1].strip() if __doc__ else None,
    tags=["triggers"],
    status_code=HTTP_202_ACCEPTED,
    response_headers=WRITE_HEADERS,
    security=[],
    responses={
        400: ResponseSpec(ErrorBody, description="The body is not JSON."),
        401: ResponseSpec(ErrorBody, description="Wrong or missing credentials, or a replay."),
        404: ResponseSpec(ErrorBody, description="No webhook trigger has this path."),
        405: ResponseSpec(ErrorBody, description="The trigger takes another method."),
        409: ResponseSpec(ErrorBody, description="Paused, disabled, or the workflow is inactive."),
        422: ResponseSpec(ErrorBody, description="The input is not what the workflow takes."),
    },
)
async def call_hook(
    request: Request[Any, Any, Any],
    path: HookPath,
    runtime: NamedDependency[Runtime],
    settings: NamedDependency[Settings],
    min_position: MinPosition = None,
) -> Response[HookAccepted]:
    async with runtime.async_engine.connect() as conn:
        await wait_for_position(conn, "triggers", min_position, settings.read_wait_timeout_s)
        hook = await find_hook(conn, path)
    if hook is None:
        _refused("not_found")
        raise HTTPException(status_code=404, detail=f"No webhook at /hooks/{path}")
    method = str(hook.config.get("method", "POST"))
    if request.method != method:
        _refused("method")
        raise HTTPException(
            status_code=405, detail=f"/hooks/{path} takes {method}", headers={"Allow": method}
        )
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    verdict = check_call(hook.config.get("auth"), headers, body, time.time())
    log = aaa_logger("AUTH").bind(
        path=f"/hooks/{path}",
        trigger_id=str(hook.id),
        client=request.client.host if request.client else None,
        correlation_id=correlation_id_of(request),
    )
    if not verdict.accepted:
        _refused("auth")
        log.warning("webhook call refused", result="FAILURE", reason=verdict.reason)
        raise _unauthorized(hook.config.get("auth"))
    input_data = _input(body, request, hook.config)
    key = headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidInput([FieldProblem("Idempotency-Key", "must be 1 to 200 characters")])
    occurrence = (
        f"key:{key}" if key else (f"sig:{verdict.signature}" if verdict.signature else None)
    )
    meta = msgspec.structs.replace(metadata_for(request), actor=trigger_actor(hook.id))
    command = FireTrigger(trigger_id=hook.id, input_data=input_data, occurrence=occurrence)
    store: EventStore = runtime.store
    try:
        fired = await run_command(fire_trigger, store, command, meta)
    except InvalidInput:
        _refused("input")
        raise
    except Conflict:
        _refused("conflict")
        raise
    if fired.replayed and not key:
        _refused("replay")
        log.warning("webhook call refused", result="FAILURE", reason="signature replayed")
        raise NotAuthorizedException(detail="This signed request was received before.")
    firing = fired.aggregate
    accepted = HookAccepted(
        run_id=firing.run_id,
        trigger_id=firing.trigger_id,
        workflow_id=firing.workflow_id,
        replayed=fired.replayed,
    )
    return Response(accepted, status_code=HTTP_202_ACCEPTED, headers=position_headers(fired))


def _unauthorized(auth: Any) -> HTTPException:
    kind = (auth or {}).get("type")
    headers = {"WWW-Authenticate": 'Basic realm="flowledger hooks"'} if kind == "basic" else None
    return NotAuthorizedException(
        detail="The webhook's credentials are missing or wrong.", headers=headers
    )


def _input(body: bytes, request: Request[Any, Any, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The run input: the body's object, plus the mapped headers and query parameters."""
    if body.strip():
        try:
            data = json.loads(body)
        except ValueError:
            _refused("input")
            raise HTTPException(status_code=400, detail="The body is not JSON.") from None
    else:
        data = {}
    if not isinstance(data, dict):
        _refused("input")
        raise InvalidInput([FieldProblem("body", "must be a JSON object")])
    for header, field in (config.get("headers") or {}).items():
        if (value := request.headers.get(header)) is not None:
            data[field] = value
    for param, field in (config.get("query") or {}).items():
        if (value := request.query_params.get(param)) is not None:
            data[field] = value
    if "event_type" in config:
        data.setdefault("event_type", config["event_type"])
    return data
