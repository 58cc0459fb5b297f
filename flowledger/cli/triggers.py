"""``flowledger triggers list|backfill``: see the triggers; start the runs of a past range."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO
from uuid import UUID

from sqlalchemy import select

from flowledger.cli.audit import moment
from flowledger.commands.triggers import MAX_BACKFILL, Backfill, backfill, trigger_actor
from flowledger.domain.errors import DomainError
from flowledger.domain.schedules import Schedule
from flowledger.eventlog.store import EventMetadata
from flowledger.projections.tables import triggers
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings


def add_triggers_parser(commands: Any) -> None:
    parser = commands.add_parser("triggers", help="list triggers; backfill a schedule")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every live trigger, its status and next fire time")
    fill = actions.add_parser(
        "backfill",
        help="start the runs of a schedule's ticks in (--from, --to] that have not fired",
    )
    fill.add_argument("trigger_id", type=UUID)
    fill.add_argument("--from", dest="start", type=moment, required=True, help="ISO 8601 time")
    fill.add_argument("--to", dest="end", type=moment, required=True, help="ISO 8601 time")
    fill.add_argument("--limit", type=int, default=MAX_BACKFILL, help="at most this many ticks")
    fill.add_argument("--json", action="store_true", help="print JSON instead of text")


def run_triggers(settings: Settings, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    runtime = Runtime.open(settings)
    try:
        if args.action == "list":
            return _list(runtime, out)
        return _backfill(runtime, args, out)
    finally:
        runtime.close_sync()


def _list(runtime: Runtime, out: TextIO) -> int:
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(triggers).where(triggers.c.removed.is_(False)).order_by(triggers.c.created_at)
        ).all()
    for row in rows:
        status = "paused" if row.paused else ("active" if row.enabled else "disabled")
        where = f"/hooks/{row.path}" if row.type == "webhook" else ""
        if row.type == "schedule" and status == "active":
            where = (
                "next " + Schedule.of(row.config).next_times(datetime.now(UTC), 1)[0].isoformat()
            )
        print(f"{row.id}  {row.type:<8}  {status:<8}  {row.key:<24}  {where}", file=out)
    return 0


def _backfill(runtime: Runtime, args: argparse.Namespace, out: TextIO) -> int:
    command = Backfill(trigger_id=args.trigger_id, start=args.start, end=args.end, limit=args.limit)
    meta = EventMetadata.system(trigger_actor(args.trigger_id))
    try:
        result = backfill(runtime.store, command, meta)
    except DomainError as error:
        print(f"flowledger: {error.detail}", file=sys.stderr)
        return 1
    firings = [
        {
            "tick": f.aggregate.scheduled_for.isoformat() if f.aggregate.scheduled_for else None,
            "run_id": str(f.aggregate.run_id) if f.aggregate.run_id else None,
            "error": f.aggregate.error,
            "already_fired": f.replayed,
        }
        for f in result.fired
    ]
    if args.json:
        print(
            json.dumps({"ticks": len(result.ticks), "started": result.started, "firings": firings}),
            file=out,
        )
        return 0
    for firing in firings:
        outcome = (
            "fired before" if firing["already_fired"] else (firing["run_id"] or firing["error"])
        )
        print(f"{firing['tick']}  {outcome}", file=out)
    print(f"{len(result.ticks)} ticks, {result.started} runs started", file=out)
    return 0
