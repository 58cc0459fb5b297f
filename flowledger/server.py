"""Serving the HTTP app with uvicorn (``flowledger serve`` and ``flowledger dev``)."""

from __future__ import annotations

import uvicorn

from flowledger.http.app import create_app
from flowledger.settings import Settings


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
    uvicorn.Server(config).run()
