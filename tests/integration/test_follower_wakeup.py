"""A running follower is woken by the event store's NOTIFY, not by its poll: after a batch that
reached the head it waits for the next NOTIFY instead of reading again, and with a linger it
waits that long after the NOTIFY so events close together share a batch."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from flowledger.commands.agents import RegisterAgent, register_agent
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.store import EventMetadata
from flowledger.projections.agents import AgentsProjection
from flowledger.projections.projector import Projector
from flowledger.runtime.process import Runtime
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
META = EventMetadata.system(actor="wakeup")
POLL_S = 30.0
"""Far longer than the test waits: only a NOTIFY can wake the follower in time."""


@pytest.mark.parametrize("linger_s", [0.0, 0.05])
def test_each_append_wakes_a_running_follower_long_before_its_poll(
    runtime: Runtime, linger_s: float
) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(text("TRUNCATE flowledger_events, agents"))
        conn.execute(text("DELETE FROM agents_tracking WHERE application_name <> '__migration__'"))
    runtime.store.forget_cached()  # the events it had cached are gone
    follower = Follower(
        runtime.store,
        Projector(AgentsProjection(), runtime.store, runtime.engine),
        idle_wait_s=POLL_S,
        linger_s=linger_s,
    )
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,), daemon=True)
    thread.start()
    try:
        for n in range(5):
            outcome = register_agent(
                runtime.store, RegisterAgent(name=f"agent-{n}", url="http://agent"), META
            )
            assert outcome.position is not None
            eventually(
                lambda: follower.status.position or 0,
                lambda position, wanted=outcome.position: position >= wanted,
                what=f"append {n} to wake the follower",
                timeout_s=3.0,
                interval_s=0.01,
            )
            if n == 2:
                time.sleep(0.3)  # quiet: the follower is waiting for the next NOTIFY
    finally:
        stop.set()
        # the waker notices ``stop`` at the latest when its wait ends: wake it
        register_agent(runtime.store, RegisterAgent(name="last", url="http://agent"), META)
        thread.join(timeout=5)
    assert not thread.is_alive()
