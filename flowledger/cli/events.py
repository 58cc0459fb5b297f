"""``flowledger events tail`` and ``flowledger events status``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any
from uuid import UUID

import msgspec

from flowledger.cli.tail import TailRequest, dev_broker, tail_kafka, tail_store
from flowledger.eventlog.envelope import EventFilter
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings


def tail_request(args: argparse.Namespace) -> TailRequest:
    types: list[str] = []
    ids: list[UUID] = []
    for value in args.aggregate:
        try:
            ids.append(UUID(value))
        except ValueError:
            types.append(value)
    after = 0 if args.from_beginning else args.from_position
    return TailRequest(
        event_filter=EventFilter(
            aggregate_types=tuple(types), aggregate_ids=tuple(ids), event_types=tuple(args.type)
        ),
        after=after,
        limit=args.limit,
    )


def events_tail(settings: Settings, args: argparse.Namespace) -> int:
    request = tail_request(args)
    bootstrap = None
    if args.source != "store":
        bootstrap = settings.kafka_bootstrap_servers or dev_broker(settings)
        if bootstrap is None and args.source == "kafka":
            print(
                "flowledger: no broker: set KAFKA_BOOTSTRAP_SERVERS or run flowledger dev",
                file=sys.stderr,
            )
            return 2
    try:
        if bootstrap is not None:
            # The tail's output is the JSON lines; client retries while a broker restarts are
            # not news for whoever reads them.
            logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
            tail_kafka(settings, bootstrap, request)
        else:
            tail_store(settings, request)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # | head
        sys.stderr.close()
    return 0


def events_status(settings: Settings) -> int:
    runtime = Runtime.open(settings)
    try:
        report = asyncio.run(_status(runtime))
    finally:
        runtime.close_sync()
    print(msgspec.json.format(msgspec.json.encode(report)).decode())
    return 0


async def _status(runtime: Runtime) -> dict[str, Any]:
    from flowledger.http.consistency import projection_position  # noqa: PLC0415
    from flowledger.http.events.status import relay_status, webhook_backlog  # noqa: PLC0415
    from flowledger.projections.registry import all_projections  # noqa: PLC0415

    try:
        async with runtime.async_engine.connect() as conn:
            head = runtime.store.head()
            projections = {}
            for projection in all_projections():
                position = await projection_position(conn, projection.name)
                projections[projection.name] = {"position": position, "lag_events": head - position}
            return {
                "head_position": head,
                "projections": projections,
                "relay": await relay_status(conn, head),
                "webhooks": await webhook_backlog(conn),
            }
    finally:
        await runtime.async_engine.dispose()
