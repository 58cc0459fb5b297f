"""The command layer appending flat out in a process of its own, as one API process does:
``python -m bench.append WORKFLOW_ID CALLERS DURATION_S``.

``CALLERS`` threads call ``request_run`` in a loop and the process's writer records what they
decided together (group commit). The process opens its runtime from the environment, records
one run (so the workflow and its agent are cached), prints ``ready`` and waits for a line on
stdin, so that several such processes start together; then it prints one JSON object: the
commands recorded, the seconds, their p99 (ms), the transactions and the CPU seconds used.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

from bench.results import percentile
from flowledger.commands.runs import RequestRun, request_run
from flowledger.eventlog.store import EventMetadata
from flowledger.observability import metrics
from flowledger.runtime import connections
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import load_settings
from flowledger.runtime.workers import steady_gc


def append(runtime: Runtime, workflow_id: UUID, callers: int, duration_s: float) -> dict[str, Any]:
    command = RequestRun(workflow_id=workflow_id, input_data={"text": "hello"})
    meta = EventMetadata.system("bench")
    request_run(runtime.store, command, meta)  # the workflow and agent are cached
    print("ready", flush=True)
    if not sys.stdin.readline():  # the bench is gone: no load
        raise SystemExit(1)
    deadline = time.perf_counter() + duration_s

    def caller() -> list[float]:
        latencies: list[float] = []
        while (now := time.perf_counter()) < deadline:
            request_run(runtime.store, command, meta)
            latencies.append((time.perf_counter() - now) * 1000)
        return latencies

    batches_before = _count(metrics.WRITE_BATCH_COMMANDS)
    started, cpu_before = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=callers) as pool:
        answered = [pool.submit(caller) for _ in range(callers)]
        latencies = [ms for future in answered for ms in future.result()]
    return {
        "commands": len(latencies),
        "seconds": time.perf_counter() - started,
        "p99_ms": percentile(latencies, 99),
        "transactions": _count(metrics.WRITE_BATCH_COMMANDS) - batches_before,
        "cpu_s": time.process_time() - cpu_before,
    }


def _count(histogram: Any) -> float:
    """How many observations a prometheus_client histogram has recorded in this process."""
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return float(sample.value)
    return 0.0


def main(argv: list[str]) -> None:
    workflow_id, callers, duration_s = UUID(argv[0]), int(argv[1]), float(argv[2])
    connections.set_process_role(connections.API)  # the API's connection budget
    runtime = Runtime.open(load_settings(os.environ), migrate=False)
    steady_gc()  # as in the API's processes
    try:
        print(json.dumps(append(runtime, workflow_id, callers, duration_s)), flush=True)
    finally:
        runtime.close_sync()


if __name__ == "__main__":
    main(sys.argv[1:])
