"""A running follower is woken by the event store's NOTIFY, not by its poll: after a batch that
reached the head it waits for the next NOTIFY instead of reading again, and with a linger it
reads at most that often, so events close together share a batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from eventsourcing.persistence import Notification
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


class _Batches:
    """A projector that remembers the positions in each batch it was handed."""

    def __init__(self, projector: Projector) -> None:
        self.projector = projector
        self.name = projector.name
        self.batches: list[list[int]] = []

    def position(self) -> int | None:
        return self.projector.position()

    def handle(self, batch: Sequence[Notification]) -> None:
        self.projector.handle(batch)
        self.batches.append([n.id for n in batch])


def test_a_linger_batches_appends_close_together_and_reads_after_quiet_at_once(
    runtime: Runtime,
) -> None:
    """The linger is the least time between two reads: an append after a quiet moment is read
    at once (long before the linger is over), appends soon after a read wait for the rest of it
    and come in one batch."""
    linger_s = 1.0
    with runtime.engine.begin() as conn:
        conn.execute(text("TRUNCATE flowledger_events, agents"))
        conn.execute(text("DELETE FROM agents_tracking WHERE application_name <> '__migration__'"))
    runtime.store.forget_cached()
    handler = _Batches(Projector(AgentsProjection(), runtime.store, runtime.engine))
    follower = Follower(runtime.store, handler, idle_wait_s=POLL_S, linger_s=linger_s)
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,), daemon=True)
    thread.start()

    def register(name: str) -> int:
        outcome = register_agent(runtime.store, RegisterAgent(name=name, url="http://a"), META)
        assert outcome.position is not None
        return outcome.position

    def seen(position: int, timeout_s: float) -> float:
        started = time.monotonic()
        eventually(
            lambda: follower.status.position or 0,
            lambda at: at >= position,
            what=f"position {position}",
            timeout_s=timeout_s,
            interval_s=0.01,
        )
        return time.monotonic() - started

    try:
        # The start's reads (a NOTIFY may come as it starts listening) are over: a read
        # lingering after one would have come within a linger of it.
        eventually(
            lambda: (follower._read_at, time.monotonic() - follower._read_at),
            lambda read: read[0] > 0 and read[1] > 1.5 * linger_s,
            what="the follower to be quiet for a linger",
            timeout_s=10 * linger_s,
            interval_s=0.05,
        )
        first = register("first")
        assert seen(first, timeout_s=linger_s / 2) < linger_s / 2  # quiet before: at once
        close = [register(f"close-{n}") for n in range(3)]
        seen(close[-1], timeout_s=5 * linger_s)
        time.sleep(linger_s)
        after_quiet = register("after-quiet")
        assert seen(after_quiet, timeout_s=linger_s / 2) < linger_s / 2
    finally:
        stop.set()
        register("last")
        thread.join(timeout=5)
    assert not thread.is_alive()
    # (a registration appends two events: the name's claim and the agent)
    ends = [batch[-1] for batch in handler.batches]
    assert first in ends and after_quiet in ends, handler.batches
    assert close[-1] in ends and not {close[0], close[1]} & set(ends), handler.batches
