"""A follower never skips an event whose transaction commits late.

A writer takes its positions and holds its transaction open while later appends try to commit;
a follower (the projections' host, and a handler that notes every position) reads all along.
Once everything has committed, the follower has every event, each once, in order. This holds
because the event store serialises appends (commit order is position order): a write path that
let a later append commit first would let the follower read past the open one and never see it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from eventsourcing.persistence import Notification
from sqlalchemy import text

from flowledger.commands.agents import RegisterAgent, register_agent
from flowledger.domain.agents import Agent
from flowledger.eventlog.follower import Follower, run_followers
from flowledger.eventlog.store import EventMetadata
from flowledger.projections.registry import projection_host
from flowledger.runtime.process import Runtime
from tests.integration.test_projections import audit_positions
from tests.integration.test_rebuild import public_positions
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
META = EventMetadata.system(actor="held-open")


class Noting:
    """A handler that notes every position it is given (its position kept in memory)."""

    name = "noting"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def position(self) -> int | None:
        return self.seen[-1] if self.seen else None

    def handle(self, batch: Sequence[Notification]) -> None:
        self.seen += [n.id for n in batch]


def test_a_transaction_held_open_while_later_appends_wait_is_never_skipped(
    runtime: Runtime,
) -> None:
    store = runtime.store
    register_agent(store, RegisterAgent(name="before", url="http://a"), META)
    noting = Noting()
    followers = [
        Follower(store, noting, batch_size=2, idle_wait_s=0.02),
        Follower(store, projection_host(store, runtime.engine), batch_size=2, idle_wait_s=0.02),
    ]
    stop = threading.Event()
    following = threading.Thread(target=run_followers, args=(followers, stop), daemon=True)
    following.start()

    held = Agent.register(name="held", url="http://a")
    stored = [store.mapper.to_stored_event(e) for e in held.collect_events()]
    recorder = store.application_recorder
    release, inserted = threading.Event(), threading.Event()

    held_failed: list[BaseException] = []

    def hold_open() -> None:
        try:
            with (
                recorder.datastore.get_connection() as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                recorder._insert_stored_events(cur, stored)  # its position is taken here
                inserted.set()
                release.wait(30)
        except BaseException as error:  # (the server ends a transaction idle for too long)
            held_failed.append(error)
            inserted.set()

    holder = threading.Thread(target=hold_open)
    holder.start()
    assert inserted.wait(10)
    later = [
        threading.Thread(
            target=register_agent,
            args=(store, RegisterAgent(name=f"later-{n}", url="http://a"), META),
        )
        for n in range(4)
    ]
    try:
        for thread in later:
            thread.start()
        # The later appends wait for the open one (the process's writer records them together:
        # one transaction waits for the lock). pg_stat_activity is read once per transaction,
        # so each probe is a transaction of its own.
        autocommit = runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        with autocommit as probe:
            eventually(
                lambda: probe.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                ).scalar_one(),
                lambda waiting: waiting >= 1,
                what="the later appends to wait for the open one",
            )
        time.sleep(0.2)  # the followers read meanwhile
        assert all(t.is_alive() for t in later), "no later append committed before the open one"
    finally:
        release.set()
        holder.join()
        for thread in later:
            thread.join()
    try:
        head = store.head()
        eventually(
            lambda: noting.seen[-1] if noting.seen else 0,
            lambda last: last >= head,
            what=f"the follower to reach the head {head}",
        )
        eventually(
            lambda: audit_positions(runtime),
            lambda positions: positions == public_positions(runtime),
            what="the audit log to hold every public event",
        )
    finally:
        stop.set()
        following.join(timeout=10)
    assert not held_failed, f"the held-open transaction did not commit: {held_failed}"
    every = [n.id for n in store.read(None, 1_000)]
    assert any(n.originator_id == held.id for n in store.read(None, 1_000)), "it committed"
    assert noting.seen == every, "every event once, in order, the late one included"
