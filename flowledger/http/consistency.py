"""Read-your-writes: a write answers with the position of its last event, and a read may ask
to wait (bounded) until the projection it reads has reached that position."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Final

from litestar.exceptions import HTTPException
from litestar.params import HeaderParameter
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.domain.backoff import Backoff
from flowledger.eventlog.store import APPLICATION_NAME
from flowledger.projections.tables import tracking_table

POSITION_HEADER: Final = "X-Flowledger-Position"
"""Response header of every write: the global position of the command's last event."""
MIN_POSITION_HEADER: Final = "X-Flowledger-Min-Position"
"""Request header of a read: answer only once the projection has reached this position."""

POLL: Final = Backoff(initial=0.005, maximum=0.05)
"""How often a read waiting for its projection looks again (soon at first, then less)."""

MinPosition = Annotated[
    int | None,
    HeaderParameter(
        name=MIN_POSITION_HEADER,
        ge=0,
        required=False,
        description=(
            "Read your writes: wait (up to the server's read wait timeout) until this read's "
            f"projection has reached the position a write returned in `{POSITION_HEADER}`."
        ),
    ),
]


async def projection_position(conn: AsyncConnection, projection: str) -> int:
    tracking = tracking_table(projection)
    value = (
        await conn.execute(
            select(tracking.c.notification_id).where(
                tracking.c.application_name == APPLICATION_NAME
            )
        )
    ).scalar_one_or_none()
    return int(value or 0)


async def wait_for_position(
    conn: AsyncConnection, projection: str, position: int | None, timeout_s: float
) -> None:
    """Return once ``projection`` has reached ``position``; 503 when it does not in time."""
    if not position:
        return
    deadline = time.monotonic() + timeout_s
    polls = 0
    while True:
        reached = await projection_position(conn, projection)
        await conn.rollback()  # end the snapshot so the next poll sees new commits
        if reached >= position:
            return
        if time.monotonic() >= deadline:
            raise HTTPException(
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
                detail=(
                    f"The {projection} projection has reached position {reached}, not yet "
                    f"{position}, after waiting {timeout_s:g}s; retry shortly."
                ),
                headers={"Retry-After": "1"},
            )
        polls += 1
        await asyncio.sleep(POLL.delay(polls))
