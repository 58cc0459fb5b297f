"""``flowledger serve --processes 2``: two processes answer on one port, ``/metrics`` counts
what both answered whichever of them serves it, one that dies is replaced, and SIGTERM stops
them all (ADR 0025)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import text

from flowledger.runtime.connections import owner_of
from flowledger.runtime.process import Runtime
from tests.support.http import ADMIN_API_KEY
from tests.support.polling import eventually
from tests.support.ports import free_port
from tests.support.server import api_processes, serve_process

pytestmark = pytest.mark.integration
HEALTH = 'flowledger_http_requests_total{method="GET",route="/health",status="200"}'


@pytest.fixture
def supervisor(runtime: Runtime) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    process = serve_process(runtime, port, "--processes", "2")
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def started_api_processes(
    runtime: Runtime, supervisor: subprocess.Popen[bytes]
) -> list[psutil.Process]:
    """The API processes that have opened their runtime (their connections name them)."""
    with runtime.engine.connect() as conn:
        names = conn.execute(text("SELECT application_name FROM pg_stat_activity")).scalars()
        owners = {owner.pid for owner in map(owner_of, names) if owner is not None}
    return [child for child in api_processes(supervisor.pid) if child.pid in owners]


def two_api_processes(
    runtime: Runtime, supervisor: subprocess.Popen[bytes]
) -> list[psutil.Process]:
    """The two API processes once both have started, so that either can be stopped for a
    moment while the other answers (the supervisor replaces one that does not answer its
    health check for 5 s)."""
    return eventually(
        lambda: started_api_processes(runtime, supervisor),
        lambda children: len(children) == 2,
        what="two API processes started",
        timeout_s=60,
    )


def health_answers(base: str) -> float:
    """How many GET /health were answered 200, as /metrics says."""
    for line in httpx.get(f"{base}/metrics", timeout=30).text.splitlines():
        if line.startswith(HEALTH + " "):
            return float(line.split()[-1])
    return 0.0


def ask_health(base: str, times: int) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:  # new connections
        for _ in range(times):
            assert client.get("/health").status_code == 200


def test_each_process_answers_and_metrics_count_both(
    runtime: Runtime, supervisor: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, base = supervisor
    children = two_api_processes(runtime, process)
    before = health_answers(base)
    # While one process is stopped, the other accepts every connection: each answers 5.
    for child in children:
        child.suspend()
        try:
            ask_health(base, 5)
        finally:
            child.resume()
    assert health_answers(base) - before == 10


def test_a_process_that_dies_is_replaced_and_sigterm_stops_them_all(
    runtime: Runtime, supervisor: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, base = supervisor
    victim, survivor = two_api_processes(runtime, process)
    victim.kill()
    replaced = eventually(
        lambda: started_api_processes(runtime, process),
        lambda children: len(children) == 2 and victim.pid not in {c.pid for c in children},
        what="the killed API process replaced",
        timeout_s=60,
    )
    survivor.suspend()  # only the new process can answer now
    try:
        ask_health(base, 3)
    finally:
        survivor.resume()
    process.terminate()
    assert process.wait(timeout=30) == 0
    assert not any(child.is_running() for child in replaced)


def test_kill_9_of_the_supervisor_ends_its_processes(
    runtime: Runtime, supervisor: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, _ = supervisor
    children = two_api_processes(runtime, process)
    process.kill()
    process.wait()
    eventually(
        lambda: [child for child in children if child.is_running() and child.status() != "zombie"],
        lambda running: not running,
        what="the API processes to end with their supervisor",
        timeout_s=30,
    )


def test_processes_that_cannot_start_stop_the_supervisor_with_the_start_up_failure(
    tmp_path: Path,
) -> None:
    """As one process does (exit 3), instead of starting them again and again."""
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/nothing",
        "FLOWLEDGER_DATA_DIR": str(tmp_path),
    }
    argv = ["serve", "--port", str(free_port()), "--processes", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "flowledger", *argv],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr.decode()[-2000:]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_live_event_stream_ends_cleanly_when_serve_is_asked_to_stop(
    runtime: Runtime, processes: str
) -> None:
    """Its process ends the stream at once (the chunked answer ends), instead of uvicorn's
    cutting it after its graceful shutdown timeout."""
    port = free_port()
    process = serve_process(runtime, port, "--processes", processes)
    try:
        with (
            httpx.Client(timeout=30, headers={"X-API-Key": ADMIN_API_KEY}) as client,
            client.stream("GET", f"http://127.0.0.1:{port}/api/v1/events/stream") as stream,
        ):
            assert stream.status_code == 200
            process.terminate()
            for _ in stream.iter_lines():  # raises if the answer is cut short
                pass
        # (one process ends as uvicorn does, by the SIGTERM it shut down on, again)
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
