"""After a hard day the operator can still work (issue 21), what the operator did, shorter:
``flowledger dev`` on its embedded server under a steady load of run requests, ``kill -9`` of
each worker and then of the whole ``flowledger dev`` process group, a new ``flowledger dev``;
then the operator's commands all succeed, a rebuild gives back the very tables it replaced, no
run was lost or had a step succeed twice, every run's events are on Kafka in order, the server
never ran out of connections, and a clean stop leaves no PostgreSQL running."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from flowledger.cli.tail import DEV_BROKER_FILE
from flowledger.eventlog.store import EventStore
from flowledger.projections.registry import all_projections
from flowledger.runtime import embedded
from flowledger.runtime.database import Database
from tests.support.agents import running_agent
from tests.support.dev import DevServer, dev_environment, flowledger, postgres_processes
from tests.support.kafka import by_aggregate, expected_envelopes, read_published, without_repeats
from tests.support.polling import eventually
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e

WORKERS = ("projections", "executor", "relay", "webhooks")


class Load:
    """Run requests at a steady pace from a thread, noting each run the API accepted."""

    def __init__(self, base: str, key: str, workflow_id: str) -> None:
        self.url = f"{base}/api/v1/workflows/{workflow_id}/execute"
        self.headers = {"X-API-Key": key}
        self.accepted: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.wait(0.05):  # about 10 requests a second on a busy machine
                headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
                try:
                    answer = client.post(self.url, json={"input_data": {}}, headers=headers)
                except httpx.TransportError:  # flowledger dev is down: the request never landed
                    self.failed += 1
                    continue
                if answer.status_code == 202:
                    self.accepted.append(answer.json()["run_id"])
                else:
                    self.failed += 1


@pytest.fixture
def agent_url() -> Iterator[str]:
    with running_agent("echo") as url:
        yield url


def setup_workflow(dev: DevServer, agent_url: str) -> str:
    with dev.client() as api:
        agent = api.post("/api/v1/agents", json={"name": "echo", "url": agent_url})
        assert agent.status_code == 201, agent.text
        workflow = api.post(
            "/api/v1/workflows",
            json={
                "name": "two-steps",
                "start_step": "first",
                "steps": {
                    "first": {"agent_name": "echo", "next_step": "second"},
                    "second": {"agent_name": "echo"},
                },
            },
        )
        assert workflow.status_code == 201, workflow.text
        return str(workflow.json()["id"])


def runs_by_status(dev: DevServer) -> dict[str, str]:
    found: dict[str, str] = {}
    with dev.client() as api:
        page = 1
        while True:
            answer = api.get("/api/v1/runs", params={"page": page, "page_size": 100})
            answer.raise_for_status()
            body = answer.json()
            found.update({run["id"]: run["status"] for run in body["items"]})
            if page >= body["total_pages"]:
                return found
            page += 1


def successes_per_step(dev: DevServer, run_ids: list[str]) -> dict[str, int]:
    """The most successful attempts any step of each run had."""
    most = {}
    with dev.client() as api:
        for run_id in run_ids:
            steps = api.get(f"/api/v1/runs/{run_id}/steps")
            steps.raise_for_status()
            most[run_id] = max(
                sum(attempt["outcome"] == "succeeded" for attempt in step["attempt_history"])
                for step in steps.json()
            )
    return most


def projection_tables(pgdata: Path) -> dict[str, list[str]]:
    """Every row of every projection's tables, as sorted JSON."""
    contents = {}
    with psycopg.connect(f"postgresql://postgres@/flowledger?host={pgdata}") as conn:
        for projection in all_projections():
            for table in projection.tables:
                rows = conn.execute(f"SELECT to_jsonb(t)::text FROM {table.name} t").fetchall()
                contents[table.name] = sorted(row[0] for row in rows)
    return contents


def projections_lag(dev: DevServer) -> int:
    ready = httpx.get(f"{dev.base}/health/ready", timeout=30).json()
    return sum(entry["lag_events"] for entry in ready["projections"].values())


