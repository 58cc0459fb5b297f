"""``flowledger projections status`` and ``flowledger projections rebuild``: what operators
type, and what they see (a table, a progress bar with events, events/s and ETA)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any, Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from flowledger.eventlog import lag
from flowledger.projections.projector import Projection
from flowledger.projections.rebuild import RebuildProgress, RebuildResult, rebuild_projections
from flowledger.projections.registry import all_projections
from flowledger.projections.settings import BATCH_SIZE
from flowledger.runtime.process import Runtime


def choose(names: Sequence[str], everything: bool) -> list[Projection]:
    """The projections named (or all of them); ValueError naming the unknown ones."""
    known = {p.name: p for p in all_projections()}
    if everything:
        return list(known.values())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(
            f"unknown projection(s): {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(known)} (or --all)"
        )
    return [known[n] for n in dict.fromkeys(names)]


def status(runtime: Runtime, as_json: bool = False) -> int:
    with runtime.engine.connect() as conn:
        lags = lag.measure(conn, runtime.store)
    projections = {p.name for p in all_projections()}
    rows: list[dict[str, Any]] = [
        {
            "name": f.name,
            "kind": "projection" if f.name in projections else "follower",
            "position": f.position,
            "lag_events": f.lag_events,
            "lag_seconds": None if f.lag_seconds is None else round(f.lag_seconds, 3),
            "rebuild_position": f.rebuild_position,
        }
        for f in lags.followers
    ]
    if as_json:
        print(json.dumps({"head_position": lags.head, "followers": rows}, indent=2))
        return 0
    table = Table(title=f"event store head: position {lags.head}")
    for column in ("name", "kind", "position", "lag events", "lag seconds", "rebuild at"):
        table.add_column(column, justify="left" if column in ("name", "kind") else "right")
    for row in rows:
        table.add_row(
            row["name"],
            row["kind"],
            f"{row['position']:,}",
            f"{row['lag_events']:,}",
            "?" if row["lag_seconds"] is None else f"{row['lag_seconds']:.1f}",
            "" if row["rebuild_position"] is None else f"{row['rebuild_position']:,}",
        )
    Console().print(table)
    return 0


REPLAY_SHARE: Final = {"runs": 13.0, "audit_log": 6.5, "run_logs": 4.0, "webhooks": 3.0}
"""A projection's share of a replay's work (seconds per 300,000 run events on the benchmark's
machine); the others' is about nothing but their position. ``--jobs`` balances groups by it."""
POLL_S: Final = 0.5
"""How often ``--jobs`` reads the copies' positions for its progress bar."""


def groups_for(projections: Sequence[Projection], jobs: int) -> list[list[Projection]]:
    """``projections`` in at most ``jobs`` groups of about equal work, heaviest first, each
    to be replayed by a process of its own."""
    groups: list[list[Projection]] = [[] for _ in range(max(1, min(jobs, len(projections))))]
    loads = [0.0] * len(groups)
    by_share = sorted(projections, key=lambda p: -REPLAY_SHARE.get(p.name, 0.1))
    for projection in by_share:
        lightest = loads.index(min(loads))
        groups[lightest].append(projection)
        loads[lightest] += REPLAY_SHARE.get(projection.name, 0.1)
    return groups


def rebuild_in_processes(
    runtime: Runtime,
    projections: Sequence[Projection],
    *,
    jobs: int,
    batch_size: int = BATCH_SIZE,
    lock_timeout_s: float = 5.0,
    show_progress: bool | None = None,
) -> int:
    """``projections rebuild --jobs N``: the projections in N groups (:func:`groups_for`), each
    rebuilt by a ``projections rebuild`` process of its own, so the replay uses N cores; one
    progress bar follows the slowest copy. The exit code is the first failing child's (0 when
    all swapped in); SIGTERM or Ctrl-C stops them all, which changes no live table."""
    groups = groups_for(projections, jobs)
    children = [
        subprocess.Popen(  # noqa: S603  (our own command, with projection names we checked)
            [
                sys.executable,
                "-m",
                "flowledger",
                "projections",
                "rebuild",
                *(p.name for p in group),
                "--batch-size",
                str(batch_size),
                "--lock-timeout",
                str(lock_timeout_s),
                "--no-progress",
            ]
        )
        for group in groups
    ]

    def stop(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    console = Console(stderr=True)
    show = console.is_terminal if show_progress is None else show_progress
    names = {p.name for p in projections}
    try:
        with _progress(console, show) as progress:
            task = progress.add_task(
                f"replay {len(projections)} projections in {len(groups)} processes", total=None
            )
            while any(child.poll() is None for child in children):
                with runtime.engine.connect() as conn:
                    lags = lag.measure(conn, runtime.store)
                copies = [
                    f.rebuild_position
                    for f in lags.followers
                    if f.name in names and f.rebuild_position is not None
                ]
                progress.update(task, completed=min(copies, default=0), total=lags.head)
                time.sleep(POLL_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for child in children:
            child.wait()
    failed = next((child.returncode for child in children if child.returncode), 0)
    return failed if failed >= 0 else 128 - failed  # killed by a signal: 128 + its number


def _progress(console: Console, show: bool) -> Progress:
    """The bar of a rebuild: events (by position), events/s, ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        EventRateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
    )


class EventRateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} events/s" if speed else "- events/s", style="cyan")


def rebuild(
    runtime: Runtime,
    projections: Sequence[Projection],
    *,
    batch_size: int = BATCH_SIZE,
    lock_timeout_s: float = 5.0,
    show_progress: bool | None = None,
) -> list[RebuildResult]:
    """Rebuild the projections with one replay of the log, then swap each in atomically,
    showing progress (events, events/s, ETA)."""
    console = Console(stderr=True)
    show = console.is_terminal if show_progress is None else show_progress
    with _progress(console, show) as progress:
        label = projections[0].name if len(projections) == 1 else f"{len(projections)} projections"
        task = progress.add_task(f"replay {label}", total=None)

        def update(p: RebuildProgress) -> None:
            """The bar goes by position (the log's positions, the rate and ETA with them)."""
            description = f"replay {label}" if p.phase == "replay" else f"{p.phase} {p.projection}"
            progress.update(task, completed=p.position, total=p.head, description=description)

        results = rebuild_projections(
            runtime.engine,
            runtime.store,
            projections,
            batch_size=batch_size,
            lock_timeout_s=lock_timeout_s,
            on_progress=update,
        )
    for result in results:
        print(
            f"rebuilt {result.projection}: {result.events:,} events replayed in "
            f"{result.seconds:.1f}s ({result.events / max(result.seconds, 1e-9):,.0f} "
            f"events/s), swapped in at position {result.position:,}",
            file=sys.stdout,
            flush=True,
        )
    return results
