"""The run driver against a scripted agent client and the real event store: what it has
appended when it returns, however it returns (the executor stopping cancels it)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast
from uuid import UUID

import pytest
from opentelemetry import context as otel_context

from flowledger.a2a import AgentReply
from flowledger.commands.agents import UpdateAgent, update_agent
from flowledger.domain.agents import Agent
from flowledger.domain.plans import StepPlan, WorkflowPlan
from flowledger.domain.runs import Run
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.executor import driver as driver_module
from flowledger.executor.driver import RunDriver
from flowledger.observability import tracing
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from tests.support.runs import binding, requested

pytestmark = pytest.mark.integration
META = EventMetadata.system("tester")
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class SlowTaskIds:
    """The event store, with appends of a StepTaskAssigned taking ``delay_s``."""

    def __init__(self, store: EventStore, delay_s: float) -> None:
        self._store = store
        self.delay_s = delay_s
        self.appending_task_id = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def record_async(self, *aggregates: Any, **kwargs: Any) -> int | None:
        pending = [e for a in aggregates if a is not None for e in a.pending_events]
        if any(isinstance(e, Run.StepTaskAssigned) for e in pending):
            self.appending_task_id.set()
            await asyncio.sleep(self.delay_s)
        return await self._store.record_async(*aggregates, **kwargs)


class ScriptedClient:
    """Step ``fast`` answers at once; any other step gets a task id, then never answers.
    Cancelling a task at the agent waits until ``release_cancels`` is set."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.cancelling = asyncio.Event()
        self.release_cancels = asyncio.Event()

    async def send(
        self, url: str, body: Any, *, on_task: Any, message_id: str, **_: Any
    ) -> AgentReply:
        step_id = message_id.split(":")[1]
        if step_id == "fast":
            return AgentReply(output={"done": True}, task_id=None, context_id=None, state=None)
        await on_task(f"task-{step_id}")
        self.waiting.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def cancel(self, url: str, task_id: str, **_: Any) -> None:
        self.cancelling.set()
        await self.release_cancels.wait()


def events_of(store: EventStore, run_id: UUID) -> list[str]:
    return [type(e).__name__ for e in store.events.get(run_id)]


def test_a_task_id_being_recorded_when_the_driver_is_stopped_is_appended_before_it_returns(
    runtime: Runtime,
) -> None:
    run = requested(WorkflowPlan(steps=(StepPlan("slow", "echo"),)))
    runtime.store.record(run, metadata=META)
    store = SlowTaskIds(runtime.store, delay_s=0.5)

    async def scenario() -> tuple[list[str], list[str]]:
        client = ScriptedClient()
        client.release_cancels.set()
        driver = RunDriver(run.id, store, client, call_slots=asyncio.Semaphore(4))  # type: ignore[arg-type]
        driving = asyncio.create_task(driver.drive())
        await client.waiting.wait()
        await store.appending_task_id.wait()  # the agent is still working: its task id goes
        driving.cancel()  # the executor stops
        with contextlib.suppress(asyncio.CancelledError):
            await driving
        at_return = events_of(runtime.store, run.id)
        await asyncio.sleep(1.0)
        return at_return, events_of(runtime.store, run.id)

    at_return, later = asyncio.run(scenario())
    # Once a driver has returned, its executor unlocks the run and another may drive it:
    # nothing more may be appended on the first driver's behalf.
    assert later == at_return
    assert at_return[-1] == "StepTaskAssigned"


def test_a_step_success_held_back_is_appended_when_the_driver_is_stopped(
    runtime: Runtime,
) -> None:
    # "fast" succeeds; "then" needs a field it did not return, so the driver fails the run and
    # cancels "slow" at its agent first; the executor stops meanwhile.
    plan = WorkflowPlan(
        steps=(
            StepPlan("fast", "echo"),
            StepPlan("slow", "echo"),
            StepPlan(
                "then",
                "echo",
                depends_on=("fast",),
                input_mapping={"x": "$.steps.fast.output.missing"},
            ),
        )
    )
    run = requested(plan)
    runtime.store.record(run, metadata=META)

    async def scenario() -> Run:
        client = ScriptedClient()
        driver = RunDriver(run.id, runtime.store, client, call_slots=asyncio.Semaphore(4))  # type: ignore[arg-type]
        driving = asyncio.create_task(driver.drive())
        await asyncio.wait_for(client.cancelling.wait(), 10)
        driving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await driving
        return runtime.store.get(Run, run.id)

    stored = asyncio.run(scenario())
    # The agent's answer was known to the driver: without it, the next driver calls again.
    assert stored.steps["fast"].status == "SUCCEEDED", events_of(runtime.store, run.id)


