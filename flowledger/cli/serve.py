"""Serving the HTTP app with uvicorn (``flowledger serve`` and ``flowledger dev``): in this
process, or in several processes on one port (``--processes N``, ADR 0025)."""

from __future__ import annotations

import os
import tempfile
from functools import partial
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from flowledger.cli.api_process import app_in_process, served_app
from flowledger.runtime.settings import Settings


def serve(
    settings: Settings, host: str, port: int, processes: int = 1, name: str = "serve"
) -> None:
    """``name``: the command, for the processes' traces (``flowledger-serve``)."""
    if processes > 1:
        _serve_in_processes(settings, host, port, processes, f"flowledger-{name}")
        return
    uvicorn.Server(_config(partial(served_app, settings), host, port, factory=True)).run()


def _serve_in_processes(
    settings: Settings, host: str, port: int, processes: int, service_name: str
) -> None:
    """uvicorn's supervisor binds the port once and starts ``processes`` processes that accept
    on it (the kernel gives each connection to one), and starts another should one die. Their
    metrics go to a directory they share for as long as this process runs. Exits as one
    process does when they could not start (3)."""
    with tempfile.TemporaryDirectory(prefix="flowledger-metrics-") as metrics_dir:
        app = partial(app_in_process, settings, metrics_dir, os.getpid(), service_name)
        config = _config(app, host, port, factory=True, workers=processes)
        supervisor = Multiprocess(config, sockets=[config.bind_socket()])
        supervisor.run()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        raise SystemExit(STARTUP_FAILURE)


def _config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
        **options,
    )
