"""The webhook outbox on a real database: one delivery per (webhook active at the event, event
its filter admits), whatever the batching; a rebuild re-creates the webhooks table and enqueues
nothing twice; two sender processes share the work and still deliver each webhook's events
once, in order; a receiver's cookie goes to no receiver."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from flowledger.commands.agents import RegisterAgent, register_agent
from flowledger.commands.webhooks import (
    DeleteWebhook,
    RegisterWebhook,
    delete_webhook,
    register_webhook,
)
from flowledger.eventlog.envelope import envelopes, type_matches
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.projections.projector import Projector
from flowledger.projections.tables import webhook_deliveries, webhooks
from flowledger.projections.webhooks import WebhooksProjection
from flowledger.runtime.process import Runtime
from flowledger.webhooks.sender import WebhookSender
from flowledger.webhooks.settings import WebhookSettings
from tests.support.receiver import Receiver, running_receiver

pytestmark = pytest.mark.integration
META = EventMetadata.system(actor="outbox-test")
SECRET = "0123456789abcdef"
FILTERS = [[], ["Agent*"], ["WebhookRegistered"], ["*Deleted"]]

commands_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("agent"), st.just(0)),
        st.tuples(st.just("hook"), st.integers(0, len(FILTERS) - 1)),
        st.tuples(st.just("unhook"), st.integers(0, 5)),
    ),
    max_size=15,
)


def run_commands(store: EventStore, commands: Sequence[tuple[Any, ...]]) -> None:
    hooks: list[UUID] = []
    for index, (kind, number) in enumerate(commands):
        if kind == "agent":
            register_agent(store, RegisterAgent(name=f"a{index}", url="http://a"), META)
        elif kind == "hook":
            command = RegisterWebhook(url="http://h", secret=SECRET, event_types=FILTERS[number])
            hooks.append(register_webhook(store, command, META).aggregate.id)
        elif hooks:
            delete_webhook(store, DeleteWebhook(webhook_id=hooks[number % len(hooks)]), META)


def expected_deliveries(store: EventStore) -> set[tuple[UUID, int, str]]:
    """The model: walk the log; a webhook is active from its registration (included) until
    its deletion (excluded); pending deliveries of deleted webhooks are cancelled."""
    active: dict[UUID, list[str]] = {}
    deleted: set[UUID] = set()
    found: list[tuple[UUID, int]] = []
    for envelope in envelopes(store, store.read(None, 100_000)):
        if envelope.event_type == "WebhookRegistered":
            active[envelope.aggregate_id] = list(envelope.data["event_types"])
        elif envelope.event_type == "WebhookDeleted":
            active.pop(envelope.aggregate_id, None)
            deleted.add(envelope.aggregate_id)
        found += [
            (hook, envelope.position)
            for hook, types in active.items()
            if type_matches(types, envelope.event_type)
        ]
    return {(hook, pos, "cancelled" if hook in deleted else "pending") for hook, pos in found}


def outbox(runtime: Runtime) -> set[tuple[UUID, int, str]]:
    d = webhook_deliveries.c
    with runtime.engine.connect() as conn:
        return {tuple(row) for row in conn.execute(select(d.webhook_id, d.position, d.status))}  # type: ignore[misc]


def webhooks_table(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(webhooks).order_by(webhooks.c.id)).mappings().all()
    return [dict(r) for r in rows]


def project(runtime: Runtime, batch_size: int = 500) -> None:
    projector = Projector(WebhooksProjection(), runtime.store, runtime.engine)
    Follower(runtime.store, projector, batch_size=batch_size).catch_up()


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(commands=commands_strategy, batch_size=st.integers(1, 6))
def test_one_delivery_per_active_matching_webhook_and_event_and_a_rebuild_adds_none(
    runtime: Runtime, commands: list[tuple[Any, ...]], batch_size: int
) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(text("TRUNCATE flowledger_events, webhooks, webhook_deliveries"))
        conn.execute(
            text("DELETE FROM webhooks_tracking WHERE application_name <> '__migration__'")
        )
    runtime.store.forget_cached()  # the events it had cached are gone
    run_commands(runtime.store, commands)

    project(runtime, batch_size)
    assert outbox(runtime) == expected_deliveries(runtime.store)
    table = webhooks_table(runtime)

    Projector(WebhooksProjection(), runtime.store, runtime.engine).reset()
    assert webhooks_table(runtime) == []
    project(runtime)
    assert webhooks_table(runtime) == table
    assert outbox(runtime) == expected_deliveries(runtime.store)


def deliver_agents(
    runtime: Runtime, receivers: Sequence[Receiver], agents: int, senders: int
) -> None:
    """Hook every receiver to the agents' events, register ``agents`` agents, and let
    ``senders`` senders (each on a thread of its own) run until every receiver accepted one
    delivery per agent."""
    config = WebhookSettings(retry_initial_s=0.05, retry_max_s=0.1, poll_interval_s=0.05)
    for receiver in receivers:
        command = RegisterWebhook(url=receiver.url, secret=SECRET, event_types=["Agent*"])
        register_webhook(runtime.store, command, META)
    for i in range(agents):
        register_agent(runtime.store, RegisterAgent(name=f"agent-{i}", url="http://a"), META)
    project(runtime)
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=asyncio.run, args=(WebhookSender(runtime.database, config).run(stop),)
        )
        for _ in range(senders)
    ]
    for thread in threads:
        thread.start()
    try:
        for receiver in receivers:
            receiver.wait_for(lambda r: len(r.accepted) >= agents)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def test_two_senders_share_the_work_and_deliver_each_event_once_in_order(
    runtime: Runtime,
) -> None:
    with running_receiver(SECRET) as first, running_receiver(SECRET) as second:
        deliver_agents(runtime, [first, second], agents=12, senders=2)

    for receiver in (first, second):
        names = [d.envelope.data["name"] for d in receiver.accepted]
        assert names == [f"agent-{i}" for i in range(12)]
        assert all(d.signature_valid for d in receiver.deliveries)
    with runtime.engine.connect() as conn:
        statuses = set(conn.execute(select(webhook_deliveries.c.status)).scalars())
    assert statuses == {"succeeded"}


def test_a_receivers_cookie_is_sent_back_to_no_receiver(runtime: Runtime) -> None:
    """One sender delivers to every webhook: a cookie kept from one answer would go with later
    deliveries, to that receiver and to any other on its host (a cookie is not bound to a
    port)."""
    with (
        running_receiver(SECRET, cookie="session=first; Path=/") as first,
        running_receiver(SECRET, cookie="session=second; Path=/") as second,
    ):
        deliver_agents(runtime, [first, second], agents=3, senders=1)

    sent = [d.headers for receiver in (first, second) for d in receiver.deliveries]
    assert len(sent) == 6
    assert [h for h in sent if any(name.lower() == "cookie" for name in h)] == []
