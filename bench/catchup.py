"""Projection catch-up and rebuild over one backlog: how fast ``flowledger worker projections``
projects it and how long ``flowledger projections rebuild --all`` then takes to replay it, each
beside how fast a plain ``SELECT`` streams the same event table in the same run; and whether
the worker's memory stays flat.

The backlog is written in bulk (``bench/backlog.py``) before the worker starts, so every
projection starts from position zero with the whole backlog to read: what a new deployment or
a lost read database goes through. The worker's memory is sampled over the run. Once the worker
has caught up (or its time limit passed) it is stopped, and the rebuild runs as operators run
it, in its own process, over the same rows.

Sizes (issue 15's targets): the full run seeds 1,000,000 events (about 6 s with COPY), gives
the catch-up at most ``CATCH_UP_LIMIT_S`` (50 s at the target rate) and the rebuild at most
``REBUILD_LIMIT_S`` (under 90 s at the target), so the module stays within about five minutes
on 2 cores even when both miss; ``--quick`` uses 20,000 events and short limits.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from bench.backlog import STEPS, copy_backlog, stream_rate, template
from bench.results import Figure
from bench.system import System, World, rss_mb
from flowledger.eventlog.store import APPLICATION_NAME, EVENTS_TABLE
from flowledger.projections.registry import all_projections

TARGET_EVENTS_PER_S = 20_000.0
REBUILD_TARGET_S = 90.0
CATCH_UP_LIMIT_S = 120.0
REBUILD_LIMIT_S = 180.0
"""The longest the full run waits for each (the rebuild is interrupted and reported as not
finished, which changes nothing in the live tables)."""
FLAT_GROWTH_MB = 10.0
"""Memory is flat when it grows less than this over the second half of the catch-up."""
SAMPLE_S = 0.25
LOG_TAIL_LINES = 20
"""How much of a failed rebuild's log the figure keeps (the work directory is removed)."""


@dataclass
class Track:
    """One projection's progress: (seconds since the worker started, position) samples."""

    name: str
    samples: list[tuple[float, int]] = field(default_factory=list)
    done_at: float | None = None

    def rate(self, head: int) -> float:
        moving = [(t, p) for t, p in self.samples if p > 0]
        if len(moving) < 2:
            return 0.0
        (t0, p0), (t1, p1) = moving[0], moving[-1]
        if self.done_at is not None:
            t1, p1 = self.done_at, head
        return (p1 - p0) / (t1 - t0) if t1 > t0 else 0.0


def _positions(system: System, names: list[str]) -> dict[str, int]:
    union = " UNION ALL ".join(
        f"SELECT '{name}', notification_id FROM \"{name}_tracking\" "
        "WHERE application_name = %(key)s"
        for name in names
    )
    with system.database.connect() as conn:
        rows = conn.execute(union, {"key": APPLICATION_NAME}).fetchall()
    return {str(name): int(str(position)) for name, position in rows}


def _follow(
    system: System, head: int, time_limit_s: float
) -> tuple[dict[str, Track], list[tuple[float, int, float]], float]:
    """Start the worker, sample positions and memory until every projection is at ``head`` or
    the time limit passes; the tracks, the (time, slowest position, RSS MiB) samples and the
    worker's peak RSS."""
    names = [p.name for p in all_projections()]
    tracks = {name: Track(name) for name in names}
    memory: list[tuple[float, int, float]] = []
    worker = system.start_worker("projections")
    started = time.perf_counter()
    try:
        while (now := time.perf_counter() - started) < time_limit_s:
            positions = _positions(system, names)
            for name, track in tracks.items():
                position = positions.get(name, 0)
                track.samples.append((now, position))
                if track.done_at is None and position >= head:
                    track.done_at = now
            rss = rss_mb(worker.popen.pid)
            if rss is not None:
                memory.append((now, min(positions.get(n, 0) for n in names), rss))
            if all(track.done_at is not None for track in tracks.values()):
                break
            if worker.popen.poll() is not None:
                raise RuntimeError(f"the projections worker exited with {worker.popen.returncode}")
            time.sleep(SAMPLE_S)
    finally:
        peak = system.stop(worker) or 0.0
    return tracks, memory, peak


