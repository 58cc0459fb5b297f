"""``python -m bench all | <benchmark>... [--quick] [--database-url URL] [--out DIR]``.

Each benchmark starts what it measures on a fresh database of the embedded PostgreSQL server
(with the embedded Kafka broker), loads it, and reports figures beside a baseline measured in the
same run. ``all`` runs every benchmark and then reports the peak memory of every process; the
figures go to ``bench/results/latest.json`` and ``latest.md`` (``partial.*`` for a subset).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import time
import traceback
from pathlib import Path

from bench.results import RESULTS, Figure, machine, write
from bench.system import World
from flowledger.runtime.workers import steady_gc

BENCHMARKS = (
    "commands",
    "catchup",
    "lag",
    "relay",
    "takeover",
    "queries",
    "orchestration",
    "maps",
)
"""Each is a module ``bench.<name>`` with ``measure(world, quick) -> (figures, peaks)``."""

MEMORY_LIMIT_MB = 250.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("benchmarks", nargs="+", choices=["all", *BENCHMARKS])
    parser.add_argument("--quick", action="store_true", help="small loads: check it works")
    parser.add_argument("--database-url", help="a PostgreSQL server to use instead of embedded")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS) if "all" in args.benchmarks else args.benchmarks
    logging.basicConfig(level=logging.WARNING)
    # SIGTERM (a timeout, a CI cancel) unwinds like Ctrl-C, so every process this run started
    # is stopped, its databases dropped and the embedded server and broker stopped.
    signal.signal(signal.SIGTERM, _interrupted)
    started = time.perf_counter()
    world = World(args.database_url)
    figures: list[Figure] = []
    peaks: dict[str, float] = {}
    failed = False
    try:
        for name in names:
            print(f"== {name}", flush=True)
            module = importlib.import_module(f"bench.{name}")
            # The bench process appends, consumes and polls in the latency figures: its
            # collector is tuned as the server processes' are, so that its own full
            # collections do not show as the system's latency.
            steady_gc()
            try:
                found, used = module.measure(world, args.quick)
            except Exception:
                traceback.print_exc()
                failed = True
                continue
            for figure in found:
                print(f"   {figure.name}: {figure.value:,.2f} {figure.unit}", flush=True)
            figures += found
            for role, mb in used.items():
                peaks[f"{name}: {role}"] = mb
        figures.append(memory_figure(peaks))
        info = machine(world.server.with_dbname("postgres").libpq_url)
    finally:
        world.close()
    label = "latest" if "all" in args.benchmarks and not args.quick and not failed else "partial"
    json_path, md_path = write(figures, info, time.perf_counter() - started, args.out, label)
    print(md_path.read_text())
    print(f"written to {json_path} and {md_path}")
    return 1 if failed else 0


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def memory_figure(peaks: dict[str, float]) -> Figure:
    worst = max(peaks.values(), default=0.0)
    heaviest = max(peaks, key=lambda role: peaks[role]) if peaks else "—"
    return Figure(
        name="memory: peak RSS of the heaviest process",
        value=worst,
        unit="MiB",
        how="VmHWM of the API and of each worker under the loads above",
        target=f"< {MEMORY_LIMIT_MB:.0f} MiB each",
        met=worst < MEMORY_LIMIT_MB if peaks else None,
        details={"heaviest": heaviest, "by_process": {k: round(v, 1) for k, v in peaks.items()}},
        notes=f"heaviest: {heaviest}",
    )


if __name__ == "__main__":
    sys.exit(main())