class LateTaskIdOnInterrupt:
    """The event store, where the stopped executor's StepTaskAssigned lands just before the
    new driver's first StepAttemptInterrupted, so that append is refused (a concurrent change)."""

    def __init__(self, store: EventStore, step_id: str, attempt: int) -> None:
        self._store = store
        self._late = (step_id, attempt)
        self.raced = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def record_async(self, *aggregates: Any, **kwargs: Any) -> int | None:
        pending = [e for a in aggregates if a is not None for e in a.pending_events]
        if not self.raced and any(isinstance(e, Run.StepAttemptInterrupted) for e in pending):
            self.raced = True
            old = self._store.get(Run, aggregates[0].id)
            old.assign_task(*self._late, "task-late")
            self._store.record(old, metadata=META)
        return await self._store.record_async(*aggregates, **kwargs)


def test_an_attempt_left_running_is_interrupted_even_when_the_first_try_is_refused(
    runtime: Runtime,
) -> None:
    run = requested(WorkflowPlan(steps=(StepPlan("fast", "echo"),)))
    run.start()
    attempt = run.start_step("fast", {"x": 1})
    runtime.store.record(run, metadata=META)  # then its executor died mid-call
    store = LateTaskIdOnInterrupt(runtime.store, "fast", attempt)

    async def scenario() -> None:
        client = ScriptedClient()
        client.release_cancels.set()
        driver = RunDriver(run.id, store, client, call_slots=asyncio.Semaphore(4))  # type: ignore[arg-type]
        await asyncio.wait_for(driver.drive(), 15)

    asyncio.run(scenario())
    assert store.raced
    stored = runtime.store.get(Run, run.id)
    assert stored.status == "SUCCEEDED", events_of(runtime.store, run.id)
    assert [a.outcome for a in stored.steps["fast"].attempts] == ["interrupted", "succeeded"]


class TokenRotatedDuringFirstStep:
    """Answers at once, noting the credentials of each call; during step ``first`` another
    process rotates the agent's token."""

    def __init__(self, rotate: Any) -> None:
        self.rotate = rotate
        self.tokens: dict[str, str | None] = {}

    async def send(self, url: str, body: Any, *, auth: Any, message_id: str, **_: Any) -> Any:
        step_id = message_id.split(":")[1]
        self.tokens[step_id] = auth.token
        if step_id == "first":
            await asyncio.to_thread(self.rotate)
        return AgentReply(output={"done": True}, task_id=None, context_id=None, state=None)

    async def cancel(self, url: str, task_id: str, **_: Any) -> None:
        return None


def test_a_token_rotated_by_another_process_is_used_from_the_next_step_on(
    runtime: Runtime, database: Database
) -> None:
    agent = Agent.register(
        name="echo", url="http://agent", auth_type="bearer", auth_config={"token": "old"}
    )
    runtime.store.record(agent, metadata=META)
    plan = WorkflowPlan(steps=(StepPlan("first", "echo"), StepPlan("then", "echo", ("first",))))
    run = requested(plan, agents={"echo": {**binding(), "agent_id": str(agent.id)}})
    runtime.store.record(run, metadata=META)
    other = EventStore(database, pool_size=1)  # another process: its own cache and writer

    def rotate() -> None:
        update_agent(
            other, UpdateAgent(agent_id=agent.id, changes={"auth_config": {"token": "new"}}), META
        )

    client = TokenRotatedDuringFirstStep(rotate)
    try:
        driver = RunDriver(run.id, runtime.store, client, call_slots=asyncio.Semaphore(4))  # type: ignore[arg-type]
        asyncio.run(asyncio.wait_for(driver.drive(), 30))
    finally:
        other.close()
    assert client.tokens == {"first": "old", "then": "new"}
    assert runtime.store.get(Run, run.id).status == "SUCCEEDED"


class StartsHeldUntilCalled:
    """The event store, where an append holding a StepStarted waits until the agent has the
    call (at most ``patience_s``): a driver that called only after the start committed would
    wait the whole time."""

    def __init__(self, store: EventStore, called: asyncio.Event, patience_s: float) -> None:
        self._store = store
        self.called = called
        self.patience_s = patience_s
        self.called_while_committing: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def record_async(self, *aggregates: Any, **kwargs: Any) -> int | None:
        pending = [e for a in aggregates if a is not None for e in a.pending_events]
        if any(isinstance(e, Run.StepStarted) for e in pending):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.called.wait(), self.patience_s)
            self.called_while_committing.append(self.called.is_set())
        return await self._store.record_async(*aggregates, **kwargs)


