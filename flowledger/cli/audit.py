"""``flowledger audit replay|verify|purge``: the audit tools on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO
from uuid import UUID

import msgspec

from flowledger.auditing.replay import VersionView, replay_entity
from flowledger.auditing.verify import verify_audit_log
from flowledger.domain.errors import NotFound
from flowledger.observability.logs import aaa_logger
from flowledger.projections.audit import purge_expired, retention_cutoff
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from flowledger.security.settings import SecuritySettings


def moment(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def add_audit_parser(commands: Any) -> None:
    audit = commands.add_parser("audit", help="replay an entity's history; verify the audit log")
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    replay = actions.add_parser(
        "replay", help="an entity's history and its state at each version, from the event store"
    )
    replay.add_argument("entity_type", help="agent, api_key, workflow, run...")
    replay.add_argument("entity_id", type=UUID)
    replay.add_argument("--until", type=moment, help="stop at this time (ISO 8601; UTC default)")
    replay.add_argument("--json", action="store_true", help="print JSON instead of text")
    verify = actions.add_parser(
        "verify", help="recompute the audit log from the event store; exit 1 on any difference"
    )
    verify.add_argument("--json", action="store_true", help="print JSON instead of text")
    actions.add_parser("purge", help="delete audit rows older than the retention now")


def run_audit(settings: Settings, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    runtime = Runtime.open(settings)
    try:
        if args.action == "replay":
            return _replay(runtime, args, out)
        if args.action == "verify":
            return _verify(runtime, args, out)
        return _purge(runtime, out)
    finally:
        runtime.close_sync()


def _dumps(value: Any) -> str:
    return json.dumps(msgspec.to_builtins(value), sort_keys=True)


def _replay(runtime: Runtime, args: argparse.Namespace, out: TextIO) -> int:
    try:
        history = replay_entity(runtime.store, args.entity_type, args.entity_id, args.until)
    except NotFound as error:
        print(f"flowledger: {error.detail}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(msgspec.to_builtins(history), indent=2), file=out)
        return 0
    until = f" until {args.until.isoformat()}" if args.until else ""
    print(f"{args.entity_type} {args.entity_id}: {len(history)} versions{until}", file=out)
    for view in history:
        print(_version_line(view), file=out)
        print(f"  changes  {_dumps(view.changes)}", file=out)
        print(f"  state    {_dumps(view.state)}", file=out)
    return 0


def _version_line(view: VersionView) -> str:
    correlation = f"  correlation {view.correlation_id}" if view.correlation_id else ""
    return (
        f"v{view.version}  {view.occurred_at.isoformat()}  {view.event_type} ({view.action})  "
        f"by {view.actor}  position {view.position}{correlation}"
    )


def _verify(runtime: Runtime, args: argparse.Namespace, out: TextIO) -> int:
    retention = SecuritySettings.from_settings(runtime.settings).audit_retention_days
    report = verify_audit_log(
        runtime.store, runtime.engine, now=datetime.now(UTC), retention_days=retention
    )
    aaa_logger("AUDIT").info(
        "audit log verified",
        result="SUCCESS" if report.ok else "FAILURE",
        discrepancies=len(report.discrepancies),
        up_to=report.checked_up_to,
    )
    if args.json:
        print(json.dumps(msgspec.to_builtins(report) | {"ok": report.ok}, indent=2), file=out)
        return 0 if report.ok else 1
    kept = f"{retention} days" if retention else "forever"
    print(
        f"audit verify: {report.events} events up to position {report.checked_up_to}: "
        f"{report.matching} rows match, {report.purged} purged by retention ({kept})",
        file=out,
    )
    for found in report.discrepancies:
        print(f"{found.kind.upper():<11} position {found.position}: {found.detail}", file=out)
    if report.ok:
        print("audit verify: OK", file=out)
        return 0
    print(f"audit verify: FAILED, {len(report.discrepancies)} discrepancies", file=out)
    return 1


def _purge(runtime: Runtime, out: TextIO) -> int:
    retention = SecuritySettings.from_settings(runtime.settings).audit_retention_days
    cutoff = retention_cutoff(datetime.now(UTC), retention)
    if cutoff is None:
        print("audit purge: retention is forever; nothing to delete", file=out)
        return 0
    deleted = purge_expired(runtime.engine, cutoff)
    print(f"audit purge: deleted {deleted} rows of events before {cutoff.isoformat()}", file=out)
    return 0
