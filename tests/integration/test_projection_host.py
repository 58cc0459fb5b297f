"""Read once, apply everywhere: every projection fed by one reader of the log, in batches of any
size, gives exactly the tables of applying one event at a time to each projection alone, and a
rebuild of all of them from zero gives them again. The histories include control-flow runs
(a branch, a map over items, a loop, a wait, a signal, a child run, a retry of a failed map), and
the tables compared include the analytics the runs projection keeps."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import replace
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from flowledger.commands.webhooks import RegisterWebhook, register_webhook
from flowledger.domain.errors import DomainError
from flowledger.eventlog.follower import Follower, PositionMoved
from flowledger.eventlog.store import EventMetadata
from flowledger.projections import rowsets
from flowledger.projections.host import TOGETHER_UP_TO, ProjectionHost
from flowledger.projections.projector import (
    Projector,
    advance_locked,
    locked_batch,
)
from flowledger.projections.rebuild import rebuild_projections
from flowledger.projections.registry import all_projections, projection_follower, projection_host
from flowledger.projections.tables import ANALYTICS_TABLES, webhook_deliveries
from flowledger.runtime.process import Runtime
from tests.integration.test_projections import NAMES, PoisonedAgents, agent_commands
from tests.integration.test_projections import run_commands as agent_history
from tests.integration.test_run_projection_batches import ACTIONS, record_histories
from tests.support import control_histories
from tests.support.control_histories import record_control_histories

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


CONTROL_EVENTS = {
    f"Run.{name}"
    for name in [
        "BranchChosen",
        "StepsSkipped",
        "MapStarted",
        "IterationStarted",
        "StepCompleted",
        "WaitStarted",
        "SignalAwaited",
        "SignalReceived",
        "ChildRunStarted",
        "Paused",
        "Resumed",
        "Suspended",
        "Woken",
        "Retried",
    ]
}
"""The control-flow events the scripted run records (each has its own handler)."""
control_history = st.one_of(
    st.integers(len(control_histories.SCRIPT) // 2, len(control_histories.SCRIPT)).map(
        lambda n: control_histories.SCRIPT[:n]
    ),
    st.lists(st.sampled_from(control_histories.ACTIONS), max_size=20),
)
"""A control-flow run's actions: the script (how far it goes), or any."""


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
    control=st.lists(control_history, min_size=1, max_size=2),
    hooks=st.lists(st.sampled_from(["Run*", "Agent*", "*Failed"]), max_size=2),
    batch_size=st.integers(2, 60),
    upsert_rows=st.sampled_from([0, 2, rowsets.UPSERT_ROWS]),
    together=st.booleans(),
)
def test_one_reader_for_every_projection_equals_one_event_at_a_time_and_a_rebuild(
    runtime: Runtime,
    agents: list[tuple[Any, ...]],
    runs: list[list[str]],
    control: list[list[str]],
    hooks: list[str],
    batch_size: int,
    upsert_rows: int,
    together: bool,
) -> None:
    """``upsert_rows``: how many rows of a table a batch upserts before it copies them instead
    (one event at a time always upserts; 0 makes the batches copy everything). ``together``:
    batches are applied by all projections in one transaction, or one per projection."""
    reset(runtime)
    for pattern in hooks:
        with contextlib.suppress(DomainError):
            hook = RegisterWebhook(url="http://h", secret="s" * 16, event_types=[pattern])
            register_webhook(runtime.store, hook, META)
    agent_history(runtime.store, agents)
    record_histories(runtime.store, runs)
    record_control_histories(runtime.store, control)
    assert_fanned_out_batches_and_a_rebuild_equal_one_event_at_a_time(
        runtime, batch_size, upsert_rows, together_up_to=TOGETHER_UP_TO if together else 0
    )


def assert_fanned_out_batches_and_a_rebuild_equal_one_event_at_a_time(
    runtime: Runtime,
    batch_size: int,
    upsert_rows: int = rowsets.UPSERT_ROWS,
    together_up_to: int = TOGETHER_UP_TO,
) -> None:
    head = runtime.store.head()
    expected = one_at_a_time(runtime)
    assert expected["runs"], "every history requests its run"
    assert expected["analytics_runs"], "the runs are counted in the analytics"

    forget(runtime)
    host = projection_host(runtime.store, runtime.engine)
    host.together_up_to = together_up_to
    try:
        with patch.object(rowsets, "UPSERT_ROWS", upsert_rows):
            assert Follower(runtime.store, host, batch_size=batch_size).catch_up() == head
    finally:
        host.close()
    assert analytics(tables(runtime)) == analytics(expected)
    assert tables(runtime) == expected

    with patch.object(rowsets, "UPSERT_ROWS", 0):  # a rebuild's batches copy their rows
        results = rebuild_projections(
            runtime.engine, runtime.store, all_projections(), batch_size=7
        )
    assert {r.position for r in results} == {head}
    assert analytics(tables(runtime)) == analytics(expected)
    assert tables(runtime) == expected


def test_a_control_flow_run_through_every_kind_of_step_and_a_retry_of_its_map(
    runtime: Runtime,
) -> None:
    reset(runtime)
    (run,) = record_control_histories(runtime.store, [control_histories.SCRIPT])
    assert run.status == "SUCCEEDED"
    recorded = {type(e).__qualname__ for e in runtime.store.repository.event_store.get(run.id)}
    assert recorded >= CONTROL_EVENTS, CONTROL_EVENTS - recorded
    for batch_size in (2, 5, 40):
        forget(runtime)
        assert_fanned_out_batches_and_a_rebuild_equal_one_event_at_a_time(runtime, batch_size)