def measure(world: World, quick: bool) -> tuple[list[Figure], dict[str, float]]:
    backlog = 20_000 if quick else 1_000_000
    catch_up_limit_s = 30.0 if quick else CATCH_UP_LIMIT_S
    rebuild_limit_s = 60.0 if quick else REBUILD_LIMIT_S
    with world.system("catchup") as system:
        runs = template(system)
        seed_s = copy_backlog(system.database, runs, backlog)
        with system.database.connect() as conn:
            row = conn.execute(f"SELECT max(notification_id) FROM {EVENTS_TABLE}").fetchone()
        head = int(str(row[0])) if row and row[0] is not None else 0
        baseline, streamed = stream_rate(system.database)
        tracks, memory, peak = _follow(system, head, catch_up_limit_s)
        # The same rows streamed again just before the rebuild: its baseline.
        rebuild_baseline, rebuild_streamed = stream_rate(system.database)
        rebuild = _rebuild(system, rebuild_limit_s)
    catch_up = _figure(tracks, memory, head, backlog, baseline, streamed, seed_s)
    replay = _rebuild_figure(rebuild, head, rebuild_streamed / rebuild_baseline, rebuild_limit_s)
    return [catch_up, replay], {"projections worker": peak, "projections rebuild": rebuild.peak_mb}


@dataclass
class Rebuild:
    """One ``flowledger projections rebuild --all``: wall time, whether it finished, and what it
    said it replayed (projection -> (events, seconds))."""

    seconds: float
    finished: bool
    exit_code: int | None
    replayed: dict[str, tuple[int, float]]
    peak_mb: float
    timed_out: bool = False
    log_tail: str = ""


_REBUILT = re.compile(r"^rebuilt (\S+): ([\d,]+) events replayed in ([\d.]+)s", re.MULTILINE)


def _rebuild(system: System, time_limit_s: float) -> Rebuild:
    """Run ``flowledger projections rebuild --all --jobs <cores>`` in its own process, as
    operators do, with the worker stopped; interrupted (SIGTERM: nothing changes) after
    ``time_limit_s``."""
    jobs = str(os.cpu_count() or 1)
    argv = [sys.executable, "-m", "flowledger", "projections", "rebuild", "--all", "--no-progress"]
    argv += ["--jobs", jobs]
    process = system.spawn("rebuild", argv)
    started = time.perf_counter()
    finished = False
    while time.perf_counter() - started < time_limit_s:
        process.sample()
        if process.popen.poll() is not None:
            finished = process.popen.returncode == 0
            break
        time.sleep(SAMPLE_S)
    seconds = time.perf_counter() - started
    timed_out = process.popen.poll() is None
    if timed_out:
        process.popen.send_signal(signal.SIGTERM)
        try:
            process.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait()
    peak = system.stop(process) or 0.0
    output = (system.workdir / "rebuild.log").read_text(errors="replace")
    replayed = {
        name: (int(events.replace(",", "")), float(secs))
        for name, events, secs in _REBUILT.findall(output)
    }
    tail = "\n".join(output.strip().splitlines()[-LOG_TAIL_LINES:]) if not finished else ""
    if tail:
        print(f"   the rebuild's log ends with:\n{tail}", flush=True)
    return Rebuild(seconds, finished, process.popen.returncode, replayed, peak, timed_out, tail)


