"""The app of ``flowledger serve``, built by uvicorn; and one of the API processes of ``serve
--processes N`` (ADR 0025), made by uvicorn's supervisor in a process of its own (spawned:
nothing of the parent's threads or connections is shared).

This module imports nothing heavy at its top: the child unpickles :func:`app_in_process` before
it runs any of it, and prometheus_client must not be imported before the processes' shared
metrics directory is named (it decides at import where its values live).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from uvicorn.config import STARTUP_FAILURE

from flowledger.observability import METRICS_DIRECTORY
from flowledger.runtime.lifetime import end_with_parent

if TYPE_CHECKING:
    from litestar import Litestar

    from flowledger.runtime.settings import Settings

log = logging.getLogger("flowledger.cli.serve")


def app_in_process(
    settings: Settings, metrics_dir: str, supervisor_pid: int, service_name: str
) -> Litestar:
    """The app of one of several API processes: set up as ``flowledger serve`` sets up its only
    one. The process ends with its supervisor, even one killed with ``kill -9``. One that cannot
    build its app exits with uvicorn's start-up failure, which stops the supervisor (instead of
    its starting the process again and again)."""
    end_with_parent(supervisor_pid, signal.SIGTERM)
    try:
        if "prometheus_client" in sys.modules:
            raise RuntimeError(
                "prometheus_client was imported before the API processes' metrics directory "
                "was set: /metrics would show one process's counts (keep it out of the "
                "imports of flowledger.cli.main and flowledger.cli.api_process)"
            )
        os.environ[METRICS_DIRECTORY] = metrics_dir
        from flowledger.observability.logs import configure_logging  # noqa: PLC0415
        from flowledger.observability.tracing import configure_tracing  # noqa: PLC0415
        from flowledger.runtime import connections  # noqa: PLC0415

        configure_logging(settings)
        configure_tracing(settings.extra, service_name=service_name)
        connections.set_process_role(connections.API)
        return served_app(settings)
    except Exception:
        log.exception("an API process could not start")
        sys.exit(STARTUP_FAILURE)


def served_app(settings: Settings) -> Litestar:
    """The app as uvicorn serves it, built by uvicorn (an app factory) once it has put its own
    signal handlers in place: live event streams end when the process is asked to stop, so that
    its shutdown does not wait for their clients; and the collector is tuned for a server."""
    from flowledger.http.app import create_app  # noqa: PLC0415
    from flowledger.http.events.stream import close_streams  # noqa: PLC0415
    from flowledger.runtime.workers import steady_gc  # noqa: PLC0415

    for signum in (signal.SIGINT, signal.SIGTERM):
        _close_streams_first(signum, close_streams)
    app = create_app(settings)
    steady_gc()  # the app and its modules are built: frozen out of the collector's scans
    return app


def _close_streams_first(signum: int, close_streams: Any) -> None:
    """Live event streams end when the process is asked to stop, so that its shutdown does not
    wait for their clients (uvicorn's own handler, in place while it serves, runs after)."""
    handler = signal.getsignal(signum)

    def closing(sig: int, frame: FrameType | None) -> None:
        close_streams()
        if callable(handler):
            handler(sig, frame)

    signal.signal(signum, closing)
