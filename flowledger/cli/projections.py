"""``flowledger projections status`` and ``flowledger projections rebuild``: what operators
type, and what they see (a table, a progress bar with events, events/s and ETA)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

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


class EventRateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} events/s" if speed else "- events/s", style="cyan")


def rebuild(
    runtime: Runtime,
    projections: Sequence[Projection],
    *,
    batch_size: int = 5000,
    lock_timeout_s: float = 5.0,
    show_progress: bool | None = None,
) -> list[RebuildResult]:
    """Rebuild the projections with one replay of the log, then swap each in atomically,
    showing progress (events, events/s, ETA)."""
    console = Console(stderr=True)
    show = console.is_terminal if show_progress is None else show_progress
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        EventRateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
    ) as progress:
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
