"""Group commit (ADR 0014) on a real database: many commands share one transaction, yet each
is answered with its own positions, a conflict fails only the command that caused it, the
result is the same as recording one command at a time, followers never skip an event that
commits late, and decisions taken on an old cached state are decided again."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Notification, StoredEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from bench.catalogue import echo_chain
from flowledger.commands.agents import UpdateAgent, update_agent
from flowledger.commands.runs import RequestRun, request_run
from flowledger.commands.workflows import UpdateWorkflow, update_workflow
from flowledger.domain.agents import Agent
from flowledger.domain.errors import ConcurrentModification, Conflict, DomainError
from flowledger.domain.names import NameClaim
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.settings import EventStoreSettings
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.eventlog.writer import StaleRead, Submission
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
META = EventMetadata.system("tester")


def stored_rows(runtime: Runtime) -> list[tuple[Any, ...]]:
    """Every stored event: (position, aggregate, version, topic, state), in log order."""
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM flowledger_events ORDER BY notification_id"
            )
        )
        return [tuple(row) for row in rows]


def wipe(runtime: Runtime) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(text("TRUNCATE flowledger_events"))
    runtime.store.forget_cached()


# ------------------------------------------------------------------ decisions to record


@dataclass
class Decision:
    """One command's outcome before it is recorded: aggregates with pending events."""

    aggregates: list[Any]
    expected_ok: bool


@dataclass
class Model:
    """Agents as a sequence of commands would leave them, to derive decisions from."""

    latest: dict[int, Agent] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)


def decide(model: Model, op: tuple[str, int, int]) -> Decision:
    kind, slot, choice = op
    name = f"agent-{choice % 3}"
    if kind == "register" or slot not in model.latest:
        agent = Agent.register(name=name, url=f"http://agent/{slot}")
        claim = NameClaim(kind="agent", name=name, owner_id=agent.id)
        ok = name not in model.claimed
        if ok:
            model.claimed.add(name)
            model.latest[slot] = copy.deepcopy(agent)
            model.latest[slot].collect_events()
        return Decision([agent, claim], ok)
    base = model.latest[slot]
    stale = kind == "stale-update" and base.version > 1
    agent = copy.deepcopy(base)
    if stale:
        # What a command that read the agent one change ago decides: a clashing version.
        agent.version = base.version - 1
        agent.update({"timeout_ms": 9000 + choice})
        return Decision([agent], False)
    agent.update({"timeout_ms": 1000 + choice})
    model.latest[slot] = copy.deepcopy(agent)
    model.latest[slot].collect_events()
    return Decision([agent], True)


ops = st.lists(
    st.tuples(
        st.sampled_from(["register", "update", "update", "stale-update"]),
        st.integers(0, 3),
        st.integers(0, 50),
    ),
    min_size=1,
    max_size=25,
)


def per_aggregate(rows: Sequence[tuple[Any, ...]]) -> dict[UUID, list[tuple[Any, ...]]]:
    events: dict[UUID, list[tuple[Any, ...]]] = {}
    for _, aggregate_id, version, topic, state in rows:
        events.setdefault(aggregate_id, []).append((version, topic, bytes(state)))
    return events


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(commands=ops, batch_size=st.integers(1, 8))
def test_batched_recording_gives_the_same_events_in_the_same_order_as_one_at_a_time(
    runtime: Runtime, commands: list[tuple[str, int, int]], batch_size: int
) -> None:
    model = Model()
    decisions = [decide(model, op) for op in commands]

    wipe(runtime)
    one_at_a_time: list[bool] = []
    for decision in copy.deepcopy(decisions):
        try:
            runtime.store.record(*decision.aggregates, metadata=META)
            one_at_a_time.append(True)
        except ConcurrentModification:
            one_at_a_time.append(False)
    alone = stored_rows(runtime)

    wipe(runtime)
    runtime.store.writer.batch_size = batch_size
    outcomes = runtime.store.record_many([(d.aggregates, META) for d in copy.deepcopy(decisions)])
    batched = [not isinstance(outcome, DomainError) for outcome in outcomes]
    together = stored_rows(runtime)

    assert one_at_a_time == [d.expected_ok for d in decisions]
    assert batched == one_at_a_time, "the same commands are refused"
    assert per_aggregate(together) == per_aggregate(alone)
    # One global order: the commands' events follow the order they were submitted in.
    owners = [row[1] for row in together]
    recorded = [d for d, ok in zip(decisions, batched, strict=True) if ok]
    expected = [a.id for d in recorded for a in d.aggregates for _ in a.pending_events]
    assert owners == expected
    positions = [o for o in outcomes if isinstance(o, int)]
    assert positions == sorted(positions)
    assert set(positions) <= {row[0] for row in together}


