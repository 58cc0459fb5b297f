"""``flowledger events tail`` and ``flowledger events status``."""

from __future__ import annotations

import argparse
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
        report = status_report(runtime)
    finally:
        runtime.close_sync()
    print(msgspec.json.format(msgspec.json.encode(report)).decode())
    return 0


def status_report(runtime: Runtime) -> dict[str, Any]:
    """The projections' lag (measured as by ``projections status`` and ``/health/ready``), the
    relay's and the webhook backlog."""
    from flowledger.eventlog import lag  # noqa: PLC0415
    from flowledger.kafka.status import relay_status  # noqa: PLC0415
    from flowledger.projections.registry import all_projections  # noqa: PLC0415
    from flowledger.webhooks.backlog import webhook_backlog  # noqa: PLC0415

    with runtime.engine.connect() as conn:
        lags = lag.measure(conn, runtime.store)
        measured = {f.name: f for f in lags.followers}
        projections = {}
        for projection in all_projections():
            found = measured.get(projection.name)
            position = found.position if found else 0
            projections[projection.name] = {
                "position": position,
                "lag_events": found.lag_events if found else lags.head,
            }
        return {
            "head_position": lags.head,
            "projections": projections,
            "relay": relay_status(conn, lags.head),
            "webhooks": webhook_backlog(conn),
        }
