"""The run projections write a batch's rows in a few statements (the runs projection folds a
batch's events into rows read once and copies them back, each run's row written once; log
lines inserted at once): whatever the batch size, the read tables are those of applying one
event at a time."""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Table, select, text

from flowledger.domain.errors import DomainError
from flowledger.domain.plans import StepPlan, WorkflowPlan
from flowledger.domain.runs import Run
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.reader import LogReader
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.projections.audit import AuditLogProjection
from flowledger.projections.projector import Projector
from flowledger.projections.run_logs import RunLogsProjection
from flowledger.projections.runs import RunsProjection
from flowledger.projections.tables import (
    ANALYTICS_TABLES,
    audit_log,
    run_counts,
    run_logs,
    run_step_attempts,
    run_steps,
    runs,
)
from flowledger.runtime.process import Runtime
from tests.support.runs import requested

pytestmark = pytest.mark.integration
META = EventMetadata.system(actor="prop")
TABLES: tuple[Table, ...] = (
    runs,
    run_steps,
    run_step_attempts,
    run_counts,
    run_logs,
    audit_log,
    *ANALYTICS_TABLES,
)
ACTIONS = [
    "start",
    "step",
    "assign",
    "succeed",
    "retry_later",
    "fail",
    "interrupt",
    "finish",
    "cancel",
    "retry",
]


def reset(conn: Connection) -> None:
    conn.execute(text("TRUNCATE flowledger_events, " + ", ".join(t.name for t in TABLES)))
    for name in ("runs", "run_logs", "audit_log"):
        conn.execute(text(f"DELETE FROM {name}_tracking WHERE application_name <> '__migration__'"))


def act(run: Run, action: str) -> None:
    """One thing the executor or a user may do to a run (it may refuse: DomainError)."""
    if action == "start":
        run.start()
    elif action == "step":
        run.start_step(run.ready_steps()[0] if run.ready_steps() else "a", {"x": 1})
    elif action in ("assign", "succeed", "retry_later", "fail", "interrupt"):
        running = run.in_flight()
        if not running:
            raise DomainError("nothing running")
        step = running[0]
        current = run.steps[step].current
        assert current is not None
        if action == "assign":
            run.assign_task(step, current.number, f"task-{current.number}")
        elif action == "succeed":
            run.succeed_step(step, current.number, {"out": current.number})
        elif action == "retry_later":
            run.fail_attempt(step, current.number, "boom", retry_in_ms=10)
        elif action == "fail":
            run.fail_attempt(step, current.number, "boom", retry_in_ms=None)
            run.fail("boom", step)
        else:
            run.interrupt_attempt(step, current.number)
    elif action == "finish":
        run.succeed()
    elif action == "cancel":
        run.cancel("enough")
    else:
        run.retry()


def record_histories(store: EventStore, histories: list[list[str]]) -> None:
    """Runs driven through their actions, interleaved, one append per action."""
    live = [requested() for _ in histories]
    for run in live:
        store.record(run, metadata=META)
    for turn in range(max((len(h) for h in histories), default=0)):
        for run, history in zip(live, histories, strict=True):
            if turn >= len(history):
                continue
            with contextlib.suppress(DomainError):  # refused; what it did before is recorded
                act(run, history[turn])
            store.record(run, metadata=META)


def project(runtime: Runtime, batch_size: int) -> dict[str, list[dict[str, Any]]]:
    for projection in (RunsProjection(), RunLogsProjection(), AuditLogProjection()):
        Follower(
            runtime.store,
            Projector(projection, runtime.store, runtime.engine),
            batch_size=batch_size,
        ).catch_up()
    tables = {}
    with runtime.engine.connect() as conn:
        for table in TABLES:
            rows = [dict(r) for r in conn.execute(select(table)).mappings()]
            tables[table.name] = sorted(rows, key=repr)
    return tables


def counted(tables: dict[str, list[dict[str, Any]]]) -> dict[tuple[Any, str], int]:
    """What ``run_counts`` says (statuses no run is in left out)."""
    return {(r["workflow_id"], r["status"]): r["runs"] for r in tables["run_counts"] if r["runs"]}


