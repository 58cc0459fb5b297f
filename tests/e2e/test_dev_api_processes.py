"""``flowledger dev`` with two API processes (``FLOWLEDGER_API_PROCESSES=2``, ADR 0025): its
embedded server is sized for both, both answer, and ``kill -9`` of ``dev`` alone (not its
process group) leaves nothing behind: its API processes and workers end with it, and the next
``flowledger dev`` starts on the same port."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from tests.support.dev import DevServer, dev_environment
from tests.support.polling import eventually
from tests.support.ports import free_port
from tests.support.server import api_processes

pytestmark = pytest.mark.e2e
POOL_SIZE = 10
"""FLOWLEDGER_DB_POOL_SIZE's default: each API process and worker holds at most this many."""


def running(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.Error:
            continue
    return alive


def test_two_api_processes_in_dev_are_budgeted_and_end_with_it(tmp_path: Path) -> None:
    env = dev_environment(tmp_path / "data", FLOWLEDGER_API_PROCESSES="2")
    port = free_port()
    dev = DevServer.start(env, tmp_path / "dev.out", port)
    try:
        apis = eventually(
            lambda: [p.pid for p in api_processes(dev.process.pid)],
            lambda pids: len(pids) == 2,
            what="two API processes",
        )
        workers = eventually(
            dev.worker_pids, lambda found: len(found) >= 3, what="the workers to run"
        )
        with dev.client() as client:
            assert client.get("/api/v1/agents").status_code == 200
            limit = client.get("/health/ready").json()["connections"]["limit"]
        # Two API processes and the workers, each at most POOL_SIZE, and 10 for operators
        # (less the 3 superuser slots, should the user not be one).
        assert limit >= (2 + len(workers)) * POOL_SIZE + 10 - 3

        os.kill(dev.process.pid, signal.SIGKILL)
        dev.process.wait(timeout=30)
        left = [*apis, *workers.values()]
        eventually(
            lambda: running(left),
            lambda alive: not alive,
            what="the API processes and workers to end with flowledger dev",
            timeout_s=60,
        )
        dev = DevServer.start(env, tmp_path / "dev.out", port)  # the port is free again
        with dev.client() as client:
            assert client.get("/api/v1/agents").status_code == 200
    finally:
        dev.stop()
