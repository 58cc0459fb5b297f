"""Every error answer, in one place: a JSON body with ``detail`` (and ``errors`` for invalid
input), the right status code, and never a stack trace."""

from __future__ import annotations

import logging
import re
from typing import Any, Final

import msgspec
import psycopg
import sqlalchemy.exc
from eventsourcing import persistence as es_persistence
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    ValidationException,
)
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from flowledger.domain.errors import Conflict, DomainError, InvalidInput, NotFound
from flowledger.http.context import correlation_id_of
from flowledger.observability.logs import aaa_logger

log = logging.getLogger(__name__)


class FieldError(msgspec.Struct, frozen=True):
    location: str
    """Where the field is: ``body``, ``query``, ``path`` or ``header``."""
    field: str
    """Dotted path of the field in that location (``retry_config.max_retries``)."""
    message: str


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    detail: str
    errors: list[FieldError] | None = None
    correlation_id: str | None = None


DATABASE_UNAVAILABLE: Final = (
    psycopg.OperationalError,
    es_persistence.OperationalError,
    es_persistence.InterfaceError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)

INVALID_DATA: Final = (psycopg.DataError, sqlalchemy.exc.DataError)

_AT_PATH = re.compile(r"^(?P<message>.*?) - at `\$(?P<path>[^`]*)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`")
_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")


def _json(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=msgspec.to_builtins(body),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def field_error(location: str, key: str, message: str) -> FieldError:
    """Turn a msgspec/Litestar message into (field path, message) with the field named."""
    path = "" if key in ("data", "body") else key
    at_path = _AT_PATH.match(message)
    if at_path:
        message = at_path["message"]
        nested = at_path["path"].lstrip(".").replace("].", "]")
        path = ".".join(p for p in (path, nested) if p) if not path.endswith(nested) else path
        path = path or nested
    for pattern in (_UNKNOWN_FIELD, _MISSING_FIELD):
        found = pattern.match(message)
        if found:
            path = ".".join(p for p in (path, found["field"]) if p)
            message = "is not a known field" if pattern is _UNKNOWN_FIELD else "is required"
    return FieldError(location=location, field=path or location, message=message)


def _source(source: object) -> str:
    """``ParamType.QUERY`` (or ``"query"``) as ``query``."""
    value = getattr(source, "value", source)
    return str(value or "body")


def on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [
        field_error(
            _source(item.get("source")), str(item.get("key") or ""), str(item.get("message") or "")
        )
        for item in extra
        if isinstance(item, dict)
    ]
    if not errors:  # the body could not be parsed at all
        return _json(HTTP_400_BAD_REQUEST, ErrorBody(detail=str(exc.detail)))
    first = errors[0]
    detail = f"Invalid {first.location} field {first.field}: {first.message}"
    return _json(HTTP_422_UNPROCESSABLE_ENTITY, ErrorBody(detail=detail, errors=errors))


def on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    if isinstance(exc, InvalidInput):
        errors = [FieldError("body", p.field, p.message) for p in exc.problems]
        return _json(HTTP_422_UNPROCESSABLE_ENTITY, ErrorBody(detail=exc.detail, errors=errors))
    if isinstance(exc, NotFound):
        return _json(HTTP_404_NOT_FOUND, ErrorBody(detail=exc.detail))
    if isinstance(exc, Conflict):
        return _json(HTTP_409_CONFLICT, ErrorBody(detail=exc.detail))
    return _json(HTTP_422_UNPROCESSABLE_ENTITY, ErrorBody(detail=exc.detail))


def on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    detail = exc.detail
    if exc.status_code == HTTP_404_NOT_FOUND and detail in ("Not Found", ""):
        detail = f"No route for {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer, ApiKey header="X-API-Key"')
    if exc.status_code == HTTP_429_TOO_MANY_REQUESTS:
        detail = "Too many requests with this credential; retry after the given seconds."
        reset = headers.get("RateLimit-Reset", "1")
        headers.setdefault("Retry-After", str(max(1, int(reset) if reset.isdigit() else 1)))
    return _json(exc.status_code, ErrorBody(detail=str(detail)), headers or None)


def on_database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("database unavailable: %s: %s", type(exc).__name__, exc)
    return _json(
        HTTP_503_SERVICE_UNAVAILABLE,
        ErrorBody(
            detail="The database is unavailable; nothing was changed. Retry shortly.",
            correlation_id=correlation_id_of(request),
        ),
        headers={"Retry-After": "2"},
    )


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return on_database_unavailable(request, exc)
    if isinstance(exc, INVALID_DATA):
        # PostgreSQL refused a value the request carried (a NUL character in a filter, say).
        log.info("request value refused by the database: %s", exc)
        return _json(
            HTTP_422_UNPROCESSABLE_ENTITY,
            ErrorBody(
                detail="A value in the request cannot be stored or searched "
                "(NUL characters, for one, are not allowed)."
            ),
        )
    correlation_id = correlation_id_of(request)
    aaa_logger("ERROR").error(
        "unhandled error",
        method=request.method,
        path=request.url.path,
        correlation_id=correlation_id,
        exc_info=exc,
    )
    return _json(
        HTTP_500_INTERNAL_SERVER_ERROR,
        ErrorBody(detail="Internal server error", correlation_id=correlation_id),
    )


exception_handlers: ExceptionHandlersMap = {
    ValidationException: on_validation,
    DomainError: on_domain_error,
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}
