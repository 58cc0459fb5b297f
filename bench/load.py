"""The load generator, run in its own process: ``python -m bench.load SPEC.json``.

The spec names the requests to send in turn (method, path, JSON body), the API key (or the
``headers`` that carry another credential), and either
a concurrency (closed loop: as fast as the API answers) or a rate (open loop: requests start on
schedule, whether or not earlier ones have answered, so latency includes any queueing). It prints
one JSON object: requests, errors, statuses, requests per second and latency percentiles (ms).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

import httpx

from bench.results import percentile


async def _one(
    client: httpx.AsyncClient,
    request: dict[str, Any],
    latencies: list[float],
    statuses: Counter[int],
) -> None:
    started = time.perf_counter()
    try:
        response = await client.request(
            request.get("method", "GET"),
            request["path"],
            json=request.get("body"),
            headers=request.get("headers"),
        )
        statuses[response.status_code] += 1
    except httpx.HTTPError:
        statuses[0] += 1
        return
    latencies.append((time.perf_counter() - started) * 1000)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    requests: list[dict[str, Any]] = spec["requests"]
    duration = float(spec["duration_s"])
    warmup = float(spec.get("warmup_s", 0))
    limits = httpx.Limits(max_connections=int(spec.get("connections", 64)))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    async with httpx.AsyncClient(
        base_url=spec["base_url"],
        headers=spec.get("headers") or {"X-API-Key": spec["api_key"]},
        timeout=30,
        limits=limits,
    ) as client:
        if warmup:
            await _closed_loop(client, requests, warmup, 4, [], Counter())
        started = time.perf_counter()
        if spec.get("rate"):
            await _open_loop(client, requests, duration, float(spec["rate"]), latencies, statuses)
        else:
            await _closed_loop(
                client, requests, duration, int(spec.get("concurrency", 16)), latencies, statuses
            )
        elapsed = time.perf_counter() - started
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return {
        "requests": sum(statuses.values()),
        "ok": ok,
        "errors": sum(statuses.values()) - ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "elapsed_s": elapsed,
        "rps": ok / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=0.0),
    }


async def _closed_loop(
    client: httpx.AsyncClient,
    requests: list[dict[str, Any]],
    duration: float,
    concurrency: int,
    latencies: list[float],
    statuses: Counter[int],
) -> None:
    deadline = time.perf_counter() + duration
    counter = iter(range(10**12))

    async def user() -> None:
        while time.perf_counter() < deadline:
            await _one(client, requests[next(counter) % len(requests)], latencies, statuses)

    await asyncio.gather(*(user() for _ in range(concurrency)))


async def _open_loop(
    client: httpx.AsyncClient,
    requests: list[dict[str, Any]],
    duration: float,
    rate: float,
    latencies: list[float],
    statuses: Counter[int],
) -> None:
    interval = 1.0 / rate
    started = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()
    n = 0
    while (due := started + n * interval) < started + duration:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(_one(client, requests[n % len(requests)], latencies, statuses))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    if tasks:
        await asyncio.gather(*tasks)


def main() -> None:
    with open(sys.argv[1]) as spec_file:
        spec = json.load(spec_file)
    print(json.dumps(asyncio.run(run(spec))))


if __name__ == "__main__":
    main()
