"""Serving the HTTP app with uvicorn (``flowledger serve`` and ``flowledger dev``)."""

from __future__ import annotations

from types import FrameType

import uvicorn

from flowledger.http.app import create_app
from flowledger.http.events.stream import close_streams
from flowledger.runtime.settings import Settings
from flowledger.runtime.workers import steady_gc


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        close_streams()  # live event streams end, so shutdown does not wait for their clients
        super().handle_exit(sig, frame)


def serve(settings: Settings, host: str, port: int) -> None:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    steady_gc()  # the app and its modules are built: frozen out of the collector's scans
    _Server(config).run()
