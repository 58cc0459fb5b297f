"""Projections on a real database: the read table is exactly the state folded from the
events, however the events are batched, after a rebuild from zero, after a crash between
writing rows and committing, and after ``kill -9`` of the worker process."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, select, text

from flowledger.commands.agents import (
    DeleteAgent,
    RegisterAgent,
    UpdateAgent,
    delete_agent,
    register_agent,
    update_agent,
)
from flowledger.domain.agents import Agent
from flowledger.domain.backoff import Backoff
from flowledger.domain.errors import DomainError
from flowledger.eventlog.follower import Follower, FollowerFailed
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.projections.agents import AgentsProjection
from flowledger.projections.audit import AuditLogProjection
from flowledger.projections.projector import Projector
from flowledger.projections.tables import agents, audit_log
from flowledger.runtime.process import Runtime
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
META = EventMetadata.system(actor="prop")
COLUMNS = (
    "id", "name", "url", "description", "auth_type", "auth_config", "timeout_ms",
    "retry_config", "status", "version", "created_at", "updated_at",
)  # fmt: skip


def folded_agents(store: EventStore) -> list[dict[str, Any]]:
    """The expected read table: every agent rebuilt from its events by the repository."""
    ids: list[UUID] = []
    for notification in store.read(None, 1_000_000):
        if (
            notification.topic.startswith("flowledger.domain.agents:")
            and notification.originator_id not in ids
        ):
            ids.append(notification.originator_id)
    rows = []
    for agent_id in ids:
        agent = store.get(Agent, agent_id)
        rows.append(
            {
                "id": agent.id,
                "name": agent.name,
                "url": agent.url,
                "description": agent.description,
                "auth_type": agent.auth_type,
                "auth_config": agent.auth_config,
                "timeout_ms": agent.timeout_ms,
                "retry_config": agent.retry_config,
                "status": agent.status,
                "version": agent.version,
                "created_at": agent.created_on,
                "updated_at": agent.modified_on,
            }
        )
    return sorted(rows, key=lambda r: str(r["id"]))


def table_agents(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(*(agents.c[c] for c in COLUMNS))).mappings().all()
    return sorted((dict(r) for r in rows), key=lambda r: str(r["id"]))


def audit_positions(runtime: Runtime) -> list[int]:
    with runtime.engine.connect() as conn:
        return list(
            conn.execute(select(audit_log.c.position).order_by(audit_log.c.position)).scalars()
        )


def project(runtime: Runtime, batch_size: int = 500) -> None:
    for projection in (AgentsProjection(), AuditLogProjection()):
        Follower(
            runtime.store,
            Projector(projection, runtime.store, runtime.engine),
            batch_size=batch_size,
        ).catch_up()


def reset_everything(conn: Connection) -> None:
    conn.execute(text("TRUNCATE flowledger_events, agents, audit_log"))
    for table in ("agents_tracking", "audit_log_tracking"):
        conn.execute(text(f"DELETE FROM {table} WHERE application_name <> '__migration__'"))


NAMES = ["echo", "summarizer", "flaky"]
agent_commands = st.lists(
    st.one_of(
        st.tuples(st.just("register"), st.sampled_from(NAMES)),
        st.tuples(
            st.just("update"),
            st.integers(0, 5),
            st.fixed_dictionaries(
                {},
                optional={
                    "timeout_ms": st.integers(500, 400_000),
                    "description": st.none() | st.text(max_size=8),
                    "auth_type": st.sampled_from(["none", "bearer"]),
                    "auth_config": st.just({"token": "t0k"}),
                    "retry_config": st.fixed_dictionaries(
                        {}, optional={"max_retries": st.integers(0, 12)}
                    ),
                },
            ),
        ),
        st.tuples(st.sampled_from(["activate", "deactivate", "delete"]), st.integers(0, 5)),
    ),
    max_size=25,
)


def run_commands(store: EventStore, commands: Sequence[tuple[Any, ...]]) -> None:
    registered: list[UUID] = []
    for command in commands:
        try:
            if command[0] == "register":
                outcome = register_agent(
                    store, RegisterAgent(name=command[1], url="http://a"), META
                )
                registered.append(outcome.aggregate.id)
            elif not registered:
                continue
            elif command[0] == "update":
                agent_id = registered[command[1] % len(registered)]
                update_agent(store, UpdateAgent(agent_id=agent_id, changes=command[2]), META)
            elif command[0] == "delete":
                delete_agent(
                    store, DeleteAgent(agent_id=registered[command[1] % len(registered)]), META
                )
            else:
                status = "active" if command[0] == "activate" else "inactive"
                agent_id = registered[command[1] % len(registered)]
                update_agent(store, UpdateAgent(agent_id=agent_id, changes={}, status=status), META)
        except DomainError:
            pass


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(commands=agent_commands, batch_size=st.integers(1, 8))
def test_the_read_table_is_the_fold_of_the_events_and_a_rebuild_gives_it_again(
    runtime: Runtime, commands: list[tuple[Any, ...]], batch_size: int
) -> None:
    with runtime.engine.begin() as conn:
        reset_everything(conn)
    runtime.store.forget_cached()  # the events it had cached are gone
    run_commands(runtime.store, commands)

    project(runtime, batch_size)
    expected = folded_agents(runtime.store)
    assert table_agents(runtime) == expected
    public_positions = [
        n.id
        for n in runtime.store.read(None, 100_000)
        if not n.topic.startswith("flowledger.domain.names:")
    ]
    assert audit_positions(runtime) == public_positions

    for projection in (AgentsProjection(), AuditLogProjection()):
        Projector(projection, runtime.store, runtime.engine).reset()
    assert table_agents(runtime) == []
    project(runtime, batch_size=500)
    assert table_agents(runtime) == expected
    assert audit_positions(runtime) == public_positions


class CrashBeforeCommit(Projector):
    """Writes the batch's rows and its position, then dies before the commit."""

    def _save_position(self, conn: Connection, position: int) -> None:
        super()._save_position(conn, position)
        raise SystemExit("killed between writing rows and committing")


