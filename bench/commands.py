"""Command throughput (``POST /workflows/{id}/execute`` over HTTP from a load process) and event
append (the same command through the command layer, no HTTP), each beside raw single-row
committed INSERTs/s into a table of the event store's shape on the same database."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

from bench.baseline import raw_insert_rate
from bench.catalogue import chain_definition, create_workflow, register_agent
from bench.loadgen import generate_load
from bench.results import Figure, percentile
from bench.system import System, World
from flowledger.commands.runs import RequestRun, request_run
from flowledger.eventlog.store import EventMetadata

APPEND_CALLERS = 32
"""Threads submitting commands in the append figure (the API runs handlers on up to 40)."""

WHY_COMMANDS_TRAIL = (
    "a run request reads before it writes: it loads the workflow, then the agent's name claim "
    "and the agent (three event-store reads, each a pooled connection with a pre-ping), and "
    "appends under the event store's LOCK TABLE ... EXCLUSIVE with a NOTIFY, in its own "
    "transaction; the baseline is one autocommitted INSERT. Over HTTP add authentication, "
    "validation and JSON on one API process sharing 2 cores with PostgreSQL and the load "
    "generator. Writes are serialised by the events table (DESIGN.md), so more API processes "
    "add no write throughput; batching many commands per transaction would, and is not done"
)


def measure(world: World, quick: bool) -> tuple[list[Figure], dict[str, float]]:
    duration = 5.0 if quick else 30.0
    with world.system("commands") as system:
        base = system.start_api()
        with system.http(base) as api:
            register_agent(api, "echo", "http://127.0.0.1:9/unused")
            workflow_id = create_workflow(api, "bench-commands", chain_definition("echo", 5))
        baseline = raw_insert_rate(system.database, duration)
        execute = {
            "method": "POST",
            "path": f"/api/v1/workflows/{workflow_id}/execute",
            "body": {"input_data": {"text": "hello"}},
        }
        common = {"base_url": base, "api_key": system.admin_key, "requests": [execute]}
        flat_out = generate_load(
            {**common, "duration_s": duration, "warmup_s": 2, "concurrency": 16}, system.workdir
        )
        half = max(1.0, flat_out["rps"] / 2)
        at_half = generate_load({**common, "duration_s": duration, "rate": half}, system.workdir)
        system.sample_memory()
        api_peak = system.stop(system.process("api")) or 0.0
        append_rate, append_p99 = _append_rate(system, UUID(workflow_id), duration)
    throughput = Figure(
        name="command throughput: POST /workflows/{id}/execute",
        value=flat_out["rps"],
        unit="runs/s",
        how=f"HTTP from a separate load process, 16 connections, {duration:.0f} s",
        baseline=baseline,
        baseline_unit="INSERT/s",
        target="≥ 40% of baseline; p99 < 50 ms at half that rate",
        details={"flat_out": flat_out, "at_half_rate": at_half, "half_rate": half},
        notes=WHY_COMMANDS_TRAIL,
    )
    # A p99 over failed requests is no p99 of runs: load.py times every answer, 4xx/5xx too.
    half_rate_met = at_half["p99_ms"] < 50 and at_half["errors"] == 0
    throughput.met = (throughput.ratio or 0) >= 0.4 and half_rate_met
    half_figure = Figure(
        name="command latency p99 at half the throughput",
        value=at_half["p99_ms"],
        unit="ms",
        how=f"open loop at {half:,.0f} runs/s for {duration:.0f} s",
        target="< 50 ms",
        met=half_rate_met,
        details={"p50_ms": at_half["p50_ms"], "errors": at_half["errors"]},
    )
    append = Figure(
        name="event append through the command layer",
        value=append_rate,
        unit="runs/s",
        how=(
            f"request_run in a loop on {APPEND_CALLERS} threads of one process, no HTTP "
            "(one run = 1 event)"
        ),
        baseline=baseline,
        baseline_unit="INSERT/s",
        target="≥ 100% of baseline",
        details={"p99_ms": append_p99},
        notes="the same command without HTTP: see command throughput",
    )
    append.met = (append.ratio or 0) >= 1.0
    return [throughput, half_figure, append], {"api": api_peak}


def _append_rate(system: System, workflow_id: UUID, duration: float) -> tuple[float, float]:
    """``APPEND_CALLERS`` threads calling ``request_run`` in a loop, as the API's worker
    threads do: the process's writer records what they decided together (group commit)."""
    with system.runtime() as runtime:
        command = RequestRun(workflow_id=workflow_id, input_data={"text": "hello"})
        meta = EventMetadata.system("bench")
        request_run(runtime.store, command, meta)  # the workflow and agent are cached
        deadline = time.perf_counter() + duration

        def caller() -> list[float]:
            latencies: list[float] = []
            while (now := time.perf_counter()) < deadline:
                request_run(runtime.store, command, meta)
                latencies.append((time.perf_counter() - now) * 1000)
            return latencies

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=APPEND_CALLERS) as pool:
            answered = [pool.submit(caller) for _ in range(APPEND_CALLERS)]
            latencies = [ms for future in answered for ms in future.result()]
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, percentile(latencies, 99)
