"""The real app served by uvicorn in a thread, for streaming responses (Server-Sent Events)
that the in-memory test client cannot follow; and ``flowledger serve`` as deployed."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psutil
import uvicorn
from litestar import Litestar

from flowledger.runtime.process import Runtime
from tests.support.http import ADMIN_API_KEY
from tests.support.polling import eventually
from tests.support.ports import free_port


@contextmanager
def serving(app: Litestar) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()

    def started() -> bool:
        if not server.started and not thread.is_alive():
            raise RuntimeError("the test server stopped before it started")
        return bool(server.started)

    eventually(started, what="the test server to start", timeout_s=20, interval_s=0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def serve_process(
    runtime: Runtime, port: int, *args: str, **settings: str
) -> subprocess.Popen[bytes]:
    """``flowledger serve ARGS`` on ``runtime``'s database, as deployed, with these
    ``FLOWLEDGER_*`` settings; ready once /health answers."""
    env = {
        **os.environ,
        "DATABASE_URL": runtime.database.libpq_url,
        "FLOWLEDGER_ADMIN_API_KEY": ADMIN_API_KEY,
        "FLOWLEDGER_LOG_LEVEL": "WARNING",
        **settings,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "flowledger", "serve", "--port", str(port), *args], env=env
    )

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"flowledger serve exited with {process.returncode}")
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200

    eventually(
        healthy, what="flowledger serve to answer", timeout_s=60, ignoring=(httpx.HTTPError,)
    )
    return process


def api_processes(supervisor_pid: int) -> list[psutil.Process]:
    """The live API processes that uvicorn's supervisor (``serve`` or ``dev`` with
    ``--processes N``) runs: its spawned children, multiprocessing's resource tracker aside; a
    killed one not yet reaped (a zombie) is not live."""
    found = []
    for child in psutil.Process(supervisor_pid).children():
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(child.cmdline()) and child.status() != "zombie":
                found.append(child)
    return found
