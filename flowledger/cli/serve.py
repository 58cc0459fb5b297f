"""Serving the HTTP app with uvicorn (``flowledger serve`` and ``flowledger dev``): in this
process, or in several processes on one port (``--processes N``, ADR 0025)."""

from __future__ import annotations

import tempfile
from functools import partial
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from flowledger.cli.api_process import app_in_process
from flowledger.http.app import create_app
from flowledger.http.events.stream import close_streams
from flowledger.runtime.settings import Settings
from flowledger.runtime.workers import steady_gc


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        close_streams()  # live event streams end, so shutdown does not wait for their clients
        super().handle_exit(sig, frame)


def serve(settings: Settings, host: str, port: int, processes: int = 1) -> None:
    if processes > 1:
        _serve_in_processes(settings, host, port, processes)
        return
    config = _config(create_app(settings), host, port)
    steady_gc()  # the app and its modules are built: frozen out of the collector's scans
    _Server(config).run()


def _serve_in_processes(settings: Settings, host: str, port: int, processes: int) -> None:
    """uvicorn's supervisor binds the port once and starts ``processes`` processes that accept
    on it (the kernel gives each connection to one), and starts another should one die. Their
    metrics go to a directory they share for as long as this process runs."""
    with tempfile.TemporaryDirectory(prefix="flowledger-metrics-") as metrics_dir:
        app = partial(app_in_process, settings, metrics_dir)
        config = _config(app, host, port, factory=True, workers=processes)
        Multiprocess(config, sockets=[config.bind_socket()]).run()


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