class AnswersAtOnce:
    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.calls: list[str] = []

    async def send(self, url: str, body: Any, *, message_id: str, **_: Any) -> AgentReply:
        self.calls.append(message_id)
        self.called.set()
        return AgentReply(output={"done": True}, task_id=None, context_id=None, state=None)

    async def cancel(self, url: str, task_id: str, **_: Any) -> None:
        return None


def test_a_step_is_called_while_its_start_commits(runtime: Runtime) -> None:
    run = requested(WorkflowPlan(steps=(StepPlan("only", "echo"),)))
    runtime.store.record(run, metadata=META)

    async def scenario() -> StartsHeldUntilCalled:
        client = AnswersAtOnce()
        store = StartsHeldUntilCalled(runtime.store, client.called, patience_s=5)
        driver = RunDriver(run.id, store, client, call_slots=asyncio.Semaphore(4))  # type: ignore[arg-type]
        await asyncio.wait_for(driver.drive(), 30)
        return store

    store = asyncio.run(scenario())
    # The call went out while its start was being committed: a step costs its call, not a
    # commit and then its call (ADR 0014).
    assert store.called_while_committing == [True]
    stored = runtime.store.get(Run, run.id)
    assert stored.status == "SUCCEEDED", events_of(runtime.store, run.id)
    assert [a.outcome for a in stored.steps["only"].attempts] == ["succeeded"]


class CancelledWhileStarting:
    """The event store, where the run is cancelled (as by another process) just before the
    driver's first StepStarted is appended, so that append is refused."""

    def __init__(self, store: EventStore, started: asyncio.Event) -> None:
        self._store = store
        self.started = started

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def record_async(self, *aggregates: Any, **kwargs: Any) -> int | None:
        pending = [e for a in aggregates if a is not None for e in a.pending_events]
        if any(isinstance(e, Run.StepStarted) for e in pending) and not self.started.is_set():
            await self.started.wait()  # the call has gone out
            other = self._store.get(Run, aggregates[0].id)
            other.cancel("stopped by an operator")
            self._store.record(other, metadata=META)
        return await self._store.record_async(*aggregates, **kwargs)


def test_a_call_whose_start_is_refused_is_stopped_at_the_agent(runtime: Runtime) -> None:
    run = requested(WorkflowPlan(steps=(StepPlan("slow", "echo"),)))
    runtime.store.record(run, metadata=META)

    async def scenario() -> list[str]:
        client = ScriptedClient()
        client.release_cancels.set()
        store = CancelledWhileStarting(runtime.store, client.waiting)
        cancelled: list[str] = []
        original = client.cancel

        async def cancel(url: str, task_id: str, **kwargs: Any) -> None:
            cancelled.append(task_id)
            await original(url, task_id, **kwargs)

        client.cancel = cancel  # type: ignore[method-assign]
        driver = RunDriver(run.id, store, client, call_slots=asyncio.Semaphore(4))  # type: ignore[arg-type]
        await asyncio.wait_for(driver.drive(), 30)
        return cancelled

    cancelled = asyncio.run(scenario())
    stored = runtime.store.get(Run, run.id)
    assert stored.status == "CANCELLED", events_of(runtime.store, run.id)
    assert "StepStarted" not in events_of(runtime.store, run.id)
    # The agent had the call (and gave a task id) before the start was refused: it is told.
    assert cancelled == ["task-slow"]


