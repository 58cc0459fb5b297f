"""The executor against real A2A agents (examples/agents, in their own processes).

Runs are recorded straight through the Run aggregate here (the HTTP path is covered in e2e).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from types import FrameType
from typing import Any

import pytest

from flowledger.commands.agents import RegisterAgent, register_agent
from flowledger.commands.runs import CancelRun, RetryRun, cancel_run, pin_agents, retry_run
from flowledger.domain.plans import StepPlan, WorkflowPlan
from flowledger.domain.runs import Run
from flowledger.eventlog.store import EventMetadata
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from flowledger.runtime.workers import InProcessWorkers
from tests.conftest import TEST_ENVIRONMENT, make_settings
from tests.support.agents import get_stats, reset_stats, running_all
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
META = EventMetadata.system("tester")
FAST_RETRY = {"max_retries": 3, "initial_delay_ms": 100, "max_delay_ms": 1000}


@pytest.fixture(scope="module")
def agent_urls() -> Iterator[dict[str, str]]:
    with running_all() as urls:
        yield urls


@pytest.fixture
def agents(runtime: Runtime, agent_urls: dict[str, str]) -> dict[str, str]:
    """The four sample agents registered (with fast retries), their counters zeroed."""
    for name, url in agent_urls.items():
        reset_stats(url, **({"fail_first": 0} if name == "flaky" else {}))
        register_agent(
            runtime.store, RegisterAgent(name=name, url=url, retry_config=FAST_RETRY), META
        )
    return agent_urls


@pytest.fixture
def executor(runtime: Runtime) -> Iterator[InProcessWorkers]:
    workers = InProcessWorkers(runtime, ("executor",))
    workers.start()
    yield workers
    workers.stop()
    assert workers.failures == []


def request(
    runtime: Runtime, plan: WorkflowPlan, input_data: dict[str, Any] | None = None
) -> uuid.UUID:
    run = Run(
        workflow_id=uuid.uuid4(),
        workflow_name="test",
        workflow_version=1,
        plan=plan.to_dict(),
        agents={n: b.to_dict() for n, b in pin_agents(runtime.store, plan).items()},
        input_data=input_data or {},
        variables=dict(plan.variables),
        triggered_by="tester",
        idempotency_key=None,
    )
    runtime.store.record(run, metadata=META)
    return run.id


def wait_for(
    runtime: Runtime, run_id: uuid.UUID, until: Callable[[Run], bool], timeout: float = 30
) -> Run:
    return eventually(
        lambda: runtime.store.get(Run, run_id),
        until,
        what=f"run {run_id}",
        timeout_s=timeout,
        describe=lambda run: (
            f"{run.status} with steps " + str({s.step_id: s.status for s in run.steps.values()})
        ),
    )


def finished(run: Run) -> bool:
    return run.is_finished


def chain(*steps: StepPlan, **options: Any) -> WorkflowPlan:
    return WorkflowPlan(steps=steps, **options)


def overlap(a: Any, b: Any) -> bool:
    return bool(a.started_at < b.finished_at and b.started_at < a.finished_at)


def test_a_multi_step_run_feeds_each_step_the_mapped_outputs_and_succeeds(
    runtime: Runtime, agents: dict[str, str], executor: InProcessWorkers
) -> None:
    plan = chain(
        StepPlan("greet", "echo", input_mapping={"text": "$.input.text", "who": "$.vars.who"}),
        StepPlan(
            "shout",
            "transform",
            depends_on=("greet",),
            input_mapping={"text": "$.steps.greet.output.text"},
        ),
        variables={"who": "world"},
    )
    run = wait_for(runtime, request(runtime, plan, {"text": "hello there"}), finished)
    assert run.status == "SUCCEEDED", run.error
    assert run.steps["greet"].output == {"text": "hello there", "who": "world"}
    assert run.output == {"text": "HELLO THERE", "length": 11, "word_count": 2}
    assert get_stats(agents["transform"])["last_input"] == {"text": "hello there"}


def test_a_transient_failure_is_retried_and_every_attempt_recorded(
    runtime: Runtime, agents: dict[str, str], executor: InProcessWorkers
) -> None:
    reset_stats(agents["flaky"], fail_first=2)
    run = wait_for(
        runtime, request(runtime, chain(StepPlan("f", "flaky", input_mapping={"x": 1}))), finished
    )
    assert run.status == "SUCCEEDED"
    attempts = run.steps["f"].attempts
    assert [a.outcome for a in attempts] == ["failed", "failed", "succeeded"]
    assert all("simulated failure" in (a.error or "") for a in attempts[:2])
    assert get_stats(agents["flaky"])["calls"] == 3


def test_exhausted_retries_fail_the_run_and_a_retry_resumes_without_calling_earlier_steps(
    runtime: Runtime, agents: dict[str, str], executor: InProcessWorkers
) -> None:
    reset_stats(agents["flaky"], fail_first=100)
    plan = chain(
        StepPlan("prepare", "transform", input_mapping={"text": "$.input.text"}),
        StepPlan(
            "deliver",
            "flaky",
            depends_on=("prepare",),
            input_mapping={"t": "$.steps.prepare.output.text"},
            retry={"max_retries": 1},
        ),
    )
    run_id = request(runtime, plan, {"text": "abc"})
    run = wait_for(runtime, run_id, finished)
    assert run.status == "FAILED"
    assert run.failed_step == "deliver" and "simulated failure" in (run.error or "")
    assert [s.status for s in run.steps.values()] == ["SUCCEEDED", "FAILED"]
    assert get_stats(agents["flaky"])["calls"] == 2, "one attempt and one retry"

    reset_stats(agents["flaky"], fail_first=0)
    retry_run(runtime.store, RetryRun(run_id=run_id), META)
    run = wait_for(runtime, run_id, finished)
    assert run.status == "SUCCEEDED"
    assert run.output == {"t": "ABC"}
    assert get_stats(agents["transform"])["calls"] == 1, (
        "the step that succeeded is not called again"
    )
    assert len(run.steps["deliver"].attempts) == 3


def test_cancelling_during_a_slow_step_cancels_the_agents_task(
    runtime: Runtime, agents: dict[str, str], executor: InProcessWorkers
) -> None:
    plan = chain(
        StepPlan("wait", "slow", input_mapping={"delay_s": 30}),
        StepPlan("never", "echo", depends_on=("wait",)),
    )
    run_id = request(runtime, plan)
    wait_for(
        runtime,
        run_id,
        lambda r: (
            r.steps["wait"].current is not None and r.steps["wait"].current.task_id is not None
        ),
    )
    cancel_run(runtime.store, CancelRun(run_id=run_id), META)
    run = runtime.store.get(Run, run_id)
    assert run.status == "CANCELLED"
    assert {s: run.steps[s].status for s in ("wait", "never")} == {
        "wait": "CANCELLED",
        "never": "SKIPPED",
    }
    eventually(
        lambda: get_stats(agents["slow"]),
        lambda stats: stats["canceled"] >= 1,
        what="the agent's task to be cancelled",
        timeout_s=10,
    )
    assert get_stats(agents["echo"])["calls"] == 0


def test_parallel_branches_really_overlap_in_time(
    runtime: Runtime, agents: dict[str, str], executor: InProcessWorkers
) -> None:
    plan = chain(
        StepPlan("start", "echo"),
        StepPlan("left", "slow", depends_on=("start",), input_mapping={"delay_s": 1}),
        StepPlan("right", "slow", depends_on=("start",), input_mapping={"delay_s": 1}),
        StepPlan(
            "join",
            "echo",
            depends_on=("left", "right"),
            input_mapping={"l": "$.steps.left.output", "r": "$.steps.right.output"},
        ),
    )
    run = wait_for(runtime, request(runtime, plan), finished)
    assert run.status == "SUCCEEDED"
    left, right = run.steps["left"].attempts[0], run.steps["right"].attempts[0]
    assert overlap(left, right)
    join = run.steps["join"].attempts[0]
    assert join.started_at >= max(left.finished_at, right.finished_at)  # type: ignore[type-var]


def test_max_parallel_steps_of_one_runs_branches_one_after_the_other(
    runtime: Runtime, agents: dict[str, str], executor: InProcessWorkers
) -> None:
    plan = chain(
        StepPlan("left", "slow", input_mapping={"delay_s": 0.3}),
        StepPlan("right", "slow", input_mapping={"delay_s": 0.3}),
        max_parallel_steps=1,
    )
    run = wait_for(runtime, request(runtime, plan), finished)
    assert run.status == "SUCCEEDED"
    assert not overlap(run.steps["left"].attempts[0], run.steps["right"].attempts[0])


def test_a_step_timeout_is_a_failed_attempt_that_is_retried(
    runtime: Runtime, agents: dict[str, str], executor: InProcessWorkers
) -> None:
    plan = chain(
        StepPlan(
            "s", "slow", input_mapping={"delay_s": 5}, timeout_ms=1000, retry={"max_retries": 1}
        )
    )
    run = wait_for(runtime, request(runtime, plan), finished)
    assert run.status == "FAILED"
    assert [a.outcome for a in run.steps["s"].attempts] == ["failed", "failed"]
    assert "1 s" in (run.steps["s"].attempts[0].error or "") or "timed out" in (
        run.steps["s"].attempts[0].error or ""
    )


def test_the_workflow_timeout_fails_the_run_and_cancels_the_call(
    runtime: Runtime, agents: dict[str, str], executor: InProcessWorkers
) -> None:
    plan = chain(StepPlan("s", "slow", input_mapping={"delay_s": 30}), timeout_ms=1000)
    run = wait_for(runtime, request(runtime, plan), finished)
    assert run.status == "FAILED"
    assert "timed out" in (run.error or "")
    assert run.steps["s"].status == "CANCELLED"


def test_an_input_mapping_that_finds_nothing_fails_the_step_without_calling_the_agent(
    runtime: Runtime, agents: dict[str, str], executor: InProcessWorkers
) -> None:
    plan = chain(StepPlan("s", "echo", input_mapping={"x": "$.input.missing"}))
    run = wait_for(runtime, request(runtime, plan, {"present": 1}), finished)
    assert run.status == "FAILED"
    assert "input mapping failed" in (run.error or "")
    assert get_stats(agents["echo"])["calls"] == 0


def start_executor_process(runtime: Runtime) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": runtime.database.libpq_url,
        "FLOWLEDGER_LOG_LEVEL": "WARNING",
        "FLOWLEDGER_EXECUTOR_SWEEP_INTERVAL": "0.5",
        "FLOWLEDGER_FOLLOWER_IDLE_WAIT": "0.1",
    }
    return subprocess.Popen([sys.executable, "-m", "flowledger", "worker", "executor"], env=env)


def test_kill_9_of_the_executor_mid_run_then_a_restart_resumes_without_repeating_steps(
    runtime: Runtime, agents: dict[str, str]
) -> None:
    plan = chain(
        StepPlan("before", "transform", input_mapping={"text": "$.input.text"}),
        StepPlan(
            "slow",
            "slow",
            depends_on=("before",),
            input_mapping={"delay_s": 2, "t": "$.steps.before.output.text"},
        ),
        StepPlan(
            "after", "echo", depends_on=("slow",), input_mapping={"t": "$.steps.slow.output.t"}
        ),
    )
    run_id = request(runtime, plan, {"text": "resume me"})
    first = start_executor_process(runtime)
    try:
        wait_for(runtime, run_id, lambda r: r.steps["slow"].in_flight is not None)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    second = start_executor_process(runtime)
    try:
        run = wait_for(runtime, run_id, finished)
    finally:
        second.terminate()
        second.wait(timeout=20)
    assert run.status == "SUCCEEDED"
    assert run.output == {"t": "RESUME ME"}
    assert get_stats(agents["transform"])["calls"] == 1, "the succeeded step was not called again"
    assert [a.outcome for a in run.steps["slow"].attempts] == ["interrupted", "succeeded"]
    assert get_stats(agents["echo"])["calls"] == 1


def test_two_executors_share_the_runs_and_never_drive_one_twice(
    runtime: Runtime, agents: dict[str, str]
) -> None:
    plan = chain(
        StepPlan("a", "echo", input_mapping={"n": "$.input.n"}),
        StepPlan("b", "transform", depends_on=("a",), input_mapping={"text": "b"}),
    )
    first, second = (
        InProcessWorkers(runtime, ("executor",)),
        InProcessWorkers(runtime, ("executor",)),
    )
    first.start()
    second.start()
    try:
        run_ids = [request(runtime, plan, {"n": n}) for n in range(12)]
        runs = [wait_for(runtime, run_id, finished) for run_id in run_ids]
    finally:
        first.stop()
        second.stop()
    assert {run.status for run in runs} == {"SUCCEEDED"}
    assert all(len(s.attempts) == 1 for run in runs for s in run.steps.values())
    assert get_stats(agents["echo"])["calls"] == 12
    assert get_stats(agents["transform"])["calls"] == 12


def test_attempt_times_are_in_order(
    runtime: Runtime, agents: dict[str, str], executor: InProcessWorkers
) -> None:
    run = wait_for(
        runtime,
        request(runtime, chain(StepPlan("a", "echo"), StepPlan("b", "echo", depends_on=("a",)))),
        finished,
    )
    a, b = run.steps["a"].attempts[0], run.steps["b"].attempts[0]
    times: list[datetime] = [a.started_at, a.finished_at, b.started_at, b.finished_at]  # type: ignore[list-item]
    assert times == sorted(times)


def executor_with(runtime: Runtime, **extra: str) -> InProcessWorkers:
    """An executor (not started) on the runtime's database, with these settings."""
    settings = make_settings(runtime.database, extra={**TEST_ENVIRONMENT, **extra})
    return InProcessWorkers(
        Runtime.open(settings, database=runtime.database, migrate=False), ("executor",)
    )


