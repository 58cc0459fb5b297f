"""``flowledger worker`` runs the followers that can wait (projections, relay, webhooks) at a
lower CPU priority than the executor (``FLOWLEDGER_FOLLOWER_NICENESS``): real worker
processes, their niceness read from the operating system."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping

import psutil
import pytest

from flowledger.runtime.database import Database
from tests.support.polling import eventually

StartWorker = Callable[[str, Mapping[str, str]], int]


def niceness_of_every_thread(pid: int) -> set[int]:
    """The niceness of each of the process's threads once it runs its worker (a thread's
    priority is its own on Linux: the threads the worker started must have inherited it)."""
    process = psutil.Process(pid)
    return {psutil.Process(thread.id).nice() for thread in process.threads()}


@pytest.fixture
def start_worker(database: Database) -> Iterator[StartWorker]:
    started: list[subprocess.Popen[bytes]] = []

    def start(kind: str, env: Mapping[str, str]) -> int:
        process = subprocess.Popen(
            [sys.executable, "-m", "flowledger", "worker", kind],
            env={
                **os.environ,
                "DATABASE_URL": database.libpq_url,
                "FLOWLEDGER_LOG_LEVEL": "WARNING",
                "KAFKA_BOOTSTRAP_SERVERS": "",
                **env,
            },
        )
        started.append(process)
        # Started: it has opened its pools and runs its threads (more than the main one).
        eventually(
            lambda: len(psutil.Process(process.pid).threads()),
            lambda threads: threads > 2,
            what=f"the {kind} worker to start its threads",
            timeout_s=60,
        )
        return process.pid

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def test_the_projections_worker_runs_at_the_follower_niceness_and_the_executor_does_not(
    start_worker: StartWorker,
) -> None:
    base = psutil.Process().nice()
    projections = start_worker("projections", {})
    executor = start_worker("executor", {})
    assert niceness_of_every_thread(projections) == {max(base, 10)}
    assert niceness_of_every_thread(executor) == {base}


def test_a_niceness_of_zero_keeps_the_followers_at_the_same_priority(
    start_worker: StartWorker,
) -> None:
    base = psutil.Process().nice()
    projections = start_worker("projections", {"FLOWLEDGER_FOLLOWER_NICENESS": "0"})
    assert niceness_of_every_thread(projections) == {base}