def _rebuild_figure(rebuild: Rebuild, head: int, baseline_s: float, time_limit_s: float) -> Figure:
    replay_s = max((secs for _, secs in rebuild.replayed.values()), default=0.0)
    figure = Figure(
        name="projections rebuild --all of the catch-up's backlog",
        value=rebuild.seconds,
        unit="s",
        how=(
            f"after the catch-up, with the worker stopped: `flowledger projections rebuild "
            f"--all --no-progress --jobs {os.cpu_count() or 1}` (one process per core, each "
            f"rebuilding a share of the projections) over the same {head:,} events (replay "
            "into the side schema, indexes, swap); wall time from process start to exit"
        ),
        baseline=baseline_s,
        baseline_unit="s (SELECT of the same rows, server-side cursor)",
        target=f"< {REBUILD_TARGET_S:.0f} s",
        met=rebuild.finished and rebuild.seconds < REBUILD_TARGET_S,
        details={
            "events": head,
            "finished": rebuild.finished,
            "exit_code": rebuild.exit_code,
            "events_per_s": round(head / rebuild.seconds) if rebuild.finished else None,
            "replay_seconds": round(replay_s, 1),
            "replay_events_per_s": round(head / replay_s) if replay_s else None,
            "by_projection": {
                name: {"events": events, "seconds": secs}
                for name, (events, secs) in rebuild.replayed.items()
            },
            "peak_rss_mb": round(rebuild.peak_mb, 1),
        },
    )
    if rebuild.finished:
        figure.notes = (
            f"{head / rebuild.seconds:,.0f} events/s over the whole command "
            f"({head / replay_s:,.0f} events/s in the replay itself)"
            if replay_s
            else f"{head / rebuild.seconds:,.0f} events/s over the whole command"
        )
    elif rebuild.timed_out:
        figure.notes = (
            f"did not finish in the {time_limit_s:.0f} s the benchmark allows (stopped with "
            f"SIGTERM, exit code {rebuild.exit_code}); the end of its log is in the details"
        )
    else:
        figure.notes = (
            f"failed after {rebuild.seconds:.0f} s with exit code {rebuild.exit_code}; the end "
            "of its log is in the details"
        )
    if rebuild.log_tail:
        figure.details["log_tail"] = rebuild.log_tail
    return figure


def _figure(
    tracks: dict[str, Track],
    memory: list[tuple[float, int, float]],
    head: int,
    backlog: int,
    baseline: float,
    streamed: int,
    seed_s: float,
) -> Figure:
    rates = {name: round(track.rate(head)) for name, track in tracks.items()}
    finished = all(track.done_at is not None for track in tracks.values())
    # The whole system's rate: the position every projection has reached, over the time
    # since the first one moved (the worker's start-up is left out).
    moving = [(t, p) for t, p, _ in memory if p > 0]
    first_t = min((t for track in tracks.values() for t, p in track.samples if p > 0), default=0)
    last_t, frontier = moving[-1] if moving else (0.0, 0)
    if finished:
        last_t = max(track.done_at or 0.0 for track in tracks.values())
        frontier = head
    value = frontier / (last_t - first_t) if last_t > first_t else 0.0
    # Memory once the worker is projecting (its start-up is left out), and its growth over
    # the second half of the run: flat memory does not grow with the events handled.
    running = [(t, m) for t, _, m in memory if t >= first_t] or [(0.0, 0.0)]
    rss_start = running[0][1]
    rss_peak = max(m for _, m in running)
    second_half = [m for t, m in running if t >= (first_t + running[-1][0]) / 2]
    growth = (max(second_half) - second_half[0]) if second_half else 0.0
    flat = growth < FLAT_GROWTH_MB
    figure = Figure(
        name="projection catch-up: all projections from a backlog",
        value=value,
        unit="events/s",
        how=(
            f"{backlog:,} events (runs of {STEPS} steps, copied with COPY), then `flowledger "
            f"worker projections` ({len(tracks)} projections, default settings) until every "
            "projection reaches the head or the time limit; rate = position all projections "
            "reached / time since the first moved"
        ),
        baseline=baseline,
        baseline_unit="rows/s (SELECT, server-side cursor)",
        target=f"≥ {TARGET_EVENTS_PER_S:,.0f} events/s, flat memory",
        details={
            "backlog_events": backlog,
            "head": head,
            "caught_up": finished,
            "reached_position": frontier,
            "seconds": round(last_t - first_t, 1),
            "by_projection_events_per_s": rates,
            "by_projection_done_s": {
                name: None if track.done_at is None else round(track.done_at, 1)
                for name, track in tracks.items()
            },
            "rss_mb_start": round(rss_start, 1),
            "rss_mb_peak": round(rss_peak, 1),
            "rss_mb_growth_second_half": round(growth, 1),
            "baseline_rows": streamed,
            "seed_seconds": round(seed_s, 1),
        },
    )
    figure.met = finished and value >= TARGET_EVENTS_PER_S and flat
    slowest = min(rates, key=lambda name: rates[name])
    figure.notes = (
        ("" if finished else "did not reach the head within the time limit; ")
        + f"the slowest projection was {slowest} ({rates[slowest]:,} events/s). "
        + ("Memory is flat." if flat else f"Memory grew {growth:.0f} MiB in the second half.")
    )
    return figure