def test_runs_beyond_max_runs_take_the_places_of_ended_ones_not_waiting_for_the_sweep(
    runtime: Runtime, agents: dict[str, str]
) -> None:
    """Four slow runs at once on an executor that drives two: the other two are queued and
    each starts when a driven run ends. Before, they were dropped until the next sweep (60 s
    here, 2 s by default), the executor idle meanwhile."""
    workers = executor_with(
        runtime, FLOWLEDGER_EXECUTOR_MAX_RUNS="2", FLOWLEDGER_EXECUTOR_SWEEP_INTERVAL="60"
    )
    workers.start()
    try:
        plan = chain(StepPlan("s", "slow", input_mapping={"delay_s": 0.3}))
        run_ids = [request(runtime, plan) for _ in range(4)]
        runs = [wait_for(runtime, run_id, finished, timeout=20) for run_id in run_ids]
    finally:
        workers.stop()
        workers.runtime.close_sync()
    assert workers.failures == []
    assert {run.status for run in runs} == {"SUCCEEDED"}
    calls = [run.steps["s"].attempts[0] for run in runs]
    most_at_once = max(sum(overlap(call, other) for other in calls) for call in calls)
    assert most_at_once <= 2, "more runs were driven at once than FLOWLEDGER_EXECUTOR_MAX_RUNS"