def analytics(found: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {table.name: found[table.name] for table in ANALYTICS_TABLES}


def test_positions_of_projections_with_nothing_to_apply_move_together_and_never_back(
    runtime: Runtime,
) -> None:
    reset(runtime)
    idle = [Projector(p, runtime.store, runtime.engine) for p in all_projections()[:3]]

    def advance(after: int, last: int) -> list[int]:
        with locked_batch(runtime.engine, None, idle) as (conn, currents):
            return advance_locked(conn, idle, currents, after=after, last=last)

    def saved() -> list[int | None]:
        return [projector.position() for projector in idle]

    assert advance(0, 10) == [10, 10, 10]
    assert saved() == [10, 10, 10]
    assert advance(0, 5) == [10, 10, 10]  # another instance got further: nothing goes back
    assert saved() == [10, 10, 10]
    idle[1].reset()  # reset behind the batch's start: the events in between are not in it
    with pytest.raises(PositionMoved):
        advance(10, 20)
    assert saved() == [10, None, 10]  # nothing of the failed batch was saved


def test_a_batch_holds_the_tracking_rows_it_locked_until_it_commits(runtime: Runtime) -> None:
    """A second host's batch of the same projections waits for the first one's commit, then
    starts from the positions it saved (the rows are locked in one statement, in order)."""
    reset(runtime)
    first = [Projector(p, runtime.store, runtime.engine) for p in all_projections()[:3]]
    second = [Projector(p, runtime.store, runtime.engine) for p in all_projections()[1:4]]
    for projector in first + second:
        projector.commit([], after=0, last=1)  # every tracking row exists
    seen: list[list[int]] = []

    def second_batch() -> None:
        with locked_batch(runtime.engine, None, second) as (_, currents):
            seen.append(currents)

    with locked_batch(runtime.engine, None, first) as (conn, currents):
        assert currents == [1, 1, 1]
        waiting = threading.Thread(target=second_batch)
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive() and not seen  # it waits for the rows this batch holds
        advance_locked(conn, first, currents, after=1, last=7)
    waiting.join(timeout=10)
    assert seen == [[7, 7, 1]]


def test_a_tracking_row_created_while_a_batch_waited_is_seen_and_locked(runtime: Runtime) -> None:
    """The second host's one locking statement waits for the first row; meanwhile the first
    host creates the second projection's row. That statement's snapshot does not show the new
    row, so it is read (and locked) again: the second host starts from 7, not from 0 (which
    would apply the events up to 7 a second time)."""
    reset(runtime)
    both = [Projector(p, runtime.store, runtime.engine) for p in all_projections()[:2]]
    both[0].commit([], after=0, last=1)  # the first row exists, the second does not yet
    seen: list[list[int]] = []

    def second_batch() -> None:
        with locked_batch(runtime.engine, None, both) as (_, currents):
            seen.append(currents)

    with locked_batch(runtime.engine, None, both) as (conn, currents):
        assert currents == [1, 0]
        waiting = threading.Thread(target=second_batch)
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive()
        advance_locked(conn, both, currents, after=0, last=7)
    waiting.join(timeout=10)
    assert seen == [[7, 7]]


def test_a_small_batch_that_fails_in_one_transaction_is_applied_per_projection(
    runtime: Runtime,
) -> None:
    """A small batch is applied by all projections in one transaction; when one of them fails,
    the batch is applied again one transaction per projection, so the failing one stops only
    itself."""
    reset(runtime)
    agent_history(runtime.store, [("register", name) for name in NAMES])
    batch = runtime.store.read(None, 100)
    poison = [n.id for n in batch if n.topic.startswith("flowledger.domain.agents:")][1]
    others = [p for p in all_projections() if p.name in ("audit_log", "runs")]
    poisoned = Projector(PoisonedAgents(poison), runtime.store, runtime.engine)
    host = ProjectionHost(
        runtime.store,
        runtime.engine,
        [poisoned, *(Projector(p, runtime.store, runtime.engine) for p in others)],
    )
    try:
        assert len(batch) <= host.together_up_to
        host.position()
        with pytest.raises(ValueError, match="cannot project"):
            host.handle(batch)
    finally:
        host.close()

    assert poisoned.position() is None, "the failing projection applied nothing"
    by_name = {p.name: p for p in host.projectors}
    assert by_name["audit_log"].position() == batch[-1].id, "the others are applied"
    assert by_name["runs"].position() == batch[-1].id, "an idle one moved on too"


SPLIT_IN_TWO = (
    "runs,run_logs",
    "agents,api_keys,audit_log,bulk_operations,integrations,triggers,users,webhooks,"
    "workflow_grants,workflows",
)
"""The README's split of the projections over two processes (Scaling)."""


def test_two_processes_split_as_the_readme_says_keep_every_projection(runtime: Runtime) -> None:
    reset(runtime)
    register_webhook(
        runtime.store, RegisterWebhook(url="http://h", secret="s" * 16, event_types=["*"]), META
    )
    record_control_histories(runtime.store, [control_histories.SCRIPT])
    head = runtime.store.head()
    expected = one_at_a_time(runtime)

    forget(runtime)
    for group in SPLIT_IN_TWO:
        settings = replace(runtime.settings, extra={"FLOWLEDGER_PROJECTIONS": group})
        follower = projection_follower(runtime.store, runtime.engine, settings)
        try:
            assert follower.catch_up() == head
        finally:
            follower.handler.close()  # type: ignore[attr-defined]
    assert tables(runtime) == expected
    assert {Projector(p, runtime.store, runtime.engine).position() for p in all_projections()} == {
        head
    }