def test_a_conflict_in_a_batch_fails_only_its_own_command(runtime: Runtime) -> None:
    first, second, third = (Agent.register(name=n, url="http://a") for n in ("a", "b", "c"))
    taken = Agent.register(name="a", url="http://dup")  # claims the name "a" again
    claims = [NameClaim(kind="agent", name=a.name, owner_id=a.id) for a in (first, taken)]
    runtime.store.writer.batch_size = 10

    outcomes = runtime.store.record_many(
        [
            ([first, claims[0]], META),
            ([taken, claims[1]], META),
            ([second], META),
            ([third], META),
        ]
    )

    assert isinstance(outcomes[1], ConcurrentModification)
    ok = [outcomes[0], outcomes[2], outcomes[3]]
    assert all(isinstance(position, int) for position in ok)
    assert ok == sorted(ok)  # type: ignore[type-var]
    stored = {row[1] for row in stored_rows(runtime)}
    assert {first.id, second.id, third.id, claims[0].id} == stored, "nothing of the refused one"


def test_concurrent_callers_share_transactions_and_each_gets_its_own_position(
    runtime: Runtime,
) -> None:
    runtime.store.writer.window_s = 0.05  # let the threads' commands meet in a batch
    agents = [Agent.register(name=f"agent-{n}", url="http://a") for n in range(24)]
    with ThreadPoolExecutor(max_workers=24) as pool:
        positions = list(pool.map(lambda a: runtime.store.record(a, metadata=META), agents))

    rows = stored_rows(runtime)
    assert {row[0]: row[1] for row in rows} == {
        position: agent.id for position, agent in zip(positions, agents, strict=True)
    }
    with runtime.engine.connect() as conn:
        transactions = conn.execute(
            text("SELECT count(DISTINCT xmin::text) FROM flowledger_events")
        ).scalar_one()
    assert transactions < len(agents), "several commands committed in one transaction"


def test_the_second_of_two_concurrent_writers_gets_a_conflict(runtime: Runtime) -> None:
    agent = Agent.register(name="echo", url="http://echo")
    runtime.store.record(agent, metadata=META)
    both_loaded = threading.Barrier(2)
    store = runtime.store

    class LoadThenWait:
        """The store, where a command waits after loading until the other loaded too."""

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def get(self, *args: Any, **kwargs: Any) -> Any:
            loaded = store.get(*args, **kwargs)
            both_loaded.wait(10)
            return loaded

    def change(timeout_ms: int) -> str:
        command = UpdateAgent(agent_id=agent.id, changes={"timeout_ms": timeout_ms})
        try:
            update_agent(LoadThenWait(), command, META)  # type: ignore[arg-type]
        except ConcurrentModification:
            return "conflict"
        return "ok"

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = sorted(pool.map(change, [2000, 3000]))

    assert results == ["conflict", "ok"]
    assert store.get(Agent, agent.id).version == 2


# ------------------------------------------------------------------ late commits


class Positions:
    """A follower's handler that remembers every position it was handed."""

    name = "test-positions"

    def __init__(self) -> None:
        self.seen: list[int] = []
        self._position: int | None = None

    def position(self) -> int | None:
        return self._position

    def handle(self, batch: Sequence[Notification]) -> None:
        self.seen.extend(n.id for n in batch)
        self._position = batch[-1].id


def waiting_for_the_events_table(database: Database) -> int:
    """Transactions waiting for the append lock (ADR 0023), or for a lock of the table."""
    with database.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted "
            "AND (locktype = 'advisory' OR relation = 'flowledger_events'::regclass)"
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_transaction_held_open_while_later_ones_wait_is_never_skipped_by_a_follower(
    runtime: Runtime, database: Database
) -> None:
    store = runtime.store
    store.record(Agent.register(name="before", url="http://a"), metadata=META)
    positions = Positions()
    follower = Follower(store, positions)
    follower.catch_up()

    held = Agent.register(name="held", url="http://a")
    held_event = store.mapper.to_stored_event(held.collect_events()[0])
    datastore = store.application_recorder.datastore
    with datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
        # The library's append, left uncommitted: it holds the append lock.
        store.application_recorder._insert_stored_events(cursor, [held_event])
        later = [Agent.register(name=f"later-{n}", url="http://a") for n in range(6)]
        pool = ThreadPoolExecutor(max_workers=6)
        answers = [pool.submit(store.record, agent, metadata=META) for agent in later]
        eventually(
            lambda: waiting_for_the_events_table(database),
            lambda waiting: waiting >= 1,
            what="the writer waiting for the append lock",
        )
        follower.catch_up()  # nothing new is visible while the first append is open
        assert positions.seen == [positions.seen[0]]
        assert not any(answer.done() for answer in answers)
    # committed here: the waiting appends go on
    recorded = [answer.result(timeout=30) for answer in answers]
    pool.shutdown()

    follower.catch_up()
    everything = [row[0] for row in stored_rows(runtime)]
    assert positions.seen == everything, "the follower saw every event, in order"
    held_position = everything[1]
    assert all(position > held_position for position in recorded)  # type: ignore[operator]


