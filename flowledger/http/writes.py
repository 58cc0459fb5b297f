"""Running write-side handlers from async controllers, and answering with the position."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Final, TypeVar

import anyio.to_thread
from litestar.datastructures import ResponseHeader

from flowledger.commands import Outcome
from flowledger.domain.errors import DomainError
from flowledger.eventlog.store import EventMetadata, EventStore, snake_case
from flowledger.http.consistency import POSITION_HEADER
from flowledger.observability.logs import aaa_logger
from flowledger.observability.tracing import command_span

C = TypeVar("C")
Out = TypeVar("Out", bound=Outcome[Any])

WRITE_HEADERS: Final = [
    ResponseHeader(
        name=POSITION_HEADER,
        description=(
            "Global position of the command's last event. Pass it back in "
            "`X-Flowledger-Min-Position` to read your own write."
        ),
        documentation_only=True,
        required=False,
    )
]


async def run_command(
    handler: Callable[[EventStore, C, EventMetadata], Out],
    store: EventStore,
    command: C,
    meta: EventMetadata,
) -> Out:
    """Run a (blocking) command handler in a worker thread, in a span of its own (the events
    it appends carry that span's trace context), and log the outcome (AUDIT)."""
    log = aaa_logger("AUDIT").bind(
        action=snake_case(type(command).__name__),
        actor=meta.actor,
        correlation_id=meta.correlation_id,
    )
    try:
        outcome = await anyio.to_thread.run_sync(partial(_traced, handler, store, command, meta))
    except DomainError as error:
        log.info("command refused", result="REFUSED", reason=error.detail)
        raise
    log.info(
        "command done",
        result="SUCCESS",
        entity_type=snake_case(type(outcome.aggregate).__name__),
        entity_id=str(outcome.aggregate.id),
        position=outcome.position,
    )
    return outcome


def _traced(
    handler: Callable[[EventStore, C, EventMetadata], Out],
    store: EventStore,
    command: C,
    meta: EventMetadata,
) -> Out:
    with command_span(getattr(handler, "__name__", "command")):
        return handler(store, command, meta)


def position_headers(outcome: Outcome[Any]) -> dict[str, str]:
    return {POSITION_HEADER: str(outcome.position)} if outcome.position is not None else {}