def test_a_run_cancelled_while_queued_is_not_called(
    runtime: Runtime, agents: dict[str, str]
) -> None:
    """A queued run is read back when its turn comes: what was heard of it may be stale (here
    it was cancelled meanwhile), and a driver started from it would call the agent once."""
    workers = executor_with(
        runtime, FLOWLEDGER_EXECUTOR_MAX_RUNS="1", FLOWLEDGER_EXECUTOR_SWEEP_INTERVAL="60"
    )
    workers.start()
    try:
        wait_for(runtime, request(runtime, chain(StepPlan("e", "echo"))), finished)  # it follows
        busy = request(runtime, chain(StepPlan("s", "slow", input_mapping={"delay_s": 0.5})))
        wait_for(runtime, busy, lambda r: r.steps["s"].in_flight is not None)
        queued = request(runtime, chain(StepPlan("e", "echo")))
        cancel_run(runtime.store, CancelRun(run_id=queued), META)
        after = request(runtime, chain(StepPlan("e", "echo")))  # queued behind it
        wait_for(runtime, after, finished)
    finally:
        workers.stop()
        workers.runtime.close_sync()
    assert runtime.store.get(Run, queued).status == "CANCELLED"
    assert get_stats(agents["echo"])["calls"] == 2, "the cancelled run's step was called"


