"""Orchestration overhead: a 5-step workflow on the sample echo agent (it answers at once),
with the API, ``flowledger worker projections``, ``relay`` and ``executor`` running as
``flowledger dev`` runs them (the executor hears of new runs from Kafka). One run at a time,
end to end (execute, then read the run until it is SUCCEEDED), and many runs in flight
(runs/s). The baseline is the same 5 calls made directly with the executor's own A2A client
(:class:`~flowledger.a2a.AgentClient`): the same call path minus the orchestration. Per-step
overhead = (time per run - time of the 5 direct calls) / 5.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from bench.catalogue import chain_definition, create_workflow, register_agent
from bench.load import Pool, encode
from bench.results import Figure, percentile
from bench.system import CpuReading, World
from flowledger.a2a import AgentAuth, AgentClient
from flowledger.eventlog.store import EVENTS_TABLE

STEPS = 5
TARGET_MS = 5.0
THROUGHPUT_TARGET = 0.6
PAIRS = 3
"""Bursts of runs, each followed by its direct chains, in the throughput figure."""
DIRECT_CONCURRENCY = 64
"""Chains in flight in the throughput baseline: the default FLOWLEDGER_EXECUTOR_MAX_CALLS."""


def measure(world: World, quick: bool) -> tuple[list[Figure], dict[str, float]]:
    sequential_runs = 8 if quick else 40
    burst = 30 if quick else 300
    token = secrets.token_hex(4)
    extra = {
        "FLOWLEDGER_KAFKA_TOPIC_PREFIX": f"bench-orch-{token}",
        "FLOWLEDGER_EXECUTOR_GROUP": f"bench-orch-{token}",
    }
    with world.system("orchestration") as system:
        echo = system.start_agents()
        base = system.start_api(extra)
        workers = [
            system.start_worker(kind, extra) for kind in ("projections", "relay", "executor")
        ]
        with system.http(base) as api, system.database.connect() as listener:
            listener.execute(f"LISTEN {EVENTS_TABLE}")
            register_agent(api, "echo", echo)
            workflow_id = create_workflow(
                api, "bench-orchestration", chain_definition("echo", STEPS)
            )
            for _ in range(3):  # the executor joins its group, the agent card gets cached
                _one_run(api, listener, workflow_id, timeout_s=60)
            cpu_before, started = system.cpu(), time.perf_counter()
            runs = [_one_run(api, listener, workflow_id) for _ in range(sequential_runs)]
            sequential_cpu = _per_run(cpu_before, system.cpu(), sequential_runs)
            wall_ms_per_run = (time.perf_counter() - started) * 1000 / sequential_runs
            system.sample_memory()
            # Warmed up as the direct chains are: the executor's and agents' connections open
            # and its drivers' first runs at once cost what a short burst should not measure.
            asyncio.run(_burst(base, system.admin_key, workflow_id, burst // 5))
            # Bursts and direct chains alternate, and the figure is the pair of the median
            # ratio: the machine's speed drifts by several per cent within a minute.
            bursts: list[tuple[float, dict[str, Any]]] = []
            chains: list[float] = []
            cpu_in_bursts: Counter[str] = Counter()
            for _ in range(1 if quick else PAIRS):
                cpu_before = system.cpu()
                bursts.append(asyncio.run(_burst(base, system.admin_key, workflow_id, burst)))
                cpu_in_bursts.update(system.cpu().since(cpu_before))
                system.sample_memory()
                chains.append(asyncio.run(_direct_throughput(echo, burst)))
            # The pair of the median ratio: each burst against the chains of its own moment.
            pairs = sorted(zip(bursts, chains, strict=True), key=lambda p: p[0][0] / p[1])
            (runs_per_s, median_burst), chains_per_s = pairs[len(pairs) // 2]
            burst_details = {
                **median_burst,
                "bursts": len(bursts),
                "ratio_each": [round(b[0] / c, 3) for b, c in zip(bursts, chains, strict=True)],
                "runs_per_s_each": [round(rate, 1) for rate, _ in bursts],
                "chains_per_s_each": [round(rate, 1) for rate in chains],
                "cpu_ms_per_run": _ms_per_run(cpu_in_bursts, burst * len(bursts)),
            }
        direct = asyncio.run(_direct_chains(echo, sequential_runs))
        peaks = {w.name: system.stop(w) or 0.0 for w in workers}
        system.sample_memory()
        api_process = system.process("api")
        peaks["api"] = system.stop(api_process) or 0.0
    end_to_end = statistics.median(r["end_to_end_ms"] for r in runs)
    direct_chain = statistics.median(direct)
    overhead = (end_to_end - direct_chain) / STEPS
    breakdown = {
        "direct_5_calls_ms": round(direct_chain, 2),
        **_breakdown(runs),
        "cpu_ms_per_run": sequential_cpu,
        "wall_ms_per_run_with_reads": round(wall_ms_per_run, 2),
    }
    latency = Figure(
        name="orchestration: overhead per step, one run at a time",
        value=overhead,
        unit="ms/step",
        how=(
            f"median of {sequential_runs} runs of a {STEPS}-step workflow on the echo agent, "
            "POST execute → Run.Succeeded committed (seen by LISTEN; the API then shows it "
            "with X-Flowledger-Min-Position, see details), minus the median of the same 5 "
            "calls made "
            "directly with AgentClient, divided by 5"
        ),
        baseline=direct_chain / STEPS,
        baseline_unit="ms per direct A2A call",
        target=f"< {TARGET_MS:g} ms per step",
        met=overhead < TARGET_MS,
        notes=_latency_notes(overhead, breakdown),
        details={
            "run_end_to_end_ms_median": round(end_to_end, 2),
            "run_end_to_end_ms_p90": round(percentile([r["end_to_end_ms"] for r in runs], 90), 2),
            **breakdown,
        },
    )
    throughput = Figure(
        name="orchestration: runs/s with many runs in flight",
        value=runs_per_s,
        unit="runs/s",
        how=(
            f"{burst} runs requested at once over HTTP, until the last is SUCCEEDED (its "
            f"completed_at; the runs list asked every {POLL_S:g} s); baseline: "
            f"{burst} chains of 5 direct AgentClient calls, {DIRECT_CONCURRENCY} at a time; "
            f"{burst_details['bursts']} bursts, each followed by its direct chains; the pair "
            "of the median ratio"
        ),
        baseline=chains_per_s,
        baseline_unit="chains/s",
        target=f"≥ {THROUGHPUT_TARGET:.0%} of baseline",
        met=runs_per_s / chains_per_s >= THROUGHPUT_TARGET if chains_per_s else None,
        details=burst_details,
        notes=_throughput_notes(runs_per_s / chains_per_s, burst_details),
    )
    return [latency, throughput], peaks


def _per_run(before: CpuReading, after: CpuReading, runs: int) -> dict[str, float]:
    """CPU ms per run of each process between two readings."""
    return _ms_per_run(after.since(before), runs)


def _ms_per_run(seconds: Mapping[str, float], runs: int) -> dict[str, float]:
    """CPU ms per run of each process, from its CPU seconds."""
    return {name: round(used * 1000 / runs, 2) for name, used in seconds.items()}


def _cpu_text(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms:.1f}" for name, ms in cpu.items())


def _latency_notes(overhead: float, b: dict[str, Any]) -> str:
    if overhead < TARGET_MS:
        return ""
    cpu = b["cpu_ms_per_run"]
    total = sum(cpu.values())
    return (
        f"per run (medians): {b['requested_to_started_ms']:.0f} ms from RunRequested to "
        "RunStarted (the executor's NOTIFY wake and read of the request, its advisory lock, the "
        f"RunStarted commit); {b['steps_started_to_finished_ms']:.0f} ms inside the 5 steps "
        f"and {b['between_steps_ms']:.0f} ms between them, against "
        f"{b['direct_5_calls_ms']:.0f} ms for the 5 calls alone. A run is "
        f"{b['events_per_run']:.0f} events in {b['commits_per_run']:.0f} commits; a step's "
        "call goes out while its start commits (with the previous step's success, ADR 0014). "
        "What is longer is the calls themselves: timed inside the executor in an earlier probe "
        "(over httpx's transport), 6 to 7 ms each (the first of a run 10) against 3.5 to 3.9 "
        "made directly in the same hour, and letting the next step start "
        "before the previous commit had answered shortened nothing. One run at a time is not "
        "one thing at a time: "
        f"each run cost {total:.0f} ms of CPU ({_cpu_text(cpu)}) in "
        f"{b['wall_ms_per_run_with_reads']:.0f} ms (with the bench's reads), so "
        f"{total / b['wall_ms_per_run_with_reads']:.1f} of the 2 cores were busy and the "
        "calls share them with everything the run sets off. The projections and the relay "
        "run at a lower priority and the projections read at most every 30 ms (ADR 0024). In "
        "probes, stopping the projections and the relay (SIGSTOP) made back-to-back runs 2 to "
        "3 ms per step faster; scheduling them SCHED_IDLE (their PostgreSQL backends too), "
        "turning off the executor's own feed or its Kafka consumer, or running the executor "
        "on uvloop did not shorten the calls; the relay reading at most every 20 ms (as the "
        "projections do every 30) saved 0.7 ms per step in two alternating pairs, but would "
        "put the relay's own p99 (append to consumer, 200 events/s) past its 50 ms target, "
        "and at most every 10 ms it saved a third of the relay's CPU but nothing measurable per "
        "step (two alternating pairs, over aiohttp)"
    )


def _throughput_notes(ratio: float, details: dict[str, Any]) -> str:
    if ratio >= THROUGHPUT_TARGET:
        return ""
    cpu = details["cpu_ms_per_run"]
    executor = cpu.get("executor", 0.0)
    followers = cpu.get("projections", 0.0) + cpu.get("relay", 0.0)
    return (
        f"CPU per run, ms: {_cpu_text(cpu)} ({sum(cpu.values()):.0f} in all): the 2 cores "
        "are the limit. The "
        f"executor's {executor:.1f} ms ({executor / STEPS:.1f} per step) is about a third "
        "the A2A client's own work per call (a2a-sdk's request and protobuf conversions, "
        "straight over aiohttp: ADR 0027), the rest the event loop, deciding, the run's "
        f"advisory lock and the commits it shares with every run it drives; the followers' "
        f"{followers:.1f} ms is decoding, projecting and publishing each event. The direct "
        "chains append nothing, and they call through the same client: making it cheaper "
        "(ADR 0026, then 0027: the executor's CPU per run fell by about a fifth in a probe) "
        "made them faster too, until the agent's one process was the limit"
    )


# ------------------------------------------------------------------------------- flowledger


def _execute(api: httpx.Client, workflow_id: str) -> str:
    response = api.post(
        f"/api/v1/workflows/{workflow_id}/execute", json={"input_data": {"text": "hello"}}
    )
    if response.status_code >= 300:
        raise RuntimeError(f"execute: {response.status_code} {response.text}")
    return str(response.json()["run_id"])


def _one_run(
    api: httpx.Client, listener: psycopg.Connection[Any], workflow_id: str, timeout_s: float = 30
) -> dict[str, Any]:
    """Execute, wait for the run's ``Run.Succeeded`` in the event store (woken by its NOTIFY,
    so the wait costs nothing), then read the run through the API at that position."""
    started = time.perf_counter()
    run_id = _execute(api, workflow_id)
    position = _wait_for_end(listener, run_id, started + timeout_s)
    end_to_end = (time.perf_counter() - started) * 1000
    headers = {"X-Flowledger-Min-Position": str(position)}
    body = api.get(f"/api/v1/runs/{run_id}", headers=headers).json()
    visible = (time.perf_counter() - started) * 1000
    if body["status"] != "SUCCEEDED":
        raise RuntimeError(f"run {run_id} ended {body['status']}: {body}")
    steps = api.get(f"/api/v1/runs/{run_id}/steps", headers=headers).json()
    events, commits = listener.execute(_COMMITS, (run_id,)).fetchone() or (0, 0)
    return {
        "end_to_end_ms": end_to_end,
        "visible_ms": visible,
        "run": body,
        "steps": steps,
        "events": int(events),
        "commits": int(commits),
    }


_COMMITS = (
    f"SELECT count(*), count(DISTINCT xmin::text) FROM {EVENTS_TABLE} WHERE originator_id = %s"
)
"""A run's events, and the transactions that committed them (rows of one share its xmin)."""


