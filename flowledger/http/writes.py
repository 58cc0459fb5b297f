"""Running write-side handlers from async controllers, and answering with the position."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final, TypeVar

import anyio
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
    *,
    on_loop: Callable[[EventStore, C, EventMetadata], Awaitable[Out | None]] | None = None,
) -> Out:
    """Run a (blocking) command handler in a worker thread, in a span of its own (the events
    it appends carry that span's trace context), and log the outcome (AUDIT).

    ``on_loop``: the handler's form for the event loop, tried first: it decides from the
    cache and waits for the commit without a thread (one thread hop less per command), or
    answers None having recorded nothing when it cannot settle the command alone."""
    log = aaa_logger("AUDIT").bind(
        action=snake_case(type(command).__name__),
        actor=meta.actor,
        correlation_id=meta.correlation_id,
    )
    try:
        # One span for the command, wherever it is decided (a worker thread runs in a copy
        # of the loop's context, so it is current there too).
        with command_span(getattr(handler, "__name__", "command")):
            outcome = None
            if on_loop is not None:
                # Once handed to the writer the command is recorded whatever happens to the
                # request: a cancelled one waits for its outcome, so that it is logged (as a
                # worker thread is waited for).
                with anyio.CancelScope(shield=True):
                    outcome = await on_loop(store, command, meta)
            if outcome is None:
                outcome = await anyio.to_thread.run_sync(partial(handler, store, command, meta))
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


def position_headers(outcome: Outcome[Any]) -> dict[str, str]:
    return {POSITION_HEADER: str(outcome.position)} if outcome.position is not None else {}
