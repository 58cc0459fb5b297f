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
from urllib.parse import urlsplit

import uvloop

from bench.results import percentile

TIMEOUT_S = 30.0


class Connection:
    """One keep-alive HTTP/1.1 connection. The load generator shares the machine with what it
    measures, so it speaks HTTP itself: requests are encoded once, answers are read by their
    Content-Length (the API always sends one) — about a tenth of an HTTP library's CPU."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, raw: bytes) -> int:
        """Send one encoded request; its status once the whole answer has been read."""
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length:
                await reader.readexactly(length)
            if close:
                self.close()
            return status
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def encode(request: dict[str, Any], netloc: str, credentials: dict[str, str]) -> bytes:
    """One request's bytes: ``credentials`` (the spec's headers, or its API key) and the
    request's own ``headers`` go with it."""
    body = b"" if request.get("body") is None else json.dumps(request["body"]).encode()
    headers = {**credentials, **(request.get("headers") or {})}
    lines = [
        f"{request.get('method', 'GET')} {request['path']} HTTP/1.1",
        f"Host: {netloc}",
        *(f"{name}: {value}" for name, value in headers.items()),
        "Accept: application/json",
    ]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Pool:
    """Connections to the API, at most ``size`` open; a request takes an idle one."""

    def __init__(self, base_url: str, size: int) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.netloc = parts.netloc
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(Connection(self.host, self.port))

    async def send(self, raw: bytes) -> int:
        connection = await self._idle.get()
        try:
            return await asyncio.wait_for(connection.send(raw), TIMEOUT_S)
        finally:
            self._idle.put_nowait(connection)

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()


async def _one(pool: Pool, raw: bytes, latencies: list[float], statuses: Counter[int]) -> None:
    started = time.perf_counter()
    try:
        status = await pool.send(raw)
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
        statuses[0] += 1
        return
    statuses[status] += 1
    latencies.append((time.perf_counter() - started) * 1000)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    duration = float(spec["duration_s"])
    warmup = float(spec.get("warmup_s", 0))
    pool = Pool(spec["base_url"], int(spec.get("connections", 64)))
    credentials = spec.get("headers") or {"X-API-Key": spec["api_key"]}
    requests = [encode(r, pool.netloc, credentials) for r in spec["requests"]]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    try:
        if warmup:
            await _closed_loop(pool, requests, warmup, 4, [], Counter())
        started = time.perf_counter()
        if spec.get("rate"):
            await _open_loop(pool, requests, duration, float(spec["rate"]), latencies, statuses)
        else:
            concurrency = int(spec.get("concurrency", 16))
            await _closed_loop(pool, requests, duration, concurrency, latencies, statuses)
        elapsed = time.perf_counter() - started
    finally:
        pool.close()
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
    pool: Pool,
    requests: list[bytes],
    duration: float,
    concurrency: int,
    latencies: list[float],
    statuses: Counter[int],
) -> None:
    deadline = time.perf_counter() + duration
    counter = iter(range(10**12))

    async def user() -> None:
        while time.perf_counter() < deadline:
            await _one(pool, requests[next(counter) % len(requests)], latencies, statuses)

    await asyncio.gather(*(user() for _ in range(concurrency)))


async def _open_loop(
    pool: Pool,
    requests: list[bytes],
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
        task = asyncio.create_task(_one(pool, requests[n % len(requests)], latencies, statuses))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    if tasks:
        await asyncio.gather(*tasks)


def main() -> None:
    with open(sys.argv[1]) as spec_file:
        spec = json.load(spec_file)
    print(json.dumps(uvloop.run(run(spec))))


if __name__ == "__main__":
    main()