def test_a_driver_handed_the_request_reads_the_run_only_when_more_was_recorded_since(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The executor's feed hands a new run's driver the request it read: the driver starts
    from it without reading the run; if the run changed meanwhile (cancelled), its first
    append is refused and it reads the run then, and does what that says (nothing)."""
    store = runtime.store
    fresh, cancelled = (requested(WorkflowPlan(steps=(StepPlan("fast", "echo"),))) for _ in "ab")
    store.record(fresh, cancelled, metadata=META)
    requests = {run.id: next(iter(store.events.get(run.id))) for run in (fresh, cancelled)}
    late = store.get(Run, cancelled.id)
    late.cancel("before its driver started")
    store.record(late, metadata=META)

    loads = counted(monkeypatch, "_load")
    monkeypatch.setattr(RunDriver, "_load_with_request", _never)

    async def scenario() -> None:
        for run_id, request in requests.items():
            driver = RunDriver(
                run_id,
                store,
                ScriptedClient(),  # type: ignore[arg-type]
                call_slots=asyncio.Semaphore(4),
                request=request,
            )
            await asyncio.wait_for(driver.drive(), 15)

    asyncio.run(scenario())
    assert store.get(Run, fresh.id).status == "SUCCEEDED"
    assert events_of(store, cancelled.id) == ["Requested", "Cancelled"]
    assert loads == [cancelled.id], "read only once its first append was refused"


def counted(monkeypatch: pytest.MonkeyPatch, method: str) -> list[UUID]:
    """The runs whose drivers called ``RunDriver.<method>`` (a read of the run), in order; the
    method still does its work."""
    calls: list[UUID] = []
    original = getattr(RunDriver, method)

    async def counting(driver: RunDriver) -> Run:
        calls.append(driver.run_id)
        return cast(Run, await original(driver))

    monkeypatch.setattr(RunDriver, method, counting)
    return calls


def _never(driver: RunDriver) -> Any:
    raise AssertionError(f"run {driver.run_id} was read although its driver had its request")


class Sleepy:
    """Every step's agent answers after ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    async def send(self, url: str, body: Any, **_: Any) -> AgentReply:
        await asyncio.sleep(self.delay_s)
        return AgentReply(output={"done": True}, task_id=None, context_id=None, state=None)


@pytest.mark.parametrize(
    ("steps", "delay_s", "reads_again"),
    [(5, 0.15, False), (1, 0.8, True)],
    ids=["steps-that-keep-appending", "one-long-call"],
)
def test_a_driver_reads_its_run_again_only_after_a_while_without_appending_to_it(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, steps: int, delay_s: float, reads_again: bool
) -> None:
    """While calls are in flight a driver reads its run again after ``REFRESH_S`` without news
    (a missed signal). An append that commits is news enough: it proves nobody else appended
    since. So a run whose steps end and start within ``REFRESH_S`` of each other is never
    read again; one long call is."""
    monkeypatch.setattr(driver_module, "REFRESH_S", 0.3)
    plan = WorkflowPlan(
        steps=tuple(
            StepPlan(f"s{n}", "echo", depends_on=(f"s{n - 1}",) if n else ()) for n in range(steps)
        )
    )
    run = requested(plan)
    runtime.store.record(run, metadata=META)
    refreshes = counted(monkeypatch, "_refresh")
    driver = RunDriver(
        run.id,
        runtime.store,
        Sleepy(delay_s),  # type: ignore[arg-type]
        call_slots=asyncio.Semaphore(4),
    )
    asyncio.run(asyncio.wait_for(driver.drive(), 15))
    assert runtime.store.get(Run, run.id).status == "SUCCEEDED"
    assert bool(refreshes) is reads_again, refreshes


class RecordsHeaders:
    """Every step's agent answers at once; the headers each call went with are kept."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    async def send(
        self, url: str, body: Any, *, headers: dict[str, str] | None = None, **_: Any
    ) -> AgentReply:
        self.headers.append(dict(headers or {}))
        return AgentReply(output={"done": True}, task_id=None, context_id=None, state=None)


def test_an_agent_call_carries_the_trace_of_the_runs_request(runtime: Runtime) -> None:
    """The agent can continue the trace that began with the execute request: the call goes
    with a ``traceparent`` of that trace (the request's own when no span is recorded)."""
    parent = tracing.context_from(TRACEPARENT)
    assert parent is not None
    token = otel_context.attach(parent)
    try:
        run = requested(WorkflowPlan(steps=(StepPlan("a", "echo"), StepPlan("b", "echo"))))
        runtime.store.record(run, metadata=META)  # stamped with the current trace
    finally:
        otel_context.detach(token)
    agent = RecordsHeaders()
    driver = RunDriver(
        run.id,
        runtime.store,
        agent,  # type: ignore[arg-type]
        call_slots=asyncio.Semaphore(4),
    )
    asyncio.run(asyncio.wait_for(driver.drive(), 15))
    assert runtime.store.get(Run, run.id).status == "SUCCEEDED"
    trace_id = TRACEPARENT.split("-")[1]
    assert [h["traceparent"].split("-")[1] for h in agent.headers] == [trace_id, trace_id]
