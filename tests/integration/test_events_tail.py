"""``flowledger events tail``: JSON lines of envelopes from the event store or from Kafka, each
event once, filtered, from a position or from now."""

from __future__ import annotations

import io
import threading
import uuid

import pytest

from flowledger.cli.tail import TailRequest, tail_kafka, tail_store
from flowledger.commands.agents import RegisterAgent, UpdateAgent, register_agent, update_agent
from flowledger.commands.webhooks import RegisterWebhook, register_webhook
from flowledger.eventlog.envelope import Envelope, EventFilter, decode, envelopes
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.store import EventMetadata
from flowledger.kafka.embedded import EmbeddedBroker
from flowledger.kafka.relay import Relay
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.support.kafka import kafka_settings
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
META = EventMetadata.system(actor="tail-test")


def printed(out: io.StringIO) -> list[Envelope]:
    return [decode(line) for line in out.getvalue().splitlines()]


def some_history(runtime: Runtime) -> None:
    agent = register_agent(runtime.store, RegisterAgent(name="echo", url="http://a"), META)
    register_webhook(runtime.store, RegisterWebhook(url="http://h", secret="s" * 16), META)
    update_agent(
        runtime.store, UpdateAgent(agent_id=agent.aggregate.id, changes={"timeout_ms": 5000}), META
    )


def everything(runtime: Runtime) -> list[Envelope]:
    return envelopes(runtime.store, runtime.store.read(None, 10_000))


def run_in_thread(target: object, *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_the_store_tail_prints_filtered_envelopes_after_a_position(
    runtime: Runtime, settings: Settings
) -> None:
    some_history(runtime)
    agents = [e for e in everything(runtime) if e.aggregate_type == "agent"]
    out = io.StringIO()
    request = TailRequest(EventFilter(aggregate_types=("agent",)), after=0, limit=len(agents))
    tail_store(settings, request, out)
    assert printed(out) == agents


def test_the_store_tail_follows_new_events(runtime: Runtime, settings: Settings) -> None:
    some_history(runtime)
    out = io.StringIO()
    request = TailRequest(EventFilter(event_types=("AgentRegistered",)), after=None, limit=1)
    thread = run_in_thread(tail_store, settings, request, out)
    # The tail starts at the head it finds; wait until it has found it before writing.

    def tail_has_printed() -> bool:
        if out.getvalue() or not thread.is_alive():
            return True
        register_agent(
            runtime.store, RegisterAgent(name=f"new-{uuid.uuid4().hex[:6]}", url="http://a"), META
        )
        return False

    eventually(tail_has_printed, what="the tail to print an event written after it started")
    thread.join(timeout=30)
    assert not thread.is_alive()
    [new] = printed(out)
    assert new.event_type == "AgentRegistered" and new.data["name"].startswith("new-")


def publish(runtime: Runtime, config: object, *, twice: bool = False) -> None:
    for _ in range(2 if twice else 1):
        with runtime.engine.begin() as conn:
            conn.exec_driver_sql(
                "DELETE FROM relay_tracking WHERE application_name <> '__migration__'"
            )
        relay = Relay(runtime.store, runtime.engine, config)  # type: ignore[arg-type]
        try:
            Follower(runtime.store, relay).catch_up()
        finally:
            relay.close()


def test_the_kafka_tail_from_the_beginning_prints_each_event_once(
    runtime: Runtime, settings: Settings, kafka_broker: EmbeddedBroker
) -> None:
    prefix = f"tail{uuid.uuid4().hex[:8]}"
    some_history(runtime)
    publish(runtime, kafka_settings(kafka_broker.bootstrap_servers, prefix), twice=True)
    expected = everything(runtime)
    settings = settings.with_overrides(extra={"FLOWLEDGER_KAFKA_TOPIC_PREFIX": prefix})
    out = io.StringIO()
    request = TailRequest(EventFilter(), after=0, limit=len(expected))
    tail_kafka(settings, kafka_broker.bootstrap_servers, request, out)
    assert sorted(printed(out), key=lambda e: e.position) == expected


def test_the_kafka_tail_from_now_prints_only_what_happens_after_it_started(
    runtime: Runtime, settings: Settings, kafka_broker: EmbeddedBroker
) -> None:
    prefix = f"tail{uuid.uuid4().hex[:8]}"
    config = kafka_settings(kafka_broker.bootstrap_servers, prefix)
    some_history(runtime)
    publish(runtime, config)
    settings = settings.with_overrides(extra={"FLOWLEDGER_KAFKA_TOPIC_PREFIX": prefix})
    out = io.StringIO()
    request = TailRequest(EventFilter(), after=None, limit=1)
    thread = run_in_thread(tail_kafka, settings, kafka_broker.bootstrap_servers, request, out)
    register_agent(runtime.store, RegisterAgent(name="fresh", url="http://a"), META)
    relay = Relay(runtime.store, runtime.engine, config)
    try:
        Follower(runtime.store, relay).catch_up()
    finally:
        relay.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    [fresh] = printed(out)
    assert fresh.event_type == "AgentRegistered" and fresh.data["name"] == "fresh"


class GonePipe(io.StringIO):
    """The output of ``flowledger events tail | head`` once ``head`` has exited."""

    def write(self, text: str) -> int:
        raise BrokenPipeError


def test_the_store_tail_ends_when_whoever_reads_it_has_gone(
    runtime: Runtime, settings: Settings
) -> None:
    some_history(runtime)
    raised: list[BaseException] = []

    def tail() -> None:
        try:
            tail_store(settings, TailRequest(EventFilter(), after=0), GonePipe())
        except BaseException as error:
            raised.append(error)

    thread = run_in_thread(tail)
    thread.join(timeout=20)
    assert not thread.is_alive(), "the tail kept retrying a pipe nobody reads"
    assert [type(error) for error in raised] == [BrokenPipeError]
