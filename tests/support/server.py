"""The real app served by uvicorn in a thread, for streaming responses (Server-Sent Events)
that the in-memory test client cannot follow, and for apps that must know their own URL (an
A2A agent's card names it); and ``flowledger serve`` as deployed."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import psutil
import uvicorn
from starlette.types import ASGIApp

from flowledger.runtime.process import Runtime
from tests.support.http import ADMIN_API_KEY
from tests.support.polling import eventually


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1; yields its base URL."""
    with serving_made(lambda url: app) as url:
        yield url


@contextmanager
def serving_made(make: Callable[[str], ASGIApp]) -> Iterator[str]:
    """Serve the app ``make`` makes from the base URL it is served at (its port is bound
    first, so no other process can take it meanwhile); yields that URL."""
    listening = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listening.getsockname()[1]}"
    config = uvicorn.Config(make(url), log_config=None, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listening]}, name="uvicorn-test", daemon=True
    )
    thread.start()

    def started() -> bool:
        if not server.started and not thread.is_alive():
            raise RuntimeError("the test server stopped before it started")
        return bool(server.started)

    eventually(started, what="the test server to start", timeout_s=20, interval_s=0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        listening.close()


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