def test_a_run_requested_before_the_executor_started_is_driven_at_once(
    runtime: Runtime, agents: dict[str, str]
) -> None:
    """The executor hears of runs requested after it started from the event store; earlier
    ones are found by a sweep, which must look once the active runs hold them (its first
    sweep at start came before, and the next one a sweep interval later: 60 s here)."""
    run_id = request(runtime, chain(StepPlan("e", "echo")))
    workers = executor_with(runtime, FLOWLEDGER_EXECUTOR_SWEEP_INTERVAL="60")
    workers.start()
    try:
        run = wait_for(runtime, run_id, finished, timeout=20)
    finally:
        workers.stop()
        workers.runtime.close_sync()
    assert run.status == "SUCCEEDED"


def test_an_executor_stops_when_asked_not_at_its_next_sweep(database: Database) -> None:
    """Stopping ends the executor's wait for news at once: before, it noticed at its next
    sweep, and with a long sweep interval an in-process executor outlived its stop (its
    thread still running once ``stop()`` gave up waiting)."""
    settings = make_settings(
        database, extra={**TEST_ENVIRONMENT, "FLOWLEDGER_EXECUTOR_SWEEP_INTERVAL": "60"}
    )
    runtime = Runtime.open(settings, database=database, migrate=False)
    workers = InProcessWorkers(runtime, ("executor",))
    try:
        workers.start()
        # Its first sweep done, it waits for news or for the next sweep (60 s): stop it there,
        # which the old code noticed only at that next sweep.
        eventually(
            lambda: _waiting_on(workers._stop),
            lambda waiting: waiting,
            what="the executor waiting for its next sweep",
        )
        workers.stop()
        assert not workers.running(), "the executor was still running 10 s after stop()"
    finally:
        runtime.close_sync()


def _waiting_on(event: threading.Event) -> bool:
    """Whether some thread is blocked in ``event.wait()`` now (the executor's loop waits for
    its next sweep in a worker thread, on the workers' stop event)."""
    for frame in sys._current_frames().values():
        caller: FrameType | None = frame
        while caller is not None:
            if (
                caller.f_code is threading.Event.wait.__code__
                and caller.f_locals.get("self") is event
            ):
                return True
            caller = caller.f_back
    return False