def by_status(tables: dict[str, list[dict[str, Any]]]) -> dict[tuple[Any, str], int]:
    """The runs in each workflow and status, counted from the runs table itself."""
    counts: dict[tuple[Any, str], int] = {}
    for row in tables["runs"]:
        key = (row["workflow_id"], row["status"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def summed_by_agent(
    rows: list[dict[str, Any]], key: str, counts: tuple[str, ...]
) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """Rows of a step table summed over workflows and steps, by span, bucket, agent and ``key``."""
    sums: dict[tuple[Any, ...], list[int]] = {}
    for row in rows:
        found = sums.setdefault(
            (row["span"], row["bucket_start"], row["agent_name"], row[key]), [0] * len(counts)
        )
        for i, name in enumerate(counts):
            found[i] += row[name]
    return {k: tuple(v) for k, v in sums.items()}


def assert_agent_rollups_sum_the_steps(tables: dict[str, list[dict[str, Any]]]) -> None:
    for steps, agents, key, counts in (
        (
            "analytics_steps",
            "analytics_agent_steps",
            "status",
            ("steps", "attempts", "retries", "failed_attempts"),
        ),
        (
            "analytics_step_durations",
            "analytics_agent_step_durations",
            "duration_bucket",
            ("steps",),
        ),
    ):
        assert summed_by_agent(tables[agents], key, counts) == summed_by_agent(
            tables[steps], key, counts
        ), agents
        assert all(row["steps"] for row in tables[agents]), "no row of zeros is kept"


def forget(runtime: Runtime) -> None:
    for projection in (RunsProjection(), RunLogsProjection(), AuditLogProjection()):
        Projector(projection, runtime.store, runtime.engine).reset()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    histories=st.lists(st.lists(st.sampled_from(ACTIONS), max_size=14), min_size=1, max_size=4),
    batch_size=st.integers(2, 40),
)
def test_batched_run_projections_equal_applying_one_event_at_a_time(
    runtime: Runtime, histories: list[list[str]], batch_size: int
) -> None:
    with runtime.engine.begin() as conn:
        reset(conn)
    runtime.store.forget_cached()  # the events it had cached are gone
    record_histories(runtime.store, histories)

    one_at_a_time = project(runtime, batch_size=1)
    assert one_at_a_time["runs"], "every history requests its run"
    assert counted(one_at_a_time) == by_status(one_at_a_time)
    assert_agent_rollups_sum_the_steps(one_at_a_time)
    forget(runtime)
    assert project(runtime, batch_size=batch_size) == one_at_a_time
    forget(runtime)
    assert project(runtime, batch_size=500) == one_at_a_time


RUN_TABLES: tuple[Table, ...] = (runs, run_steps, run_step_attempts, run_counts)


def runs_tables(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    with runtime.engine.connect() as conn:
        return {
            t.name: sorted((dict(r) for r in conn.execute(select(t)).mappings()), key=repr)
            for t in RUN_TABLES
        }


def runs_one_at_a_time(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    """The run tables projected again from zero, one event per batch."""
    Projector(RunsProjection(), runtime.store, runtime.engine).reset()
    follow(runtime, Projector(RunsProjection(), runtime.store, runtime.engine))
    return runs_tables(runtime)


def follow(runtime: Runtime, projector: Projector, batch_size: int = 500) -> None:
    Follower(runtime.store, projector, batch_size=batch_size).catch_up()


def drive(store: EventStore, run: Run, *actions: str) -> None:
    for action in actions:
        act(run, action)
        store.record(run, metadata=META)


@pytest.fixture
def fresh(runtime: Runtime) -> Runtime:
    with runtime.engine.begin() as conn:
        reset(conn)
    runtime.store.forget_cached()
    return runtime


def test_carried_rows_are_read_again_when_another_copy_applied_the_batch_between(
    fresh: Runtime,
) -> None:
    """The runs projection keeps a run's rows from one batch to the next; when another copy of
    the projection applied events in between, they are not what the tables hold any more."""
    run = requested()
    fresh.store.record(run, metadata=META)
    drive(fresh.store, run, "start")
    first = Projector(RunsProjection(), fresh.store, fresh.engine)
    follow(fresh, first)  # holds the run's rows after its batch
    drive(fresh.store, run, "step")
    follow(fresh, Projector(RunsProjection(), fresh.store, fresh.engine))  # another copy
    drive(fresh.store, run, "assign", "succeed")
    follow(fresh, first)

    tables = runs_tables(fresh)
    assert [s["status"] for s in tables["run_steps"] if s["attempts"]] == ["SUCCEEDED"]
    assert tables == runs_one_at_a_time(fresh)


def test_carried_rows_of_a_batch_rolled_back_are_not_used(fresh: Runtime) -> None:
    """A batch changes the carried rows in place; when its transaction does not commit, the
    next batch (the same events again) reads the rows from the tables."""
    run = requested()
    fresh.store.record(run, metadata=META)
    drive(fresh.store, run, "start")
    projector = Projector(RunsProjection(), fresh.store, fresh.engine)
    follow(fresh, projector)
    drive(fresh.store, run, "step", "assign")
    batch = LogReader(fresh.store).read(projector.known, 500)
    with fresh.engine.connect() as conn:
        transaction = conn.begin()
        projector.apply_batch(conn, batch)
        transaction.rollback()
    follow(fresh, projector)  # the same events, committed this time

    tables = runs_tables(fresh)
    assert [a["task_id"] for a in tables["run_step_attempts"]] == ["task-1"]
    assert tables == runs_one_at_a_time(fresh)


def test_a_batch_finds_the_rows_of_its_runs_by_index_not_by_reading_the_tables_whole(
    fresh: Runtime,
) -> None:
    """A batch of events of runs already projected reads and deletes their rows, and the
    analytics join them to their steps and attempts: every one of those statements goes by
    index. Tables filled faster than autovacuum analyzes them have no statistics, and the
    planner read them whole for every batch (a cost that grew with the tables)."""
    store = fresh.store
    live = [requested() for _ in range(40)]
    for run in live:
        drive(store, run, "start", "step", "assign")
    projector = Projector(RunsProjection(), store, fresh.engine)
    follow(fresh, projector)
    after = projector.position() or 0
    for run in live[:10]:
        drive(store, run, "succeed", "step")
    drive(store, live[10], "cancel")  # run-wide: reads every step and attempt of its run
    batch = LogReader(store).read(after, 500)
    scanned = (run_steps.name, run_step_attempts.name, runs.name)

    def reads_whole(conn: Connection) -> dict[str, int]:
        """The backend's count of sequential scans of the tables, those not yet reported
        (this transaction's, and maybe an earlier one's)."""
        return dict(
            conn.execute(
                text(
                    "SELECT relname, seq_scan FROM pg_stat_xact_user_tables "
                    "WHERE relname = ANY(:names)"
                ),
                {"names": list(scanned)},
            ).all()
        )

    with projector.transaction() as conn:
        before = reads_whole(conn)
        projector.known = after
        projector.apply_batch(conn, batch)
        whole = {name: count - before.get(name, 0) for name, count in reads_whole(conn).items()}
        (steps_read,) = conn.execute(
            text("SELECT count(*) FROM run_steps WHERE run_id = ANY(:ids)"),
            {"ids": [run.id for run in live[:11]]},
        ).one()

    assert whole == dict.fromkeys(scanned, 0)
    assert steps_read == 11 * 4  # (and the batch was applied: the runs' steps are all there)
    assert projector.position() == batch[-1].id


def test_runs_of_one_workflow_version_get_step_rows_of_their_own(fresh: Runtime) -> None:
    """The step rows a plan makes are made once per workflow version and copied for each run:
    a run's steps change alone, and a run that carries another plan under the same version
    gets that plan's steps."""
    workflow_id = uuid4()
    first, second = (requested(workflow_id=workflow_id) for _ in range(2))
    other = requested(WorkflowPlan(steps=(StepPlan("only", "echo"),)), workflow_id=workflow_id)
    for run in (first, second, other):
        fresh.store.record(run, metadata=META)
    drive(fresh.store, first, "start", "step")
    follow(fresh, Projector(RunsProjection(), fresh.store, fresh.engine), batch_size=500)

    with fresh.engine.connect() as conn:
        steps = conn.execute(
            select(run_steps.c.run_id, run_steps.c.step_id, run_steps.c.status)
        ).all()
    by_run: dict[Any, dict[str, str]] = {}
    for run_id, step_id, status in steps:
        by_run.setdefault(run_id, {})[step_id] = status
    assert by_run[first.id] == {"a": "RUNNING", "b": "PENDING", "c": "PENDING", "d": "PENDING"}
    assert by_run[second.id] == dict.fromkeys("abcd", "PENDING")
    assert by_run[other.id] == {"only": "PENDING"}
