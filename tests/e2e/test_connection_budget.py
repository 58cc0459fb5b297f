"""The connection budget of the processes ``flowledger dev`` starts (issue 21): during a burst of
requests their connections stay under the sum of their budgets (requests wait for a pooled
connection rather than fail), and after it they go back to their idle level."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from flowledger.kafka.embedded import broker_available
from flowledger.runtime.connections import owner_of
from flowledger.runtime.database import Database
from flowledger.runtime.workers import WORKERS
from tests.support.dev import DevServer, dev_environment
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

POOL_SIZE = 8
CLIENTS = 32
BURST_S = 8.0


def flowledger_backends(conn: psycopg.Connection[tuple[object, ...]], dbname: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
        "AND application_name LIKE 'flowledger %%' AND pid <> pg_backend_pid()",
        (dbname,),
    ).fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


@dataclass
class Sampler:
    """Counts flowledger's backends on the database, again and again, from a thread."""

    database: Database
    counts: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with psycopg.connect(self.database.libpq_url, autocommit=True) as conn:
            while not self._stop.wait(0.02):
                self.counts.append(flowledger_backends(conn, self.database.dbname))


def window(database: Database, seconds: float) -> int:
    """The most backends seen over ``seconds`` of watching."""
    with Sampler(database) as sampler:
        threading.Event().wait(seconds)
    return max(sampler.counts)


def by_role(database: Database) -> dict[str, int]:
    """flowledger's backends on the database now, by the role of the process holding them."""
    counts: dict[str, int] = {}
    with psycopg.connect(database.libpq_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = %s "
            "AND application_name LIKE 'flowledger %%' AND pid <> pg_backend_pid()",
            (database.dbname,),
        ).fetchall()
    for (name,) in rows:
        owner = owner_of(str(name))
        assert owner is not None
        counts[owner.role] = counts.get(owner.role, 0) + 1
    return counts


@pytest.fixture
def dev(database: Database, tmp_path: Path) -> Iterator[DevServer]:
    env = dev_environment(
        tmp_path / "data",
        database,
        FLOWLEDGER_DB_POOL_SIZE=str(POOL_SIZE),
        FLOWLEDGER_DB_IDLE_TIMEOUT="1",
        FLOWLEDGER_RATE_LIMIT="off",
    )
    server = DevServer.start(env, tmp_path / "dev.out")
    try:
        yield server
    finally:
        server.stop()


def burst(dev: DevServer, statuses: list[int]) -> None:
    """One client's share of the burst: writes (which the projectors then apply) and reads."""
    deadline = time.monotonic() + BURST_S
    with dev.client(timeout_s=60) as api:
        while time.monotonic() < deadline:
            name = f"agent-{uuid.uuid4().hex[:12]}"
            answers = [
                api.post("/api/v1/agents", json={"name": name, "url": "http://127.0.0.1:9"}),
                api.get("/api/v1/agents", params={"page_size": 20}),
                api.get("/api/v1/runs", params={"status": "FAILED"}),
            ]
            statuses.extend(answer.status_code for answer in answers)


def test_backends_stay_within_the_budget_during_a_burst_and_return_to_idle_after(
    dev: DevServer, database: Database
) -> None:
    workers = len(WORKERS) if broker_available() else len(WORKERS) - 1  # (no broker: no relay)
    processes = 1 + workers  # the API in flowledger dev, and its workers
    budget = processes * POOL_SIZE

    roles = {"api", *(f"worker {kind}" for kind in WORKERS)}
    if not broker_available():
        roles.discard("worker relay")
    eventually(
        lambda: by_role(database),
        lambda found: roles <= set(found),
        what="every process of flowledger dev to connect",
        timeout_s=120,
        interval_s=0.2,
    )
    # The idle level: once what starting up opened has gone back, a window no higher than
    # the one before it.
    idle_windows = eventually(
        lambda: (window(database, 2.0), window(database, 2.0)),
        lambda pair: pair[1] >= pair[0],
        what="the connections to settle after start-up",
        timeout_s=90,
        interval_s=0,
    )
    idle = idle_windows[1]

    statuses: list[int] = []
    clients = [
        threading.Thread(target=burst, args=(dev, statuses), name=f"client-{n}", daemon=True)
        for n in range(CLIENTS)
    ]
    with Sampler(database) as sampler:
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=BURST_S + 120)
    peak = max(sampler.counts)

    assert statuses, "the burst sent nothing"
    assert all(status < 500 for status in statuses), sorted(set(statuses))
    assert peak > idle, "the burst did not need more connections than idle: it proves nothing"
    assert peak <= budget, f"{peak} backends, over the budget of {processes} x {POOL_SIZE}"
    eventually(
        lambda: by_role(database),
        lambda found: sum(found.values()) <= idle,
        what=f"the backends to go back to their idle level ({idle}, peak {peak})",
        timeout_s=60,
        interval_s=0.2,
    )
    with dev.client() as api:  # connections the server closed are replaced as they are needed
        assert api.get("/api/v1/agents").status_code == 200
        assert (
            api.post("/api/v1/agents", json={"name": "after", "url": "http://a"}).status_code == 201
        )
