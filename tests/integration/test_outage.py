"""A database outage: readiness and commands answer 503 with a clear message, metrics still
answer, and everything recovers by itself when the database returns (pools ping before use,
followers retry). Uses a PostgreSQL server of its own, stopped and started mid-test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowledger.http.app import create_app
from flowledger.runtime.process import Runtime
from tests.conftest import make_settings
from tests.support.http import ApiClient
from tests.support.pgserver import own_server
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


def answer(response: Any) -> str:
    return f"{response.status_code}: {response.text[:300]}"


def agent(name: str) -> dict[str, Any]:
    return {"name": name, "url": "http://127.0.0.1:9"}


def test_readiness_and_commands_answer_503_while_the_database_is_down_then_recover(
    tmp_path: Path,
) -> None:
    with own_server(tmp_path) as server:
        database = server.database()
        settings = make_settings(database, readiness_timeout_s=3.0)
        runtime = Runtime.open(settings, database=database, migrate=False)
        app = create_app(settings, runtime=runtime, workers=("projections",))
        try:
            with ApiClient(app) as api:
                assert api.post("/api/v1/agents", json=agent("before")).status_code == 201
                ready = api.get("/health/ready")
                assert ready.status_code == 200
                assert ready.json()["database"]["status"] == "ok"
                assert ready.json()["broker"] == {"status": "not_configured"}

                server.stop()
                down = api.get("/health/ready")
                assert down.status_code == 503
                assert down.json()["status"] == "not_ready"
                assert down.json()["database"]["status"] == "failed"
                refused = api.post("/api/v1/agents", json=agent("during"))
                assert refused.status_code == 503
                assert refused.json()["detail"] == (
                    "The database is unavailable; nothing was changed. Retry shortly."
                )
                assert refused.headers["Retry-After"]
                scraped = api.get("/metrics")
                assert scraped.status_code == 200
                assert "flowledger_database_up 0.0" in scraped.text

                server.start()
                eventually(
                    lambda: api.get("/health/ready"),
                    lambda r: r.status_code == 200,
                    what="readiness once the database is back",
                    timeout_s=60,
                    interval_s=0.2,
                    describe=answer,
                )
                created = eventually(
                    lambda: api.post("/api/v1/agents", json=agent("after")),
                    lambda r: r.status_code != 503,
                    what="a command to be accepted once the database is back",
                    timeout_s=60,
                    interval_s=0.2,
                    describe=answer,
                )
                assert created.status_code == 201
                listed = api.get("/api/v1/agents", params={"sort": "name"})
                assert listed.status_code == 200, "the projector caught up after the outage"
                assert [a["name"] for a in listed.json()["items"]] == ["after", "before"]
        finally:
            runtime.close_sync()
