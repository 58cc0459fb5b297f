"""Rebuilding projections: fresh tables replayed from zero and swapped in atomically while the
live projector keeps applying new events and clients keep querying."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from flowledger.cli.projections import REPLAY_SHARE, groups_for
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.lag import REBUILD_KEY
from flowledger.eventlog.store import APPLICATION_NAME
from flowledger.projections.agents import AgentsProjection
from flowledger.projections.audit import AuditLogProjection
from flowledger.projections.projector import Projector
from flowledger.projections.rebuild import (
    Rebuild,
    RebuildError,
    RebuildProgress,
    rebuild_projection,
)
from flowledger.projections.registry import all_projections, projection_host
from flowledger.projections.tables import metadata
from flowledger.runtime.process import Runtime
from tests.integration.test_projection_host import tables
from tests.integration.test_projections import (
    audit_positions,
    folded_agents,
    project,
    run_commands,
    table_agents,
)
from tests.support import control_histories
from tests.support.control_histories import record_control_histories
from tests.support.http import ApiClient
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


def public_positions(runtime: Runtime) -> list[int]:
    return [
        n.id
        for n in runtime.store.read(None, 1_000_000)
        if not n.topic.startswith("flowledger.domain.names:")
    ]


def schema_shape(runtime: Runtime) -> dict[str, Any]:
    with runtime.engine.connect() as conn:
        indexes = conn.execute(
            text(
                "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = "
                "'public' AND tablename IN ('agents', 'audit_log') ORDER BY 1, 2"
            )
        ).all()
        constraints = conn.execute(
            text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE conrelid IN ('agents'::regclass, "
                "'audit_log'::regclass) ORDER BY 1, 2"
            )
        ).all()
        schemas = conn.execute(
            text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'flowledger_rebuild_%'")
        ).all()
        differences = compare_metadata(
            MigrationContext.configure(
                conn, opts={"include_name": lambda name, *_: name != "flowledger_events"}
            ),
            metadata,
        )
    return {
        "indexes": indexes,
        "constraints": constraints,
        "leftover_schemas": schemas,
        "differences": differences,
    }


def tracking_keys(runtime: Runtime, table: str) -> set[str]:
    with runtime.engine.connect() as conn:
        return set(conn.execute(text(f"SELECT application_name FROM {table}")).scalars())


def some_history(count: int) -> list[tuple[Any, ...]]:
    commands: list[tuple[Any, ...]] = [("register", f"agent-{i}") for i in range(count)]
    commands += [("update", i, {"timeout_ms": 1000 + i, "description": "x"}) for i in range(count)]
    commands += [("deactivate", i) for i in range(0, count, 4)]
    return commands


def test_a_rebuild_gives_the_same_tables_with_the_same_indexes_and_constraints(
    runtime: Runtime,
) -> None:
    run_commands(runtime.store, some_history(30))
    project(runtime)
    before = schema_shape(runtime)
    expected_agents = table_agents(runtime)
    assert expected_agents == folded_agents(runtime.store)
    seen: list[RebuildProgress] = []

    for projection in (AgentsProjection(), AuditLogProjection()):
        result = rebuild_projection(
            runtime.engine, runtime.store, projection, batch_size=7, on_progress=seen.append
        )
        assert result.position == runtime.store.head()

    assert table_agents(runtime) == expected_agents
    assert audit_positions(runtime) == public_positions(runtime)
    assert schema_shape(runtime) == before
    assert before["differences"] == []
    assert tracking_keys(runtime, "agents_tracking") == {"__migration__", APPLICATION_NAME}
    assert seen[-1].phase == "done"
    assert seen[-1].position == seen[-1].head == runtime.store.head()
    assert [p.events for p in seen if p.projection == "agents"] == sorted(
        p.events for p in seen if p.projection == "agents"
    )


def test_a_rebuild_that_dies_leaves_the_live_tables_alone_and_the_next_one_succeeds(
    runtime: Runtime,
) -> None:
    run_commands(runtime.store, some_history(20))
    project(runtime)
    expected = table_agents(runtime)

    def die(progress: RebuildProgress) -> None:
        if progress.events >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rebuild_projection(
            runtime.engine, runtime.store, AgentsProjection(), batch_size=5, on_progress=die
        )
    assert table_agents(runtime) == expected
    assert REBUILD_KEY in tracking_keys(runtime, "agents_tracking")

    rebuild_projection(runtime.engine, runtime.store, AgentsProjection(), batch_size=5)
    assert table_agents(runtime) == expected
    assert schema_shape(runtime)["leftover_schemas"] == []
    assert REBUILD_KEY not in tracking_keys(runtime, "agents_tracking")


def test_only_one_rebuild_of_a_projection_runs_at_a_time(runtime: Runtime) -> None:
    with runtime.engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(x'466C6F77'::int, hashtext('rebuild:agents'))"))
        with pytest.raises(RebuildError, match="already running"):
            rebuild_projection(runtime.engine, runtime.store, AgentsProjection())


def test_a_rebuild_longer_than_the_idle_session_timeout_keeps_its_lock_and_finishes(
    runtime: Runtime,
) -> None:
    """Our sessions are closed by the server after ``FLOWLEDGER_DB_IDLE_TIMEOUT`` idle; the
    rebuild's lock session idles for the whole replay (a million events took two minutes), so
    it must not be closed: the lock would be gone and the rebuild would fail at its end."""
    run_commands(runtime.store, some_history(10))
    engine = runtime.database.create_engine(2, idle_timeout_s=0.3)
    held_during_replay: list[bool] = []

    lock = "x'466C6F77'::int, hashtext('rebuild:agents')"

    def slow_progress(progress: RebuildProgress) -> None:
        if progress.phase == "replay" and not held_during_replay:
            time.sleep(1.0)  # the lock session idles three times its timeout
            with runtime.engine.connect() as other:
                got = other.execute(text(f"SELECT pg_try_advisory_lock({lock})")).scalar_one()
                held_during_replay.append(not got)
                if got:
                    other.execute(text(f"SELECT pg_advisory_unlock({lock})"))

    try:
        result = rebuild_projection(
            engine, runtime.store, AgentsProjection(), batch_size=5, on_progress=slow_progress
        )
    finally:
        engine.dispose()
    assert held_during_replay == [True]
    assert result.position == runtime.store.head()
    assert table_agents(runtime) == folded_agents(runtime.store)


class _Signal(logging.Handler):
    def __init__(self, needle: str) -> None:
        super().__init__()
        self.needle = needle
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.seen.set()


def test_a_swap_that_waits_too_long_for_a_long_query_gives_up_and_tries_again(
    runtime: Runtime,
) -> None:
    run_commands(runtime.store, some_history(10))
    project(runtime)
    expected = table_agents(runtime)
    signal = _Signal("waited too long for a lock")
    logging.getLogger("flowledger.projections.rebuild").addHandler(signal)
    long_query = runtime.engine.connect()
    long_query.execute(text("SELECT count(*) FROM agents"))  # holds its lock until it ends

    def finish_the_long_query() -> None:
        signal.seen.wait(30)
        long_query.rollback()

    finisher = threading.Thread(target=finish_the_long_query)
    finisher.start()
    try:
        result = Rebuild(
            runtime.engine,
            runtime.store,
            AgentsProjection(),
            lock_timeout_s=0.2,
            swap_attempts=20,
        ).run()
    finally:
        finisher.join()
        long_query.close()
        logging.getLogger("flowledger.projections.rebuild").removeHandler(signal)
    assert result.swap_attempts >= 2
    assert table_agents(runtime) == expected


def test_rebuilding_all_projections_while_clients_query_and_write_never_shows_an_error_or_an_empty_page(  # noqa: E501
    runtime: Runtime, api: ApiClient
) -> None:
    run_commands(runtime.store, some_history(120))
    head = runtime.store.head()
    eventually(
        lambda: live_positions(runtime),
        lambda positions: all(p >= head for p in positions),
        what=f"the live projections to reach {head}",
        timeout_s=60,
    )
    known = api.get("/api/v1/agents", params={"page_size": 1}).json()["items"][0]
    before = schema_shape(runtime)

    stop = threading.Event()
    problems: list[str] = []
    answered = [0]

    def query() -> None:
        while not stop.is_set():
            page = api.get("/api/v1/agents", params={"page_size": 50, "status": "all"})
            one = api.get(f"/api/v1/agents/{known['id']}")
            audit_count = count_audit_rows(runtime)
            answered[0] += 1
            if page.status_code != 200 or not page.json()["items"]:
                problems.append(f"list answered {page.status_code}: {page.text[:200]}")
            elif page.json()["total"] < 120:
                problems.append(f"list total {page.json()['total']} < 120")
            if one.status_code != 200 or one.json()["name"] != known["name"]:
                problems.append(f"get answered {one.status_code}: {one.text[:200]}")
            if audit_count < head // 2:
                problems.append(f"audit log had {audit_count} rows")

    def write() -> None:
        number = 0
        while not stop.is_set():
            run_commands(runtime.store, [("register", f"late-{number}")])
            number += 1

    threads = [threading.Thread(target=query), threading.Thread(target=write)]
    for thread in threads:
        thread.start()
    try:
        for projection in (AgentsProjection(), AuditLogProjection()):
            rebuild_projection(runtime.engine, runtime.store, projection, batch_size=50)
        answered_during_rebuild = answered[0]
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert problems == []
    assert answered_during_rebuild > 3
    final = runtime.store.head()
    eventually(
        lambda: live_positions(runtime),
        lambda positions: all(p >= final for p in positions),
        what=f"the live projections to reach {final}",
        timeout_s=60,
    )
    assert table_agents(runtime) == folded_agents(runtime.store)
    assert audit_positions(runtime) == public_positions(runtime)
    assert schema_shape(runtime) == before


def live_positions(runtime: Runtime) -> list[int]:
    with runtime.engine.connect() as conn:
        return [
            int(
                conn.execute(
                    text(
                        f"SELECT coalesce(max(notification_id), 0) FROM {table} "
                        "WHERE application_name = 'flowledger'"
                    )
                ).scalar_one()
            )
            for table in ("agents_tracking", "audit_log_tracking")
        ]


def count_audit_rows(runtime: Runtime) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one())


def test_the_cli_reports_lag_and_rebuilds_every_projection(runtime: Runtime) -> None:
    run_commands(runtime.store, some_history(10))
    env = {
        **os.environ,
        "DATABASE_URL": runtime.database.libpq_url,
        "FLOWLEDGER_LOG_LEVEL": "WARNING",
    }
    flowledger = [sys.executable, "-m", "flowledger", "projections"]

    status = subprocess.run(
        [*flowledger, "status", "--json"], env=env, capture_output=True, check=True
    )
    report = json.loads(status.stdout)
    head = runtime.store.head()
    assert report["head_position"] == head
    by_name = {f["name"]: f for f in report["followers"]}
    assert by_name["agents"]["position"] == 0
    assert by_name["agents"]["lag_events"] == head
    assert by_name["agents"]["lag_seconds"] > 0
    assert by_name["audit_log"]["kind"] == "projection"

    rebuilt = subprocess.run(
        [*flowledger, "rebuild", "--all", "--no-progress"], env=env, capture_output=True, check=True
    )
    assert b"rebuilt agents" in rebuilt.stdout
    assert b"rebuilt audit_log" in rebuilt.stdout
    assert table_agents(runtime) == folded_agents(runtime.store)
    assert audit_positions(runtime) == public_positions(runtime)

    unknown = subprocess.run(
        [*flowledger, "rebuild", "nope"], env=env, capture_output=True, check=False
    )
    assert unknown.returncode == 2
    assert b"unknown projection" in unknown.stderr

    no_jobs = subprocess.run(
        [*flowledger, "rebuild", "--all", "--jobs", "0"], env=env, capture_output=True, check=False
    )
    assert no_jobs.returncode == 2
    assert b"--jobs: must be a whole number of at least 1" in no_jobs.stderr


def test_the_cli_rebuilds_every_projection_in_several_processes(runtime: Runtime) -> None:
    run_commands(runtime.store, some_history(10))
    record_control_histories(runtime.store, [control_histories.SCRIPT])
    host = projection_host(runtime.store, runtime.engine)
    try:
        Follower(runtime.store, host).catch_up()
    finally:
        host.close()
    before = tables(runtime)
    assert before["runs"], "the history has a run"
    env = {
        **os.environ,
        "DATABASE_URL": runtime.database.libpq_url,
        "FLOWLEDGER_LOG_LEVEL": "WARNING",
    }
    rebuilt = subprocess.run(
        [sys.executable, "-m", "flowledger", "projections", "rebuild", "--all", "--jobs", "3"],
        env=env,
        capture_output=True,
        check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    swapped = {line.split(":")[0] for line in rebuilt.stdout.decode().splitlines()}
    assert swapped == {f"rebuilt {p.name}" for p in all_projections()}
    assert tables(runtime) == before
    with runtime.engine.connect() as conn:
        left = conn.execute(
            text(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'rebuild%'"
            )
        ).scalar_one()
    assert left == 0, "every copy was swapped in and its schema dropped"


def test_stopping_a_rebuild_in_several_processes_stops_them_all(runtime: Runtime) -> None:
    run_commands(runtime.store, some_history(10))
    project(runtime)
    before = (table_agents(runtime), audit_positions(runtime))
    env = {**os.environ, "DATABASE_URL": runtime.database.libpq_url}
    parent = subprocess.Popen(
        [sys.executable, "-m", "flowledger", "projections", "rebuild", "--all", "--jobs", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    children_file = f"/proc/{parent.pid}/task/{parent.pid}/children"

    def children() -> list[int]:
        with open(children_file) as listed:
            return [int(pid) for pid in listed.read().split()]

    started = eventually(
        children, lambda found: len(found) == 2, what="both rebuild processes", timeout_s=30
    )
    parent.send_signal(signal.SIGTERM)
    out, _ = parent.communicate(timeout=30)
    assert parent.returncode == 128 + signal.SIGTERM, parent.returncode
    assert b"rebuilt" not in out
    for pid in started:  # reaped by the parent, not left running
        assert not os.path.exists(f"/proc/{pid}"), f"child {pid} still runs"
    assert (table_agents(runtime), audit_positions(runtime)) == before


def test_jobs_share_the_projections_by_their_work() -> None:
    projections = all_projections()
    for jobs in (1, 2, 3, len(projections), len(projections) + 5):
        groups = groups_for(projections, jobs)
        assert len(groups) == min(jobs, len(projections))
        names = [p.name for group in groups for p in group]
        assert sorted(names) == sorted(p.name for p in projections)  # each once
        assert all(groups)
    with_runs, without = groups_for(projections, 2)
    assert "runs" in {p.name for p in with_runs}  # the two heaviest go apart
    assert "audit_log" in {p.name for p in without}
    loads = [sum(REPLAY_SHARE.get(p.name, 0.1) for p in group) for group in (with_runs, without)]
    assert abs(loads[0] - loads[1]) <= max(REPLAY_SHARE.values())


def test_a_migration_during_the_rebuild_stops_the_swap_and_leaves_the_live_tables_alone(
    runtime: Runtime,
) -> None:
    run_commands(runtime.store, some_history(10))
    project(runtime)
    expected = table_agents(runtime)
    with runtime.engine.connect() as conn:
        [revision] = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()

    def migrate_meanwhile(progress: RebuildProgress) -> None:
        if progress.phase == "replay":
            with runtime.engine.begin() as conn:
                conn.execute(text("UPDATE alembic_version SET version_num = 'newer'"))

    try:
        with pytest.raises(RebuildError, match="migrated during the rebuild"):
            rebuild_projection(
                runtime.engine, runtime.store, AgentsProjection(), on_progress=migrate_meanwhile
            )
    finally:
        with runtime.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    assert table_agents(runtime) == expected


class LiveBatchArrivesDuringTheSwap(Rebuild):
    """Starts a live projector batch right after the swap paused the live projector, and
    carries on once that batch is stuck waiting for a lock (as it must be)."""

    live_errors: list[BaseException]

    def _pause_live_projector(self, conn: Any) -> None:
        super()._pause_live_projector(conn)
        self.live_errors = []
        live = Projector(AgentsProjection(), self.store, self.engine)
        start = live.position()
        batch = self.store.read(start, 100)

        def live_batch() -> None:
            try:
                live.handle(batch)
            except BaseException as error:
                self.live_errors.append(error)

        self.live = threading.Thread(target=live_batch)
        self.live.start()
        ours = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # pg_stat_activity is read once per transaction: each probe is a transaction of its
        # own (autocommit), or a first look before the batch blocks would be all it ever sees.
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as probe:
            eventually(
                lambda: probe.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND pid <> :ours AND datname = current_database()"
                    ),
                    {"ours": ours},
                ).scalar_one(),
                lambda waiting: waiting > 0,
                what="the live batch to wait for the rebuild's lock",
                timeout_s=20,
            )


def test_a_live_batch_that_starts_during_the_swap_waits_for_it_instead_of_deadlocking(
    runtime: Runtime,
) -> None:
    run_commands(runtime.store, some_history(10))
    project(runtime)
    run_commands(runtime.store, [("register", "late")])  # the live projector has work to do
    rebuild = LiveBatchArrivesDuringTheSwap(runtime.engine, runtime.store, AgentsProjection())
    rebuild.run()
    rebuild.live.join()
    assert [type(e).__name__ for e in rebuild.live_errors] in ([], ["PositionMoved"])
    assert table_agents(runtime) == folded_agents(runtime.store)


def test_a_rebuild_of_the_runs_projection_recounts_runs_into_the_fresh_tables(
    runtime: Runtime,
) -> None:
    from flowledger.projections.runs import RunsProjection  # noqa: PLC0415
    from tests.integration.test_run_projection_batches import record_histories  # noqa: PLC0415

    histories = [
        ["start", "step", "succeed", "finish"],
        ["start", "step", "fail", "retry", "start", "step", "succeed", "finish"],
        ["cancel", "retry", "cancel"],
        ["start", "step", "assign"],
        [],
    ]
    record_histories(runtime.store, histories)
    rebuild_projection(runtime.engine, runtime.store, RunsProjection(), batch_size=3)

    def counts(query: str) -> dict[tuple[Any, str], int]:
        with runtime.engine.connect() as conn:
            return {(w, s): n for w, s, n in conn.execute(text(query)).all() if n}

    from_rows = counts("SELECT workflow_id, status, count(*) FROM runs GROUP BY 1, 2")
    assert {"CANCELLED", "PENDING", "RUNNING"} <= {s for _, s in from_rows}
    assert sum(from_rows.values()) == len(histories)
    assert counts("SELECT workflow_id, status, runs FROM run_counts") == from_rows