def assert_every_run_event_on_kafka_in_order(dev: DevServer, pgdata: Path) -> None:
    """Each run's events on its topic (the new dev's broker: the relay published everything
    again to it), in order, none missing (repeats allowed: at least once)."""
    bootstrap = json.loads((dev.data_dir / DEV_BROKER_FILE).read_text())["bootstrap_servers"]
    store = EventStore(Database.from_url(f"postgresql://postgres@/flowledger?host={pgdata}"))
    try:
        stored = [e for e in expected_envelopes(store) if e.aggregate_type == "run"]
    finally:
        store.close()
    published = asyncio.run(
        read_published(bootstrap, "flowledger", [e.event_id for e in stored], timeout_s=120)
    )
    on_kafka = by_aggregate(p for p in published if p.envelope.aggregate_type == "run")
    last = {e.aggregate_id: e.aggregate_version for e in stored}
    assert set(on_kafka) == set(last)
    for run_id, version in last.items():
        assert without_repeats(on_kafka[run_id]) == list(range(1, version + 1)), run_id


def test_after_kill_9_of_workers_and_of_the_dev_group_the_operator_can_still_work(
    tmp_path: Path, agent_url: str
) -> None:
    env = dev_environment(tmp_path / "data")
    pgdata = (tmp_path / "data" / "pgdata").resolve()
    port = free_port()
    dev = DevServer.start(env, tmp_path / "dev.out", port)
    try:
        workflow_id = setup_workflow(dev, agent_url)
        with Load(dev.base, dev.admin_key(), workflow_id) as load:
            eventually(lambda: len(load.accepted), lambda n: n >= 20, what="runs accepted")
            for kind in WORKERS:
                killed = dev.kill_worker(kind)
                eventually(
                    lambda kind=kind: dev.worker_pids().get(kind),
                    lambda pid, killed=killed: pid not in (None, killed),
                    what=f"flowledger dev to start the {kind} worker again",
                    timeout_s=60,
                    interval_s=0.2,
                )
            dev.kill_group()
            assert postgres_processes(pgdata), "the embedded server died with flowledger dev"
            dev = DevServer.start(env, tmp_path / "dev.out", port)
            seen = len(load.accepted)
            eventually(
                lambda: len(load.accepted),
                lambda n: n >= seen + 20,
                what="runs accepted by the new flowledger dev",
                timeout_s=60,
            )
        accepted = list(load.accepted)

        statuses = eventually(
            lambda: runs_by_status(dev),
            lambda found: all(found.get(run) == "SUCCEEDED" for run in accepted),
            what=f"all {len(accepted)} accepted runs to succeed",
            timeout_s=240,
            interval_s=1,
        )
        assert set(accepted) <= set(statuses)
        assert max(successes_per_step(dev, accepted).values()) == 1
        eventually(lambda: projections_lag(dev), lambda n: n == 0, what="projections to catch up")
        if (dev.data_dir / DEV_BROKER_FILE).exists():  # (the broker comes with the dev extra)
            assert_every_run_event_on_kafka_in_order(dev, pgdata)

        live = projection_tables(pgdata)
        rebuilt = flowledger("projections", "rebuild", "--all", "--no-progress", env=env)
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert projection_tables(pgdata) == live
        verified = flowledger("audit", "verify", env=env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "audit verify: OK" in verified.stdout
        status = flowledger("projections", "status", env=env)
        assert status.returncode == 0, status.stdout + status.stderr

        log = (pgdata / "log").read_text(errors="replace")
        assert "too many clients" not in log
    finally:
        dev.stop()

    assert dev.process.returncode == 0, dev.output.read_text(errors="replace")[-3000:]
    eventually(
        lambda: postgres_processes(pgdata),
        lambda pids: not pids,
        what="the embedded PostgreSQL server to stop with flowledger dev",
        timeout_s=30,
    )
    assert not (pgdata / "postmaster.pid").exists()
    assert embedded.holders(pgdata) == []
