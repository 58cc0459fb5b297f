"""Command throughput (``POST /workflows/{id}/execute`` over HTTP from a load process) and event
append (the same command through the command layer, no HTTP), each beside raw single-row
committed INSERTs/s into a table of the event store's shape on the same database."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from typing import Any
from uuid import UUID

import httpx

from bench.baseline import raw_insert_rate
from bench.catalogue import chain_definition, create_workflow, register_agent
from bench.loadgen import generate_load
from bench.results import Figure
from bench.system import ROOT, System, World

API_PROCESSES = 3
"""``FLOWLEDGER_API_PROCESSES`` of the API under load: one process's Python uses one core at a
time, and one left the other core half idle; each process also waits for its commits, so one
more process than cores keeps both busy (ADR 0025)."""
CONNECTIONS = 16 * API_PROCESSES
"""The load generator's connections when flat out: 16 per API process (with fewer, each
process's requests waited for their commits with a core idle)."""
READY_TIMEOUT_S = 120.0
"""How long the append processes may take to start (import, open the runtime, cache)."""
APPEND_CALLERS = 32
"""Threads submitting commands in each process of the append figure."""


def measure(world: World, quick: bool) -> tuple[list[Figure], dict[str, float]]:
    duration = 5.0 if quick else 30.0
    with world.system("commands") as system:
        base = system.start_api({"FLOWLEDGER_API_PROCESSES": str(API_PROCESSES)})
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
        api_process = system.process("api")
        with system.http(base) as api:
            generate_load({**common, "duration_s": 2, "concurrency": CONNECTIONS}, system.workdir)
            batches_before = _write_batches(api)
            cpu_before = api_process.cpu_seconds()
            flat_out = generate_load(
                {**common, "duration_s": duration, "concurrency": CONNECTIONS}, system.workdir
            )
            api_cpu_ms = (api_process.cpu_seconds() - cpu_before) * 1000
            batches = _write_batches(api) - batches_before
        flat_out["api_cpu_ms_per_request"] = round(api_cpu_ms / max(1, flat_out["requests"]), 3)
        flat_out["commands_per_transaction"] = round(flat_out["ok"] / max(1, batches), 1)
        half = max(1.0, flat_out["rps"] / 2)
        at_half = generate_load({**common, "duration_s": duration, "rate": half}, system.workdir)
        system.sample_memory()
        api_peak = system.stop(system.process("api")) or 0.0
        one_rate, one = _append_rate(system, UUID(workflow_id), duration, 1)
        append_rate, append_details = _append_rate(
            system, UUID(workflow_id), duration, API_PROCESSES
        )
        append_details["one_process"] = {"rate": round(one_rate, 1), **one}
    throughput = Figure(
        name="command throughput: POST /workflows/{id}/execute",
        value=flat_out["rps"],
        unit="runs/s",
        how=(
            f"HTTP from a separate load process, {CONNECTIONS} connections, {duration:.0f} s, "
            f"to {API_PROCESSES} API processes (FLOWLEDGER_API_PROCESSES={API_PROCESSES})"
        ),
        baseline=baseline,
        baseline_unit="INSERT/s",
        target="≥ 40% of baseline; p99 < 50 ms at half that rate; 0 errors",
        details={"flat_out": flat_out, "at_half_rate": at_half, "half_rate": half},
        notes=_throughput_notes(flat_out, baseline),
    )
    # A p99 over failed requests is no p99 of runs: load.py times every answer, 4xx/5xx too.
    half_rate_met = at_half["p99_ms"] < 50 and at_half["errors"] == 0
    throughput.met = (throughput.ratio or 0) >= 0.4 and half_rate_met and flat_out["errors"] == 0
    half_figure = Figure(
        name="command latency p99 at half the throughput",
        value=at_half["p99_ms"],
        unit="ms",
        how=f"open loop at {half:,.0f} runs/s for {duration:.0f} s",
        target="< 50 ms, 0 errors",
        met=half_rate_met,
        details={"p50_ms": at_half["p50_ms"], "errors": at_half["errors"]},
    )
    append = Figure(
        name="event append through the command layer",
        value=append_rate,
        unit="runs/s",
        how=(
            f"request_run in a loop on {APPEND_CALLERS} threads in each of {API_PROCESSES} "
            "processes (as many as the API's), no HTTP (one run = 1 event)"
        ),
        baseline=baseline,
        baseline_unit="INSERT/s",
        target="≥ 100% of baseline",
        details=append_details,
        notes=_append_notes(append_details),
    )
    append.met = (append.ratio or 0) >= 1.0
    return [throughput, half_figure, append], {"api": api_peak}


