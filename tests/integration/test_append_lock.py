"""Appends are serialised by a transaction advisory lock, not by a lock of the event table:
a VACUUM of the table (what autovacuum runs while events are appended) does not hold them up,
and they still commit one at a time, in position order (``test_follower_never_skips.py``)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from flowledger.commands.agents import RegisterAgent, register_agent
from flowledger.eventlog.store import EVENTS_TABLE, EventMetadata
from flowledger.runtime.process import Runtime

pytestmark = pytest.mark.integration
META = EventMetadata.system(actor="vacuum")


def test_an_append_commits_while_the_event_table_is_being_vacuumed(runtime: Runtime) -> None:
    """VACUUM holds SHARE UPDATE EXCLUSIVE on the table for as long as it runs. Held here in
    a transaction of its own, so the test controls how long; the library's table lock
    (EXCLUSIVE) waited for it, and every append with it."""
    store = runtime.store
    done = threading.Event()
    failed: list[BaseException] = []

    def append() -> None:
        try:
            register_agent(store, RegisterAgent(name="during-vacuum", url="http://a"), META)
        except BaseException as error:
            failed.append(error)
        finally:
            done.set()

    with runtime.engine.connect() as vacuum:
        vacuum.execute(text(f"LOCK TABLE {EVENTS_TABLE} IN SHARE UPDATE EXCLUSIVE MODE"))
        appending = threading.Thread(target=append, daemon=True)
        appending.start()
        committed_meanwhile = done.wait(10)
        vacuum.rollback()  # (what a finished vacuum does: lets go)
    appending.join(10)

    assert committed_meanwhile, "the append waited for the vacuum"
    assert not failed, failed


def test_a_second_append_waits_for_the_first_to_commit(runtime: Runtime) -> None:
    """The advisory lock is what orders appends: while one append's transaction holds it,
    another waits (and commits after it, so positions follow commit order)."""
    store = runtime.store
    recorder = store.application_recorder
    done = threading.Event()

    def append() -> None:
        register_agent(store, RegisterAgent(name="second", url="http://a"), META)
        done.set()

    with (
        recorder.datastore.get_connection() as conn,
        conn.transaction(),
        conn.cursor() as cursor,
    ):
        recorder._lock_table(cursor)  # what an append takes first
        appending = threading.Thread(target=append, daemon=True)
        appending.start()
        assert not done.wait(1), "an append committed while another held the append lock"
    assert done.wait(10), "the append did not commit once the lock was released"
    appending.join(10)
