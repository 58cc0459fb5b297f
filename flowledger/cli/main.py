"""The ``flowledger`` command."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from flowledger.runtime.settings import Settings, SettingsError, get_settings

if TYPE_CHECKING:
    from flowledger.runtime import connections

log = logging.getLogger("flowledger.cli.main")


def _positive(raw: str) -> int:
    """An argument that must be a whole number of at least 1 (argparse prints the error)."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {raw!r}")
    return value


def _host_port(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("--host", default=settings.host, help="interface to listen on")
    parser.add_argument("--port", type=int, default=settings.port, help="port to listen on")
    parser.add_argument(
        "--processes",
        type=_positive,
        default=settings.api_processes,
        help="API processes answering on that port (default FLOWLEDGER_API_PROCESSES, 1); "
        "each uses one core at most",
    )


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowledger", description="Event-sourced agent workflow service."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev", help="run everything on this machine (embedded database, API, workers)"
    )
    _host_port(dev, settings)

    serve = commands.add_parser("serve", help="run the HTTP API")
    _host_port(serve, settings)

    migrate = commands.add_parser("migrate", help="apply or roll back schema migrations")
    migrate_actions = migrate.add_subparsers(dest="action", metavar="ACTION")
    up = migrate_actions.add_parser("upgrade", help="upgrade to a revision (default: head)")
    up.add_argument("revision", nargs="?", default="head")
    down = migrate_actions.add_parser(
        "downgrade", help="downgrade to a revision (e.g. -1, or base: drops everything)"
    )
    down.add_argument("revision")
    down.add_argument("--yes", action="store_true", help="confirm: downgrades can drop data")
    migrate_actions.add_parser("current", help="print the database's revision")

    from flowledger.cli.audit import add_audit_parser  # noqa: PLC0415

    add_audit_parser(commands)
    from flowledger.cli.users import add_users_parser  # noqa: PLC0415

    add_users_parser(commands)

    from flowledger.cli.triggers import add_triggers_parser  # noqa: PLC0415

    add_triggers_parser(commands)

    from flowledger.cli.runs import add_runs_parser  # noqa: PLC0415

    add_runs_parser(commands)

    events = commands.add_parser("events", help="follow the event stream, or see how far behind")
    event_actions = events.add_subparsers(dest="action", metavar="ACTION", required=True)
    tail = event_actions.add_parser(
        "tail",
        help="print event envelopes as JSON lines, live (from Kafka when configured, else the "
        "event store)",
    )
    start = tail.add_mutually_exclusive_group()
    start.add_argument(
        "--from-beginning", action="store_true", help="every event, then follow (default: new only)"
    )
    start.add_argument(
        "--from-position", type=int, metavar="N", help="events after global position N"
    )
    tail.add_argument(
        "--type",
        action="append",
        default=[],
        metavar="EVENT_TYPE",
        help="only this event type; glob patterns (Run*) work; repeat for several",
    )
    tail.add_argument(
        "--aggregate",
        action="append",
        default=[],
        metavar="TYPE_OR_ID",
        help="only this aggregate type (agent, run, ...) or aggregate id; repeat for several",
    )
    tail.add_argument(
        "--source",
        choices=["auto", "kafka", "store"],
        default="auto",
        help="where to read: auto (Kafka if configured or dev's broker runs), kafka or store",
    )
    tail.add_argument("--limit", type=int, metavar="N", help="stop after N events")
    event_actions.add_parser(
        "status", help="print the relay's lag and error and the webhook backlog (JSON)"
    )

    worker = commands.add_parser("worker", help="run one derived process")
    from flowledger.runtime.workers import WORKERS  # noqa: PLC0415

    worker.add_argument(
        "kind",
        choices=sorted(WORKERS),
        help="; ".join(f"{k.name}: {k.description}" for k in WORKERS.values()),
    )

    projections = commands.add_parser(
        "projections", help="inspect projections, or rebuild them from the event store"
    )
    projection_actions = projections.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = projection_actions.add_parser(
        "status", help="each projection's (and follower's) position and lag"
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rebuild = projection_actions.add_parser(
        "rebuild",
        help="replay projections from position zero into fresh tables, then swap them in "
        "atomically while the API keeps serving the old ones",
    )
    from flowledger.projections.settings import BATCH_SIZE  # noqa: PLC0415

    rebuild.add_argument("names", nargs="*", metavar="NAME", help="projections to rebuild")
    rebuild.add_argument("--all", action="store_true", help="rebuild every projection")
    rebuild.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SIZE,
        help=f"events per transaction (default {BATCH_SIZE})",
    )
    rebuild.add_argument(
        "--lock-timeout",
        type=float,
        default=5.0,
        help="seconds the swap waits for locks before it rolls back and tries again",
    )
    rebuild.add_argument(
        "--no-progress", action="store_true", help="no progress bar, only a summary line"
    )
    rebuild.add_argument(
        "--jobs",
        type=_positive,
        default=1,
        help="replay in this many processes, each rebuilding a share of the projections "
        "(default 1; up to the number of cores helps)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = get_settings()
        from flowledger.cli.settings import check_settings  # noqa: PLC0415

        check_settings(settings)  # every capability's, so a bad value stops us here
    except SettingsError as error:
        print(f"flowledger: {error}", file=sys.stderr)
        return 2
    args = build_parser(settings).parse_args(argv)
    if args.command == "dev" and "FLOWLEDGER_LOG_FORMAT" not in settings.extra:
        settings = settings.with_overrides(log_format="console")

    from flowledger.observability.logs import configure_logging  # noqa: PLC0415
    from flowledger.observability.tracing import configure_tracing  # noqa: PLC0415

    configure_logging(settings)
    process = f"worker-{args.kind}" if args.command == "worker" else args.command
    configure_tracing(settings.extra, service_name=f"flowledger-{process}")
    handler = {
        "dev": _dev,
        "serve": _serve,
        "migrate": _migrate,
        "worker": _worker,
        "projections": _projections,
        "audit": _audit,
        "triggers": _triggers,
        "events": _events,
        "users": _users,
        "runs": _runs,
    }
    run = handler[args.command]
    from flowledger.cli.patience import patiently  # noqa: PLC0415
    from flowledger.runtime import connections  # noqa: PLC0415

    previous = connections.process_role()
    connections.set_process_role(_role(args))
    try:
        return patiently(lambda: run(settings, args), settings, retry=args.command not in NO_RETRY)
    finally:
        connections.set_process_role(previous)  # (main() may run in a test's process)


NO_RETRY = frozenset({"dev", "serve"})
"""Commands that say in one line why the database refused them but do not start again."""


def _role(args: argparse.Namespace) -> connections.ProcessRole:
    """What this process is, for its connections' names and its connection budget."""
    from flowledger.runtime import connections  # noqa: PLC0415

    if args.command in ("dev", "serve"):
        return connections.API
    if args.command == "worker":
        from flowledger.runtime.workers import worker_kind  # noqa: PLC0415

        return worker_kind(args.kind).role
    action = getattr(args, "action", None)
    return connections.command(f"{args.command} {action}" if action else args.command)


def _dev(settings: Settings, args: argparse.Namespace) -> int:
    from flowledger.cli.dev import run_dev  # noqa: PLC0415

    return run_dev(settings, args.host, args.port, args.processes)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from flowledger.cli.serve import serve  # noqa: PLC0415

    serve(settings, args.host, args.port, args.processes)
    return 0


def _runs(settings: Settings, args: argparse.Namespace) -> int:
    from flowledger.cli.runs import run_runs  # noqa: PLC0415

    return run_runs(settings, args)


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    from flowledger.cli.audit import run_audit  # noqa: PLC0415

    return run_audit(settings, args)


def _triggers(settings: Settings, args: argparse.Namespace) -> int:
    from flowledger.cli.triggers import run_triggers  # noqa: PLC0415

    return run_triggers(settings, args)


def _users(settings: Settings, args: argparse.Namespace) -> int:
    from flowledger.cli.users import run_users  # noqa: PLC0415

    return run_users(settings, args)


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from flowledger.runtime import migrations  # noqa: PLC0415
    from flowledger.runtime.database import resolve_database  # noqa: PLC0415

    database = resolve_database(settings)
    action = args.action or "upgrade"
    if action == "current":
        print(migrations.current_revision(database) or "base")
    elif action == "upgrade":
        migrations.upgrade(database, getattr(args, "revision", "head"))
        print(f"database at revision {migrations.current_revision(database)}")
    else:
        if not args.yes:
            print(
                "flowledger: downgrading can drop tables and events; pass --yes to confirm",
                file=sys.stderr,
            )
            return 2
        migrations.downgrade(database, args.revision)
        print(f"database at revision {migrations.current_revision(database) or 'base'}")
    return 0


def _events(settings: Settings, args: argparse.Namespace) -> int:
    from flowledger.cli.events import events_status, events_tail  # noqa: PLC0415

    if args.action == "status":
        return events_status(settings)
    return events_tail(settings, args)


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from flowledger.eventlog.follower import FollowerFailed  # noqa: PLC0415
    from flowledger.runtime.process import Runtime  # noqa: PLC0415
    from flowledger.runtime.workers import lower_priority, run_worker  # noqa: PLC0415

    niceness = lower_priority(args.kind, settings)  # before any thread starts
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if settings.worker_metrics_port:
        from flowledger.observability.metrics import serve_worker_metrics  # noqa: PLC0415

        serve_worker_metrics(settings.worker_metrics_port)
    runtime = Runtime.open(settings)
    log.info("worker %s started (niceness %d)", args.kind, niceness)
    try:
        run_worker(args.kind, runtime, stop)
    except FollowerFailed as failure:
        log.critical("worker %s stopped: %s", args.kind, failure)
        return 1
    except SettingsError as error:
        print(f"flowledger: {error}", file=sys.stderr)
        return 2
    finally:
        runtime.close_sync()
    log.info("worker %s stopped", args.kind)
    return 0


def _projections(settings: Settings, args: argparse.Namespace) -> int:
    from flowledger.cli import projections as admin  # noqa: PLC0415
    from flowledger.projections.rebuild import RebuildError  # noqa: PLC0415
    from flowledger.runtime.process import Runtime  # noqa: PLC0415

    if args.action == "rebuild":
        try:
            chosen = admin.choose(args.names, args.all)
        except ValueError as error:
            print(f"flowledger: {error}", file=sys.stderr)
            return 2
    runtime = Runtime.open(settings)
    try:
        if args.action == "status":
            return admin.status(runtime, as_json=args.json)
        show = False if args.no_progress else None
        if args.jobs > 1 and len(chosen) > 1:
            return admin.rebuild_in_processes(
                runtime,
                chosen,
                jobs=args.jobs,
                batch_size=args.batch_size,
                lock_timeout_s=args.lock_timeout,
                show_progress=show,
            )
        admin.rebuild(
            runtime,
            chosen,
            batch_size=args.batch_size,
            lock_timeout_s=args.lock_timeout,
            show_progress=show,
        )
    except RebuildError as error:
        print(f"flowledger: {error}", file=sys.stderr)
        return 1
    finally:
        runtime.close_sync()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
