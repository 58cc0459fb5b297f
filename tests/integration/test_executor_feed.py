"""The executor's one reader of the log (``RunFeed``): it hands the event loop what a driver
must hear, keeps the active runs table, and saves its position only when the table changes or
a while has passed (a step's events cost the executor no transaction)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.utils import get_topic
from sqlalchemy import Connection, select, text

from bench.catalogue import echo_chain
from flowledger.commands.runs import ParentStep, RequestRun, request_run
from flowledger.domain.runs import Run
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.reader import LogReader
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.executor import service
from flowledger.executor.active_runs import ActiveRunsProjection, active_runs_table, parent_in
from flowledger.executor.service import RunFeed
from flowledger.projections.projector import Projector
from flowledger.runtime.process import Runtime

pytestmark = pytest.mark.integration
META = EventMetadata.system("tester")


class Heard:
    """Stands in for the executor's event loop: what the feed would hand it."""

    def __init__(self) -> None:
        self.news: list[tuple[UUID, str]] = []
        self.requests: dict[UUID, Any] = {}
        self.sweeps = 0

    def sweep_threadsafe(self) -> None:
        self.sweeps += 1

    def notify_threadsafe(self, run_id: UUID, name: str, request: Any = None) -> None:
        self.news.append((run_id, name))
        if request is not None:
            self.requests[run_id] = request


def active_runs(runtime: Runtime) -> set[UUID]:
    with runtime.engine.connect() as conn:
        return set(conn.execute(select(active_runs_table.c.run_id)).scalars())


def saved(projector: Projector) -> int:
    return projector.position() or 0


