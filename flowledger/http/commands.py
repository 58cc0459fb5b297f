"""Running write-side handlers from async controllers, and answering with the position."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Final, TypeVar

import anyio.to_thread
from litestar.datastructures import ResponseHeader

from flowledger.commands import Outcome
from flowledger.domain.errors import DomainError
from flowledger.eventstore import EventMetadata, EventStore, snake_case
from flowledger.http.consistency import POSITION_HEADER
from flowledger.logs import aaa_logger

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
    """Run a (blocking) command handler in a worker thread; log the outcome (AUDIT)."""
    log = aaa_logger("AUDIT").bind(
        action=snake_case(type(command).__name__),
        actor=meta.actor,
        correlation_id=meta.correlation_id,
    )
    try:
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
