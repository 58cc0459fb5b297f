"""``flowledger runs cancel|retry``: a bulk operation from a terminal, through the API.

The filters become the body of ``POST /api/v1/runs/bulk/<action>``; ``--dry-run`` prints what
it would do; otherwise the operation is started and followed with a progress bar until it ends
(Ctrl+C stops following, not the operation).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flowledger.cli.client import Api, RemoteError
from flowledger.cli.remote import api_key, base_url
from flowledger.runtime.settings import Settings

STATUSES: Final = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
_AGO = re.compile(r"^(\d+)([smhd])$")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
POLL_S: Final = 0.5
SHOWN_RUNS: Final = 20


def add_runs_parser(commands: Any) -> None:
    runs = commands.add_parser("runs", help="cancel or retry many runs at once (through the API)")
    actions = runs.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, verb in (("cancel", "cancel"), ("retry", "retry")):
        parser = actions.add_parser(action, help=f"{verb} the runs the filters match")
        parser.add_argument("--status", choices=STATUSES, type=str.upper, help="run status")
        parser.add_argument("--workflow", metavar="NAME_OR_ID", help="the workflow's name or id")
        parser.add_argument("--agent", metavar="NAME", help="runs with a step calling this agent")
        parser.add_argument(
            "--since", metavar="TIME", help="created at or after: ISO 8601, or 30m, 2h, 1d ago"
        )
        parser.add_argument("--until", metavar="TIME", help="created before (same forms)")
        parser.add_argument("--triggered-by", metavar="ACTOR", help="who requested the runs")
        parser.add_argument(
            "--run-id", action="append", default=[], metavar="ID", help="this run (repeat)"
        )
        parser.add_argument("--limit", type=int, metavar="N", help="at most N runs, oldest first")
        parser.add_argument("--reason", help="why (kept with the operation)")
        parser.add_argument("--dry-run", action="store_true", help="only show what would be done")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--url", help="the API (default: FLOWLEDGER_URL, else this host)")
        parser.add_argument("--api-key", help="the key to send (default: FLOWLEDGER_API_KEY...)")


def run_runs(settings: Settings, args: argparse.Namespace) -> int:
    console = Console()
    try:
        with Api(base_url(settings, args.url), api_key(settings, args.api_key)) as api:
            body = _body(api, args)
            path = f"/api/v1/runs/bulk/{args.action}"
            if args.dry_run or _asks(args):
                preview = api.call(
                    "POST", path, json={**body, "dry_run": True}, params={"page_size": SHOWN_RUNS}
                )
                if args.dry_run:
                    _show_preview(console, preview)
                    return 0
                if not _confirmed(console, args.action, preview):
                    console.print("Nothing done.")
                    return 1
            operation = api.call("POST", path, json=body)
            return _follow(console, api, operation)
    except (RemoteError, ValueError) as error:
        print(f"flowledger: {error}", file=sys.stderr)
        return 1


def _body(api: Api, args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": args.status,
        "workflow_id": _workflow_id(api, args.workflow) if args.workflow else None,
        "agent_name": args.agent,
        "created_from": _time(args.since, "--since") if args.since else None,
        "created_to": _time(args.until, "--until") if args.until else None,
        "triggered_by": args.triggered_by,
        "run_ids": args.run_id or None,
        "limit": args.limit,
        "reason": args.reason,
    }
    return {key: value for key, value in body.items() if value is not None}


def _workflow_id(api: Api, name_or_id: str) -> str:
    try:
        return str(UUID(name_or_id))
    except ValueError:
        pass
    page = api.call("GET", "/api/v1/workflows", params={"name": name_or_id, "page_size": 100})
    exact = [w["id"] for w in page["items"] if w["name"] == name_or_id]
    if not exact:
        raise ValueError(f"no workflow is named {name_or_id!r}")
    return str(exact[0])


def _time(text: str, option: str) -> str:
    ago = _AGO.match(text.strip())
    if ago:
        moment = datetime.now(UTC) - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(f"{option} takes ISO 8601 (2026-11-30T09:00) or 30m, 2h, 1d") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _show_preview(console: Console, preview: dict[str, Any]) -> None:
    verb = "retried" if preview["action"] == "retry" else "cancelled"
    console.print(
        f"{preview['matched']} runs match: {preview['would_apply']} would be {verb}, "
        f"{preview['would_skip']} skipped. By status: "
        + ", ".join(f"{s} {n}" for s, n in sorted(preview["by_status"].items()))
    )
    if not preview["within_limit"]:
        console.print(f"[red]More than {preview['max_runs']} runs: narrow the filters or --limit.")
    for run_id in preview["unmatched_run_ids"]:
        console.print(f"[yellow]run {run_id} matches nothing you may {preview['action']}")
    table = Table("run", "workflow", "status", "would", "why / what a retry redoes")
    for run in preview["runs"]["items"]:
        plan = run.get("retry_plan")
        what = run["reason"] or ""
        if plan:
            redo = ", ".join(s["step_id"] for s in plan["rerun_steps"])
            reuse = ", ".join(s["step_id"] for s in plan["reused_steps"])
            what = f"redo {redo}" + (f"; reuse {reuse}" if reuse else "")
        workflow = f"{run['workflow_name']} v{run['workflow_version']}"
        table.add_row(run["run_id"], workflow, run["status"], run["would"], what)
    console.print(table)
    if preview["runs"]["total"] > len(preview["runs"]["items"]):
        console.print(f"(the first {len(preview['runs']['items'])} of {preview['runs']['total']})")


def _asks(args: argparse.Namespace) -> bool:
    """Whether to ask before acting: at a terminal, without ``--yes``."""
    return not args.yes and sys.stdin.isatty()


def _confirmed(console: Console, action: str, preview: dict[str, Any]) -> bool:
    _show_preview(console, preview)
    answer = console.input(f"{action.capitalize()} {preview['would_apply']} runs? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _follow(console: Console, api: Api, operation: dict[str, Any]) -> int:
    path = f"/api/v1/runs/bulk/{operation['id']}"
    console.print(f"bulk operation {operation['id']}: {operation['matched']} runs")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"),
    )
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(operation["action"], total=operation["matched"], counts="")
            while True:
                current = api.call("GET", path)
                reached = current["done"] + current["skipped"] + current["failed"]
                counts = ", ".join(f"{k} {current[k]}" for k in ("done", "skipped", "failed"))
                progress.update(task, completed=reached, counts=counts)
                if current["status"] != "RUNNING":
                    break
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        console.print(f"Stopped following; the operation goes on: GET {api.url}{path}")
        return 130
    return _summary(console, current)


def _summary(console: Console, operation: dict[str, Any]) -> int:
    skipped = ", ".join(f"{s} {n}" for s, n in sorted(operation["skipped_by_status"].items()))
    console.print(
        f"{operation['status']}: {operation['done']} done, {operation['skipped']} skipped"
        + (f" ({skipped})" if skipped else "")
        + f", {operation['failed']} failed, {operation['pending']} not reached"
    )
    for failure in operation["failures"]:
        console.print(f"[red]run {failure['run_id']}: {failure['reason']}")
    return 0 if operation["status"] == "COMPLETED" and not operation["failed"] else 1