# ------------------------------------------------------------------ cached reads


@pytest.fixture
def second_process(database: Database, runtime: Runtime) -> Iterator[EventStore]:
    """Another process's event store on the same database (its own cache and writer)."""
    other = EventStore(database, pool_size=2, settings=EventStoreSettings())
    yield other
    other.close()


def test_a_run_requested_on_a_cached_workflow_that_another_process_deactivated_is_refused(
    runtime: Runtime, second_process: EventStore
) -> None:
    workflow_id = echo_chain(runtime.store, "cached", 2)
    command = RequestRun(workflow_id=workflow_id, input_data={"text": "x"})
    assert request_run(runtime.store, command, META).position  # cached here from now on

    update_workflow(
        second_process, UpdateWorkflow(workflow_id=workflow_id, changes={}, status="inactive"), META
    )

    with pytest.raises(Conflict, match="inactive"):
        request_run(runtime.store, command, META)
    update_workflow(
        second_process, UpdateWorkflow(workflow_id=workflow_id, changes={}, status="active"), META
    )
    accepted = request_run(runtime.store, command, META)
    assert accepted.position is not None and not accepted.replayed


def test_a_batch_records_the_commands_whose_reads_are_current_and_refuses_the_others(
    runtime: Runtime,
) -> None:
    """The reads are checked in the INSERT's round trip: a batch with stale reads is rolled
    back and recorded again without them, so they alone get StaleRead and store nothing."""
    wipe(runtime)
    read_id, unknown_id = uuid4(), uuid4()
    runtime.store.writer.submit([_stored(read_id, 1)]).result(timeout=10)
    first, stale, written, reads_written, last = (uuid4() for _ in range(5))
    answers = runtime.store.writer.submit_many(
        [
            Submission([_stored(first, 1)], reads={read_id: 1, unknown_id: 0}),
            Submission([_stored(stale, 1)], reads={read_id: 0}),  # it exists since
            Submission([_stored(written, 1)]),
            Submission([_stored(reads_written, 1)], reads={written: 0}),  # written just before
            Submission([_stored(last, 1)], reads={read_id: 1}),
        ]
    )

    outcomes = [answer.exception(timeout=10) or answer.result() for answer in answers]
    assert [type(o).__name__ for o in outcomes] == [
        "list",
        "StaleRead",
        "list",
        "StaleRead",
        "list",
    ]
    assert isinstance(outcomes[1], StaleRead) and outcomes[1].aggregate_ids == [read_id]
    assert isinstance(outcomes[3], StaleRead) and outcomes[3].aggregate_ids == [written]
    stored = {row[1]: row[0] for row in stored_rows(runtime)}
    assert set(stored) == {read_id, first, written, last}
    assert [stored[first], stored[written], stored[last]] == [o[0] for o in outcomes[::2]]
    assert stored[first] < stored[written] < stored[last]


def _stored(aggregate_id: UUID, version: int) -> StoredEvent:
    return StoredEvent(
        originator_id=aggregate_id, originator_version=version, topic="tests:Thing", state=b"{}"
    )


# ------------------------------------------------------------------ crash


def test_kill_9_of_a_writing_process_loses_no_command_it_answered(runtime: Runtime) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": runtime.database.libpq_url,
        "FLOWLEDGER_LOG_LEVEL": "ERROR",
    }
    appender = subprocess.Popen(
        [sys.executable, "-m", "tests.support.appender"], env=env, stdout=subprocess.PIPE, text=True
    )
    answered: dict[UUID, int] = {}
    try:
        assert appender.stdout is not None
        for line in appender.stdout:
            aggregate_id, position = line.split()
            answered[UUID(aggregate_id)] = int(position)
            if len(answered) >= 60:
                break
    finally:
        os.kill(appender.pid, signal.SIGKILL)
        appender.wait()

    stored = {row[1]: row[0] for row in stored_rows(runtime)}
    assert len(answered) >= 60
    assert {a: stored.get(a) for a in answered} == answered, "every answered command is stored"
    assert len(stored) >= len(answered)  # and perhaps some whose answer never got out
