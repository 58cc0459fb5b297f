"""``flowledger serve --processes 2``: two processes answer on one port, ``/metrics`` counts
what both answered whichever of them serves it, one that dies is replaced, and SIGTERM stops
them all (ADR 0025)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

import httpx
import psutil
import pytest

from flowledger.runtime.process import Runtime
from tests.support.polling import eventually
from tests.support.ports import free_port
from tests.support.server import serve_process

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
            process.wait(timeout=30)


def api_processes(supervisor: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The supervisor's live children that serve (multiprocessing's resource tracker aside;
    a killed one not yet reaped is a zombie)."""
    serving = []
    for child in psutil.Process(supervisor.pid).children():
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(child.cmdline()):
                serving.append(child)
    return serving


def two_api_processes(supervisor: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return eventually(
        lambda: api_processes(supervisor),
        lambda children: len(children) == 2,
        what="two API processes",
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
    supervisor: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, base = supervisor
    children = two_api_processes(process)
    ask_health(base, 4)  # both processes have started: one may have been importing until now
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
    supervisor: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, base = supervisor
    victim, survivor = two_api_processes(process)
    victim.kill()
    replaced = eventually(
        lambda: api_processes(process),
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