_LAST_EVENT = (
    f"SELECT notification_id, topic FROM {EVENTS_TABLE} WHERE originator_id = %s "
    "ORDER BY originator_version DESC LIMIT 1"
)


def _wait_for_end(listener: psycopg.Connection[Any], run_id: str, deadline: float) -> int:
    """The position of the run's last event once it is an end (succeeded, failed, cancelled)."""
    while True:
        row = listener.execute(_LAST_EVENT, (run_id,)).fetchone()
        if row is not None:
            topic = str(row[1])
            if topic.endswith(":Run.Succeeded"):
                return int(row[0])
            if topic.endswith((":Run.Failed", ":Run.Cancelled")):
                raise RuntimeError(f"run {run_id} ended with {topic}")
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise RuntimeError(f"run {run_id} did not succeed in time")
        for _ in listener.notifies(timeout=min(remaining, 0.1), stop_after=1):
            pass


def _ms(later: str | None, earlier: str | None) -> float:
    if not later or not earlier:
        return 0.0
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds() * 1000


def _breakdown(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Where a run's time goes, from its events' own timestamps (medians, ms)."""
    queued, in_steps, between, finishing, noticing, reading = [], [], [], [], [], []
    for sample in runs:
        run = sample["run"]
        steps = sample["steps"]
        steps = steps.get("items", steps) if isinstance(steps, dict) else steps
        ordered = sorted(steps, key=lambda s: s["started_at"] or "")
        queued.append(_ms(run["started_at"], run["created_at"]))
        in_steps.append(sum(_ms(s["completed_at"], s["started_at"]) for s in ordered))
        between.append(
            _ms(ordered[0]["started_at"], run["started_at"])
            + sum(_ms(b["started_at"], a["completed_at"]) for a, b in itertools.pairwise(ordered))
        )
        finishing.append(_ms(run["completed_at"], ordered[-1]["completed_at"]))
        noticing.append(sample["end_to_end_ms"] - _ms(run["completed_at"], run["created_at"]))
        reading.append(sample["visible_ms"] - sample["end_to_end_ms"])
    return {
        "requested_to_started_ms": round(statistics.median(queued), 2),
        "steps_started_to_finished_ms": round(statistics.median(in_steps), 2),
        "between_steps_ms": round(statistics.median(between), 2),
        "last_step_to_succeeded_ms": round(statistics.median(finishing), 2),
        "http_execute_and_notice_ms": round(statistics.median(noticing), 2),
        "then_visible_in_api_ms": round(statistics.median(reading), 2),
        "events_per_run": statistics.median(r["events"] for r in runs),
        "commits_per_run": statistics.median(r["commits"] for r in runs),
    }


BURST_CONNECTIONS = 16
"""Connections the burst requests its runs on."""
POLL_S = 0.25
"""How often the burst asks whether its runs have succeeded. It reads when the last one did
from the runs themselves, so asking more often would only take CPU from the runs: asking every
50 ms cost the API and the bench about 2.5 ms of CPU per run more (in a probe, alternating:
API 3.3 to 3.7 ms per run against 1.8 to 2.2, the bench 3.3 to 3.6 against 2.0 to 2.5)."""


async def _burst(base: str, key: str, workflow_id: str, count: int) -> tuple[float, dict[str, Any]]:
    """Request ``count`` runs at once; runs/s until the last of them succeeded (its
    ``completed_at``). The executes go out on the load generator's own connections
    (:class:`bench.load.Pool`): the bench shares the machine with the runs it measures, and an
    HTTP library took about a millisecond of CPU per run from them."""
    pool = Pool(base, BURST_CONNECTIONS)
    execute = encode(
        {
            "method": "POST",
            "path": f"/api/v1/workflows/{workflow_id}/execute",
            "body": {"input_data": {"text": "hello"}},
        },
        pool.netloc,
        {"X-API-Key": key},
    )
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=60) as api:
        before, _ = await _succeeded(api, workflow_id)
        started, started_at = time.perf_counter(), datetime.now(UTC)
        try:
            statuses = Counter(await asyncio.gather(*(pool.send(execute) for _ in range(count))))
        finally:
            pool.close()
        if set(statuses) != {202}:
            raise RuntimeError(f"executes answered {dict(statuses)}")
        requested = time.perf_counter() - started
        deadline = started + 300
        while True:
            await asyncio.sleep(POLL_S)
            succeeded, last = await _succeeded(api, workflow_id)
            if succeeded - before >= count:
                break
            if await _failed(api, workflow_id):
                raise RuntimeError("a run failed during the burst")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{succeeded - before} of {count} runs succeeded in 300 s")
    elapsed = (last - started_at).total_seconds()
    return count / elapsed, {
        "runs": count,
        "seconds": round(elapsed, 2),
        "seconds_to_request_all": round(requested, 2),
    }


async def _succeeded(api: httpx.AsyncClient, workflow_id: str) -> tuple[int, datetime]:
    """How many of the workflow's runs have succeeded, and when the last of them did."""
    response = await api.get(
        "/api/v1/runs",
        params={
            "workflow_id": workflow_id,
            "status": "SUCCEEDED",
            "sort": "finished_at",
            "order": "desc",
            "page_size": 1,
        },
    )
    response.raise_for_status()
    page = response.json()
    items = page["items"]
    last = datetime.fromisoformat(items[0]["completed_at"]) if items else datetime.now(UTC)
    return int(page["total"]), last


async def _failed(api: httpx.AsyncClient, workflow_id: str) -> int:
    response = await api.get(
        "/api/v1/runs", params={"workflow_id": workflow_id, "status": "FAILED", "page_size": 1}
    )
    response.raise_for_status()
    return int(response.json()["total"])


# ------------------------------------------------------------------------------- baseline


async def _chain(client: AgentClient, url: str) -> float:
    """The 5 steps' calls, each passing the previous output on; milliseconds."""
    started = time.perf_counter()
    text: Any = "hello"
    for _ in range(STEPS):
        reply = await client.send(url, {"text": text}, auth=AgentAuth(), timeout_s=30)
        text = reply.output["text"] if isinstance(reply.output, dict) else reply.output
    return (time.perf_counter() - started) * 1000


async def _direct_chains(url: str, count: int) -> list[float]:
    async with AgentClient() as client:
        for _ in range(3):
            await _chain(client, url)
        return [await _chain(client, url) for _ in range(count)]


async def _direct_throughput(url: str, count: int) -> float:
    async with AgentClient() as client:
        slots = asyncio.Semaphore(DIRECT_CONCURRENCY)

        async def one() -> None:
            async with slots:
                await _chain(client, url)

        await asyncio.gather(*(one() for _ in range(count // 5)))  # as the runs' warm-up
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return count / (time.perf_counter() - started)