def _write_batches(api: httpx.Client) -> float:
    """Transactions the API's writer has committed so far (its /metrics)."""
    for line in api.get("/metrics").text.splitlines():
        if line.startswith("flowledger_write_batch_commands_count"):
            return float(line.split()[-1])
    return 0.0


def _throughput_notes(flat_out: dict[str, Any], baseline: float) -> str:
    cpu_ms = flat_out["api_cpu_ms_per_request"]
    notes = (
        f"the {API_PROCESSES} API processes spent {cpu_ms:.2f} ms of CPU per request in all "
        "(uvicorn and Litestar's middleware, routing and dependencies, authentication, "
        "validation, JSON, the command decided on the event loop, and the share of the "
        f"process's writer thread) and {flat_out['commands_per_transaction']} requests shared "
        "each transaction; a run request reads nothing from the store (the workflow and agents "
        "come from the cache, checked under the append lock when the run is recorded). They "
        "share the 2 cores with PostgreSQL and the load generator"
    )
    if flat_out["rps"] >= 0.4 * baseline:
        return notes
    return f"{notes}; the target is {0.4 * baseline:,.0f} requests/s"


def _append_notes(details: dict[str, Any]) -> str:
    one = details["one_process"]
    return (
        f"in each process {APPEND_CALLERS} threads decide concurrently (the workflow and agent "
        f"from the cache) and its writer records {details['commands_per_transaction']} run "
        "requests per transaction on average; the processes used "
        f"{details['cpu_ms_per_command']:.2f} ms of CPU per command (building the Run and "
        "encoding its plan, the writer's statements), each under its own GIL. One process "
        f"alone reached {one['rate']:,.0f} runs/s ({one['commands_per_transaction']} per "
        f"transaction, {one['cpu_ms_per_command']:.2f} ms of CPU per command): its Python "
        "uses one core"
    )


def _append_rate(
    system: System, workflow_id: UUID, duration: float, processes: int
) -> tuple[float, dict[str, Any]]:
    """``python -m bench.append`` in ``processes`` processes at once (as many as the API's),
    each with ``APPEND_CALLERS`` threads calling ``request_run`` in a loop: each process's
    writer records what its threads decided together (group commit)."""
    argv = [sys.executable, "-m", "bench.append", str(workflow_id), str(APPEND_CALLERS)]
    appenders = [
        subprocess.Popen(
            [*argv, str(duration)],
            env=system.env(),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for appender in appenders:  # each has cached what it reads
            assert appender.stdout is not None
            ready, _, _ = select.select([appender.stdout], [], [], deadline - time.monotonic())
            if not ready or appender.stdout.readline().strip() != "ready":
                raise RuntimeError("an appender failed to start (see its stderr above)")
        for appender in appenders:
            assert appender.stdin is not None
            appender.stdin.write("go\n")
            appender.stdin.flush()
        results = [
            json.loads(appender.communicate(timeout=duration + 120)[0].splitlines()[-1])
            for appender in appenders
        ]
    finally:
        for appender in appenders:
            if appender.poll() is None:
                appender.kill()
            appender.wait()
    commands = sum(r["commands"] for r in results)
    transactions = sum(r["transactions"] for r in results)
    return sum(r["commands"] / r["seconds"] for r in results), {
        "processes": processes,
        "p99_ms": round(max(r["p99_ms"] for r in results), 2),
        "commands_per_transaction": round(commands / max(1, transactions), 1),
        "cpu_ms_per_command": round(sum(r["cpu_s"] for r in results) * 1000 / max(1, commands), 3),
    }