def test_a_crash_between_writing_rows_and_committing_leaves_rows_and_position_unchanged(
    runtime: Runtime,
) -> None:
    run_commands(
        runtime.store,
        [("register", "echo"), ("register", "flaky"), ("update", 0, {"timeout_ms": 2000})],
    )
    crashing = CrashBeforeCommit(AgentsProjection(), runtime.store, runtime.engine)
    with pytest.raises(SystemExit):
        crashing.handle(runtime.store.read(None, 100))
    assert table_agents(runtime) == []
    assert crashing.position() is None

    project(runtime)
    assert table_agents(runtime) == folded_agents(runtime.store)


class PoisonedAgents(AgentsProjection):
    def __init__(self, poison_position: int) -> None:
        self.poison_position = poison_position

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        if position == self.poison_position:
            raise ValueError("cannot project this event")
        super().apply(conn, event, position)


def test_a_follower_that_keeps_failing_stops_at_the_failing_position_after_applying_the_rest(
    runtime: Runtime,
) -> None:
    run_commands(runtime.store, [("register", n) for n in NAMES])
    positions = [
        n.id
        for n in runtime.store.read(None, 100)
        if n.topic.startswith("flowledger.domain.agents:")
    ]
    poison = positions[1]
    projector = Projector(PoisonedAgents(poison), runtime.store, runtime.engine)
    follower = Follower(runtime.store, projector, batch_size=100, max_attempts=3)
    follower.backoff = Backoff(initial=0.01, maximum=0.02)

    with pytest.raises(FollowerFailed) as failed:
        follower.catch_up()

    assert failed.value.position == poison
    assert follower.status.state == "failed"
    assert follower.status.failed_position == poison
    assert projector.position() == poison - 1, "every event before the poisoned one is applied"
    assert [row["name"] for row in table_agents(runtime)] == [NAMES[0]]


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "flowledger", "worker", "projections"], env=env)


def test_kill_9_of_the_projections_worker_at_random_moments_loses_and_repeats_nothing(
    runtime: Runtime, tmp_path: Any
) -> None:
    commands: list[tuple[Any, ...]] = [("register", f"agent-{i}") for i in range(60)]
    commands += [("update", i, {"timeout_ms": 1000 + i}) for i in range(60)]
    commands += [("deactivate", i) for i in range(0, 60, 3)]
    run_commands(runtime.store, commands)
    head = runtime.store.head()
    env = {
        **os.environ,
        "DATABASE_URL": runtime.database.libpq_url,
        "FLOWLEDGER_PROJECTIONS_BATCH_SIZE": "3",
        "FLOWLEDGER_LOG_LEVEL": "WARNING",
    }
    projectors = [
        Projector(p, runtime.store, runtime.engine)
        for p in (AgentsProjection(), AuditLogProjection())
    ]
    agents_projector = projectors[0]
    rng = random.Random(20261122)
    killed_mid_stream = 0
    for _ in range(4):
        before = agents_projector.position() or 0
        if before >= head:
            break  # a worker got to the head before it was killed: nothing is left to project
        worker = start_worker(env)
        try:
            eventually(
                lambda: agents_projector.position() or 0,
                lambda position, before=before: position > before,
                what=f"the worker to project past {before}",
                timeout_s=20,
            )
            time.sleep(rng.uniform(0, 0.03))
        finally:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
        killed_mid_stream += (agents_projector.position() or 0) < head
    assert killed_mid_stream >= 2, "the worker should have died mid-stream more than once"

    worker = start_worker(env)
    try:
        eventually(
            lambda: [p.position() or 0 for p in projectors],
            lambda positions: all(p >= head for p in positions),
            what=f"both projectors to reach the head {head}",
            timeout_s=20,
        )
    finally:
        worker.terminate()
        worker.wait()
    assert table_agents(runtime) == folded_agents(runtime.store)
    audit = audit_positions(runtime)
    assert audit == sorted(set(audit)), "no audit row was applied twice"
