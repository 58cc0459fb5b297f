"""Read once, apply everywhere: every projection fed by one reader of the log, in batches of any
size, gives exactly the tables of applying one event at a time to each projection alone, and a
rebuild of all of them from zero gives them again."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from flowledger.commands.webhooks import RegisterWebhook, register_webhook
from flowledger.domain.errors import DomainError
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.store import EventMetadata
from flowledger.projections.projector import Projector
from flowledger.projections.rebuild import rebuild_projections
from flowledger.projections.registry import all_projections, projection_host
from flowledger.projections.tables import webhook_deliveries
from flowledger.runtime.process import Runtime
from tests.integration.test_projections import agent_commands
from tests.integration.test_projections import run_commands as agent_history
from tests.integration.test_run_projection_batches import ACTIONS, record_histories

pytestmark = pytest.mark.integration
META = EventMetadata.system(actor="host")
TABLES = sorted({t for p in all_projections() for t in p.tables}, key=lambda t: t.name)


def reset(runtime: Runtime) -> None:
    with runtime.engine.begin() as conn:
        names = ", ".join(t.name for t in [*TABLES, webhook_deliveries])
        conn.execute(text(f"TRUNCATE flowledger_events, {names}"))
        for projection in all_projections():
            conn.execute(
                text(
                    f"DELETE FROM {projection.name}_tracking "
                    "WHERE application_name <> '__migration__'"
                )
            )


def forget(runtime: Runtime) -> None:
    for projection in all_projections():
        Projector(projection, runtime.store, runtime.engine).reset()


def tables(runtime: Runtime) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    with runtime.engine.connect() as conn:
        for table in TABLES:
            found[table.name] = sorted(
                (dict(r) for r in conn.execute(select(table)).mappings()), key=repr
            )
        found["webhook_deliveries"] = sorted(
            conn.execute(select(webhook_deliveries.c.id, webhook_deliveries.c.position)).all()
        )
    return found


def one_at_a_time(runtime: Runtime) -> dict[str, list[Any]]:
    for projection in all_projections():
        Follower(
            runtime.store, Projector(projection, runtime.store, runtime.engine), batch_size=1
        ).catch_up()
    return tables(runtime)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    agents=agent_commands,
    runs=st.lists(st.lists(st.sampled_from(ACTIONS), max_size=10), min_size=1, max_size=3),
    hooks=st.lists(st.sampled_from(["Run*", "Agent*", "*Failed"]), max_size=2),
    batch_size=st.integers(2, 60),
)
def test_one_reader_for_every_projection_equals_one_event_at_a_time_and_a_rebuild(
    runtime: Runtime,
    agents: list[tuple[Any, ...]],
    runs: list[list[str]],
    hooks: list[str],
    batch_size: int,
) -> None:
    reset(runtime)
    for pattern in hooks:
        with contextlib.suppress(DomainError):
            hook = RegisterWebhook(url="http://h", secret="s" * 16, event_types=[pattern])
            register_webhook(runtime.store, hook, META)
    agent_history(runtime.store, agents)
    record_histories(runtime.store, runs)
    head = runtime.store.head()

    expected = one_at_a_time(runtime)
    assert expected["runs"], "every history requests its run"

    forget(runtime)
    host = projection_host(runtime.store, runtime.engine)
    try:
        assert Follower(runtime.store, host, batch_size=batch_size).catch_up() == head
    finally:
        host.close()
    assert tables(runtime) == expected

    results = rebuild_projections(runtime.engine, runtime.store, all_projections(), batch_size=7)
    assert {r.position for r in results} == {head}
    assert tables(runtime) == expected
