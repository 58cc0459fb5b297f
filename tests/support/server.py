"""The real app served by uvicorn in a thread, for streaming responses (Server-Sent Events)
that the in-memory test client cannot follow."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from litestar import Litestar

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
