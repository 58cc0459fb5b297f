"""An in-process worker's event loop never uses the async engine the app's requests use.

The executor run in-process (tests, small deployments) has its own event loop in its own
thread. An async engine's pool and connections wake their waiters with calls that are not
thread-safe, so when the executor's sweep shared ``runtime.async_engine`` with the app, a
request's wake-up could be left unseen by its idle loop: a read hung until the pool's 30 s
timeout, or for good (``test_n8n``'s read of the integrations after a sync, twice in the full
suite). The executor now makes its own engine on its own loop."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowledger.http.app import create_app
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from tests.conftest import TEST_ENVIRONMENT, make_settings
from tests.support.http import ApiClient
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e


def test_the_executors_sweep_does_not_use_the_apps_async_engine(database: Database) -> None:
    # The smallest budget (one async connection) and a sweep every 10 ms: the executor's loop
    # and the requests would take turns with that connection if they shared the engine.
    settings = make_settings(
        database,
        db_pool_size=5,
        extra={**TEST_ENVIRONMENT, "FLOWLEDGER_EXECUTOR_SWEEP_INTERVAL": "0.01"},
    )
    runtime = Runtime.open(settings, database=database, migrate=False)
    connected_from: set[str] = set()
    runtime.async_engine = WhoConnects(runtime.async_engine, connected_from)  # type: ignore[assignment]
    try:
        assert runtime.budget is not None and runtime.budget.async_ == 1
        app = create_app(settings, runtime=runtime, workers=("projections", "executor"))
        with ApiClient(app) as api:
            written = api.post(
                "/api/v1/integrations/n8n/sync",
                json={"n8n_url": "http://127.0.0.1:9", "api_key": "not-a-key"},
            )
            assert written.status_code == 200, written.text
            for _ in range(20):
                shown = api.get("/api/v1/integrations")
                assert shown.status_code == 200, shown.text
                assert [i["status"] for i in shown.json()["items"]] == ["error"]
            # The executor sweeps every 10 ms: by now it has, many times, on its own engine.
            eventually(
                lambda: api.get("/api/v1/runs").status_code,
                lambda status: status == 200,
                what="the runs list",
            )
        assert connected_from, "the requests used the app's engine"
        assert "worker-executor" not in connected_from, connected_from
    finally:
        runtime.close_sync()


class WhoConnects:
    """The runtime's async engine, noting the name of each thread that connects with it."""

    def __init__(self, engine: AsyncEngine, threads: set[str]) -> None:
        self.engine = engine
        self.threads = threads

    def connect(self) -> AsyncConnection:
        self.threads.add(threading.current_thread().name)
        return self.engine.connect()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)