def test_the_feed_applies_the_active_runs_hears_new_runs_and_saves_positions_lazily(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = runtime.store
    workflow_id = echo_chain(store, "feed", 2)
    command = RequestRun(workflow_id=workflow_id, input_data={"text": "x"})
    earlier = request_run(store, command, META).aggregate.id
    heard = Heard()
    projector = Projector(ActiveRunsProjection(), store, runtime.engine)
    feed = RunFeed(heard, projector, watch_from=store.head())  # type: ignore[arg-type]
    follower = Follower(store, feed)
    later = request_run(store, command, META).aggregate.id

    follower.catch_up()
    assert active_runs(runtime) == {earlier, later}
    assert heard.news == [(later, "RunRequested")], "only what came after the executor started"
    # The earlier run is in the active runs now: the feed asks for a sweep to find it, once.
    assert heard.sweeps == 1
    request = heard.requests[later]  # its driver starts from it, without reading the run
    assert isinstance(request, Run.Requested) and request.originator_id == later

    # A run cancelled in the same batch as its request: its driver must read it.
    gone = request_run(store, command, META).aggregate
    gone.cancel("at once")
    store.record(gone, metadata=META)
    follower.catch_up()
    assert (gone.id, "RunRequested") in heard.news and gone.id not in heard.requests
    assert saved(projector) == store.head()

    # A run's start and its first step's start change nothing in the table: not even decoded,
    # and the position stays in memory (however slow this machine is).
    monkeypatch.setattr(service, "SAVE_EVERY_S", 3600.0)
    run = store.get(Run, later)
    run.start()
    run.advance(run.created_on)
    [step_id] = run.ready_calls()
    run.start_step(step_id, {"text": "x"})
    store.record(run, metadata=META)
    assert not any(projector.wants(topic) for topic in _topics_after(store, saved(projector)))
    before = saved(projector)
    follower.catch_up()
    feed.idle()
    assert saved(projector) == before < store.head()

    monkeypatch.setattr(service, "SAVE_EVERY_S", 0.0)  # a while has passed
    feed.idle()
    assert saved(projector) == store.head()

    # A run's end changes the table: applied and saved at once.
    monkeypatch.setattr(service, "SAVE_EVERY_S", 3600.0)
    ended = store.get(Run, earlier)
    ended.start()
    ended.fail("test over")
    store.record(ended, metadata=META)
    follower.catch_up()
    assert active_runs(runtime) == {later}
    assert saved(projector) == store.head()
    assert (earlier, "RunFailed") in heard.news
    assert heard.sweeps == 1, "asked for once, when the feed first reached where it started"


def _topics_after(store: EventStore, position: int) -> list[str]:
    return [n.topic for n in LogReader(store).read(position, 100)]


def test_the_active_runs_follow_a_run_through_waits_pauses_and_its_child_run(
    runtime: Runtime,
) -> None:
    """Each event that changes the table, one at a time: a parent parked until a child run
    ends is to drive again (and the executor told) when the child ends, not before."""
    woken: list[UUID] = []
    projection = ActiveRunsProjection(woken.append)
    parent, child = uuid4(), uuid4()
    now = datetime.now(UTC)
    later = now + timedelta(hours=1)
    positions = itertools.count(1)
    versions: dict[UUID, int] = {}

    def happened(conn: Connection, event_class: type, run_id: UUID, **fields: Any) -> None:
        """The run's next event, as the aggregate would have made it, applied."""
        version = versions[run_id] = versions.get(run_id, 0) + 1
        event = event_class(
            originator_id=run_id, originator_version=version, timestamp=now, **fields
        )
        projection.apply(conn, event, next(positions))

    def requested(conn: Connection, run_id: UUID, parent: UUID | None = None) -> None:
        happened(
            conn,
            Run.Requested,
            run_id,
            originator_topic=get_topic(Run),
            workflow_id=uuid4(),
            workflow_name="w",
            workflow_version=1,
            plan={},
            agents={},
            input_data={},
            variables={},
            triggered_by="tester",
            idempotency_key=None,
            limits=None,
            parent_run_id=parent,
            parent_step_id="step" if parent else None,
            depth=1 if parent else 0,
        )

    def when(conn: Connection, run_id: UUID) -> str | None:
        """ "due", "never", "later" or None (not in the table)."""
        row = conn.execute(
            text(
                "SELECT wake_at IS NULL, wake_at = 'infinity', wake_at = :later "
                "FROM executor_active_runs WHERE run_id = :run_id"
            ),
            {"run_id": run_id, "later": later},
        ).first()
        if row is None:
            return None
        return "due" if row[0] else "never" if row[1] else "later" if row[2] else "?"

    with runtime.engine.connect() as conn, conn.begin() as transaction:
        requested(conn, parent)
        happened(conn, Run.Suspended, parent, wake_at=None)  # waits for its child
        requested(conn, child, parent)
        assert (when(conn, parent), when(conn, child)) == ("never", "due")
        happened(conn, Run.Succeeded, child, output=None)
        assert (when(conn, parent), when(conn, child)) == ("due", None)
        assert woken == [parent]
        happened(conn, Run.Paused, parent, reason="x")
        assert when(conn, parent) == "never"
        happened(conn, Run.Resumed, parent, status="RUNNING")
        assert when(conn, parent) == "due"
        happened(conn, Run.Suspended, parent, wake_at=later)
        assert when(conn, parent) == "later"
        happened(conn, Run.Failed, parent, error="x", step_id=None)
        assert when(conn, parent) is None
        assert woken == [parent], "a run with no parent wakes nobody"
        transaction.rollback()


def test_a_retried_child_run_wakes_its_parent_when_it_ends(runtime: Runtime) -> None:
    """A child run's ``Run.Retried`` does not name its parent; the active runs find it in the
    child's request, so the parent (parked until the child ends) is driven when it does."""
    store = runtime.store
    workflow_id = echo_chain(store, "retried-child", 1)
    command = RequestRun(workflow_id=workflow_id, input_data={"text": "x"})
    parent = request_run(store, command, META).aggregate
    child_command = RequestRun(
        workflow_id=workflow_id,
        input_data={"text": "x"},
        parent=ParentStep(run_id=parent.id, step_id="sub", depth=1),
    )
    child = request_run(store, child_command, META).aggregate
    woken: list[UUID] = []
    projector = Projector(
        ActiveRunsProjection(woken.append, parent_of=parent_in(store)), store, runtime.engine
    )
    follower = Follower(store, projector)

    def change(run_id: UUID, *actions: Any) -> None:
        run = store.get(Run, run_id)
        for action in actions:
            action(run)
        store.record(run, metadata=META)
        follower.catch_up()

    follower.catch_up()  # both requested: the parent's row, and the child's naming it
    change(child.id, Run.start, lambda run: run.fail("the first try failed"))
    assert woken == [parent.id]
    change(child.id, Run.retry)
    with runtime.engine.connect() as conn:
        row = conn.execute(
            select(active_runs_table.c.parent_run_id).where(active_runs_table.c.run_id == child.id)
        ).scalar_one()
    assert row == parent.id
    change(child.id, Run.start, lambda run: run.fail("and the second"))
    assert woken == [parent.id, parent.id], "the retried child's end wakes its parent too"
