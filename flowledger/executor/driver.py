"""Driving one run: let the run take its decisions, start the calls it is ready for, record
every outcome, until the run ends (or parks, or is paused).

The driver owns a copy of the Run aggregate and appends each state change as a command on it.
Writes are serialised; a conflicting append (the run was cancelled or changed by someone else)
reloads the run and the loop decides again from the new state, so the event store is always
the truth. Agent calls found in flight when a driver starts belong to an executor that
stopped: they are recorded as interrupted and tried again; a child run found in flight is
followed again (it ran on by itself).

Each round: the run records what it decides by itself (:meth:`Run.advance`: branches, maps,
loops, waits, signals), the driver starts the agent calls and child runs it is ready for
(:meth:`Run.ready_calls`), then waits for an outcome, a due time or news. When nothing is in
flight but waits, signals or child runs, and nothing is due for a while, the run is parked
(WAITING) and the driver returns: the executor drives it again when it is due or has news.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from eventsourcing.application import project_aggregate

from flowledger.a2a import (
    AgentAuth,
    AgentCallCancelled,
    AgentCallError,
)
from flowledger.commands.runs import CancelRun, cancel_run
from flowledger.domain.agents import Agent
from flowledger.domain.errors import Conflict, NotFound
from flowledger.domain.mappings import MappingError, resolve_in
from flowledger.domain.runs import Run
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.executor.callers import AgentCallers
from flowledger.executor.children import ChildNotStarted, follow_child, start_child
from flowledger.observability import metrics
from flowledger.observability.tracing import handling_event, outgoing_call_span

log = logging.getLogger(__name__)

EXECUTOR_ACTOR = "system:executor"
REFRESH_S: Final = 2.0
"""While calls are in flight, read the run again when it has not been read or appended to for
this long (missed signals)."""
TASK_ID_GRACE_S: Final = 0.05
"""An agent's task id is recorded on its own when the agent has not answered this long after
giving it (so that another executor can cancel the task); otherwise it is recorded in one
commit with the attempt's outcome (ADR 0014)."""
PARK_AFTER_S: Final = 5.0
"""A run with nothing in flight but waits is parked when nothing is due sooner than this."""


@dataclass(frozen=True)
class CallResult:
    step_id: str
    attempt: int
    output: Any = None
    error: AgentCallError | None = None


@dataclass
class InFlight:
    step_id: str
    attempt: int
    task: asyncio.Task[CallResult]
    url: str = ""
    auth: AgentAuth = field(default_factory=AgentAuth)
    task_id: str | None = None
    child: UUID | None = None
    """The child run a workflow step's attempt follows (no agent call)."""
    since: float = field(default_factory=time.monotonic)
    payload: Any = None
    agent_version: int | None = None
    """The version of the agent whose credentials the call went with."""


class RunDriver:
    def __init__(
        self,
        run_id: UUID,
        store: EventStore,
        client: AgentCallers,
        *,
        call_slots: asyncio.Semaphore,
        correlation_id: str | None = None,
        park_after_s: float = PARK_AFTER_S,
        request: Run.Requested | None = None,
    ) -> None:
        self.run_id = run_id
        self._request = request
        """The run's request, when the executor's feed read it as the run's only event so far
        (the run is then made from it, not read from the store)."""
        self.store = store
        self.client = client
        self.call_slots = call_slots
        self.park_after_s = park_after_s
        self.meta = EventMetadata.system(EXECUTOR_ACTOR, correlation_id)
        self.changed = asyncio.Event()
        """Set from outside when the run may have changed (e.g. it was cancelled)."""
        self.run: Run
        self._write_lock = asyncio.Lock()
        self._calls: dict[str, InFlight] = {}
        self._child_news: dict[UUID, asyncio.Event] = {}
        self._loaded_at = 0.0
        """When the driver's copy was last known to be the run as stored: read, or appended to
        (an append that commits proves nobody else appended since)."""
        self._deferred = False
        """Whether the run holds events not appended yet (see :meth:`_change`)."""
        self._reads: dict[UUID, int] = {}
        """Versions of other aggregates the events kept back relied on (checked with them)."""

    def children(self) -> set[UUID]:
        """The child runs this driver follows now."""
        return set(self._child_news)

    def child_news(self, child: UUID) -> None:
        """A child run this driver may follow has news (it ended)."""
        news = self._child_news.get(child)
        if news is not None:
            news.set()

    # ------------------------------------------------------------------ the loop

    async def drive(self) -> None:
        """Drive the run until it ends, in the trace of the request that started (or retried)
        it: every event the driver appends, and every agent call, belongs to that trace."""
        request: object
        if self._request is not None:
            # If more was recorded since, the first append conflicts and the run is read then.
            self.run, request = self._from_request(self._request), self._request
        else:
            self.run, request = await asyncio.to_thread(self._load_with_request)
        self._loaded_at = time.monotonic()
        if self.run.is_finished:
            return
        with handling_event("drive run", request, run_id=str(self.run_id)):
            if self.run.status == "PENDING":
                await self._change(lambda run: run.start(), defer=True)
            elif self.run.status == "WAITING":
                await self._change(lambda run: run.wake(), defer=True)
            try:
                while await self._step():
                    pass
            finally:
                try:
                    # Stopped or failed with events kept back (a step's success): they stand.
                    await self._flush()
                finally:
                    await self._abandon_calls()
                    if self.run.status == "FAILED":
                        await self._cancel_children()

    @staticmethod
    def _from_request(request: Run.Requested) -> Run:
        run = project_aggregate(None, [request])
        assert isinstance(run, Run), "a request makes a run"
        return run

    def _load_with_request(self) -> tuple[Run, object]:
        """The run, and its latest Requested or Retried event (whose metadata carries the
        trace), from one read of its events."""
        events = list(self.store.events.get(self.run_id))
        request = next(
            (e for e in reversed(events) if isinstance(e, Run.Requested | Run.Retried)), None
        )
        run = project_aggregate(None, events)
        if request is None or not isinstance(run, Run):
            raise NotFound(f"run {self.run_id} not found")
        return run, request

    async def _step(self) -> bool:
        """One round of decisions; False when the run needs nothing more from this driver."""
        if self.run.is_finished:
            return False
        await self._take_over_calls()
        run = self.run
        if run.is_finished:
            return False
        if run.status != "PAUSED" and self._deadline_passed():
            timeout_s = (run.timeout_ms or 0) / 1000
            await self._abandon_calls()
            await self._change(lambda r: r.fail(f"workflow timed out after {timeout_s:g}s"))
            return True
        now = datetime.now(UTC)
        await self._change(lambda r: r.advance(now), defer=True)
        if self.run.is_finished:
            await self._abandon_calls()
            return False
        if self.run.status == "PAUSED":
            if not self._calls:
                return False  # no step starts; resuming drives it again
        else:
            await self._start_ready(now)
            if self.run.is_finished:
                return False
            park, wake_at = self._parking(now)
            if park and await self._change(lambda r: r.suspend(wake_at, now)):
                return False
        await self._flush()
        await self._wait()
        await self._collect()
        return True

    async def _take_over_calls(self) -> None:
        """Calls in flight that this driver is not making: left running by an executor that
        stopped (or a result this driver could not record). An agent call is interrupted (and
        looked at again next round if that was refused); a child run is followed again."""
        for step_id in self.run.in_flight():
            if step_id not in self._calls:
                if self.run.steps[step_id].kind == "workflow":
                    self._follow(step_id)
                else:
                    await self._interrupt(step_id)

    async def _start_ready(self, now: datetime) -> None:
        """Start the attempts that are due: retries whose wait is over, then new calls.

        The calls go out while their starts commit (all in one append, with what was kept back
        before: ADR 0014), not after: a step then costs its call, not a commit and its call. A
        call whose start is refused (the run was cancelled or changed meanwhile) is stopped
        again at once; one cut short by a crash before the commit is made again with the same
        attempt number, so its message id (``run:step:attempt``) is the same."""
        making = set(self._calls)
        for step_id in self.run.awaiting_retry():
            retry_at = self.run.steps[step_id].retry_at
            if step_id not in self._calls and (retry_at is None or retry_at <= now):
                await self._start_attempt(step_id)
        for step_id in self.run.ready_calls():
            if self._room_for_more() and step_id not in self._calls:
                await self._start_attempt(step_id)
        await self._flush()
        # Any append refused in this round (this one, a step failed for good, a child's start)
        # reloaded the run: the calls it does not hold are stopped.
        await self._drop_unrecorded_calls()
        await self._redo_outdated_calls([s for s in self._calls if s not in making])

    def _parking(self, now: datetime) -> tuple[bool, datetime | None]:
        """Whether to park the run now, and when to wake it (None: on news only).

        Parked: nothing is in flight but child runs followed for a while, no call waits for a
        retry, something waits (a wait, a signal, a child), and nothing is due soon."""
        run = self.run
        if run.status != "RUNNING" or run.awaiting_retry():
            return False, None
        followed = [call for call in self._calls.values() if call.child is not None]
        if len(followed) != len(self._calls) or not (followed or run.waiting):
            return False, None
        if any(time.monotonic() - call.since < self.park_after_s for call in followed):
            return False, None
        moments = [m for m in (run.next_wake(), self._deadline()) if m is not None]
        wake_at = min(moments, default=None)
        if wake_at is not None and (wake_at - now).total_seconds() < self.park_after_s:
            return False, None
        return True, wake_at

    async def _wait(self) -> None:
        waiters: set[asyncio.Future[Any]] = {call.task for call in self._calls.values()}
        changed = asyncio.ensure_future(self.changed.wait())
        waiters.add(changed)
        try:
            await asyncio.wait(
                waiters, timeout=self._next_wake(), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            changed.cancel()
        stale = time.monotonic() - self._loaded_at >= REFRESH_S and bool(self._calls)
        if self.changed.is_set() or stale:
            # Signalled, or a while without news during a call: a cancel signal may have gone
            # to another executor (Kafka partitions move), so look at the run itself.
            self.changed.clear()
            self.run = await self._refresh()

    def _next_wake(self) -> float:
        """Seconds until a retry or a wait is due or the workflow deadline passes (at most
        1s)."""
        moments = [m for m in (self.run.next_wake(),) if m is not None]
        deadline = self._deadline()
        if deadline is not None:
            moments.append(deadline)
        now = datetime.now(UTC)
        waits = [(moment - now).total_seconds() for moment in moments]
        return max(0.0, min([1.0, *waits]))

    # ------------------------------------------------------------------ steps

    async def _start_attempt(self, step_id: str) -> None:
        run = self.run
        try:
            step_input = resolve_in(run.plan_step(step_id).input_mapping, run.context(step_id))
        except MappingError as error:
            await self._fail_step_for_good(step_id, None, f"input mapping failed: {error}")
            return
        attempts: list[int] = []
        # The agent is read from the store's cache; the version read is checked when the
        # step's start commits (the call is made again if it went with older credentials).
        agent = await self._agent(step_id)
        started = await self._change(
            lambda r: attempts.append(r.start_step(step_id, step_input)),
            defer=True,
            reads={agent.id: agent.version} if agent is not None else None,
        )
        if not started or not attempts:
            return
        attempt = attempts[0]
        if self.run.steps[step_id].kind == "workflow":
            await self._start_child(step_id, attempt, step_input)
            return
        await self._launch(step_id, attempt, step_input)

    async def _launch(self, step_id: str, attempt: int, step_input: Any) -> None:
        """Make the call of the step's attempt with the agent's credentials as cached now."""
        agent = await self._agent(step_id)
        binding = self.run.binding(step_id)
        auth = _auth(agent)
        timeout_s = self.run.call_timeout_ms(step_id) / 1000
        task = asyncio.create_task(
            self._call(step_id, attempt, binding.url, auth, timeout_s, step_input),
            name=f"run-{self.run_id}-{step_id}-{attempt}",
        )
        self._calls[step_id] = InFlight(
            step_id,
            attempt,
            task,
            binding.url,
            auth,
            payload=step_input,
            agent_version=None if agent is None else agent.version,
        )

    async def _redo_outdated_calls(self, step_ids: list[str]) -> None:
        """Make again, in the same attempt (so with the same message id), the calls just made
        with an agent's credentials that their start found outdated when it committed (the
        commit brought the cache up to date)."""
        for step_id in step_ids:
            call = self._calls[step_id]
            if call.agent_version is None or call.child is not None:
                continue
            agent = await self._agent(step_id)
            if agent is not None and agent.version != call.agent_version:
                del self._calls[step_id]
                await self._stop_call(call)
                await self._launch(step_id, call.attempt, call.payload)

    async def _agent(self, step_id: str) -> Agent | None:
        """The step's agent as this process last knew it (loaded when it is not cached); None
        for a step that calls no agent (a sub-workflow)."""
        if self.run.plan_step(step_id).agent_name is None:
            return None
        agent_id = self.run.binding(step_id).agent_id
        cached = self.store.cached(Agent, agent_id)
        if cached is not None:
            return cached
        return await asyncio.to_thread(self.store.find, Agent, agent_id, copy=False)

    async def _start_child(self, step_id: str, attempt: int, step_input: Any) -> None:
        """Request the child run of a workflow step's attempt, record it, and follow it."""
        if not await self._flush():  # the attempt is recorded before its child exists
            return
        try:
            child = await asyncio.to_thread(
                start_child, self.store, self.run, step_id, step_input, self.meta
            )
        except ChildNotStarted as error:
            await self._fail_step_for_good(step_id, attempt, str(error))
            return
        if await self._change(lambda r: r.follow_child(step_id, attempt, child)):
            self._follow(step_id)

    def _follow(self, step_id: str) -> None:
        """Follow the child run of the step's attempt in flight until it ends."""
        attempt = self.run.steps[step_id].in_flight
        child = self.run.children_in_flight().get(step_id)
        if attempt is None or child is None:
            return
        news = self._child_news.setdefault(child, asyncio.Event())
        number = attempt.number

        async def follow() -> CallResult:
            try:
                output = await follow_child(self.store, child, news)
            except AgentCallError as error:
                return CallResult(step_id, number, error=error)
            return CallResult(step_id, number, output=output)

        task = asyncio.create_task(follow(), name=f"run-{self.run_id}-{step_id}-child")
        self._calls[step_id] = InFlight(step_id, number, task, child=child)

    async def _endpoint(self, step_id: str) -> tuple[str, AgentAuth]:
        """The pinned URL of the step's agent, and its credentials."""
        binding = self.run.binding(step_id)
        return binding.url, _auth(await self._agent(step_id))

    async def _call(
        self, step_id: str, attempt: int, url: str, auth: AgentAuth, timeout_s: float, payload: Any
    ) -> CallResult:
        assigning: list[asyncio.Task[None]] = []

        async def on_task(task_id: str) -> None:
            call = self._calls.get(step_id)
            if call is not None:
                call.task_id = task_id
            # Recorded on its own only if the agent is still working a moment later; an agent
            # that answers at once has it recorded in one commit with the outcome (_collect).
            assigning.append(
                asyncio.create_task(
                    self._assign_task_later(step_id, attempt, task_id),
                    name=f"run-{self.run_id}-{step_id}-{attempt}-task",
                )
            )

        body = payload if isinstance(payload, dict) else {"value": payload}
        agent = self.run.steps[step_id].agent_name or "?"
        try:
            async with self.call_slots:
                with outgoing_call_span(
                    "agent call",
                    agent,
                    url,
                    **{"flowledger.step": step_id, "flowledger.attempt": attempt},
                ) as trace:
                    try:
                        reply = await self.client.send(
                            url,
                            body,
                            kind=self.run.binding(step_id).kind,
                            auth=auth,
                            timeout_s=timeout_s,
                            on_task=on_task,
                            message_id=f"{self.run_id}:{step_id}:{attempt}",
                            headers=trace,
                        )
                    except AgentCallError as error:
                        metrics.AGENT_CALL_ERRORS.labels(agent=agent, kind=error.kind).inc()
                        result = CallResult(step_id, attempt, error=error)
                    else:
                        result = CallResult(step_id, attempt, output=reply.output)
            return result
        finally:
            # Answered, abandoned or failed: a task id still waiting for its moment goes with
            # the outcome instead; one being appended is waited for, so that the driver never
            # returns (and its run is unlocked) before it is recorded.
            for assignment in assigning:
                assignment.cancel()
            await asyncio.gather(*assigning, return_exceptions=True)

    async def _assign_task_later(self, step_id: str, attempt: int, task_id: str) -> None:
        await asyncio.sleep(TASK_ID_GRACE_S)
        await self._change(_assign_task(step_id, attempt, task_id), skip_if_stale=True)

    async def _collect(self) -> None:
        for step_id, call in list(self._calls.items()):
            if not call.task.done():
                continue
            del self._calls[step_id]
            if call.child is not None:
                self._child_news.pop(call.child, None)
            if call.task.cancelled():
                continue
            result = call.task.result()
            if call.task_id is not None:  # a task id not recorded yet goes with the outcome
                assign = _assign_task(step_id, call.attempt, call.task_id)
                await self._change(assign, defer=True, skip_if_stale=True)
            if result.error is None:
                succeeded = _succeed_step(step_id, call.attempt, result.output)
                if await self._change(succeeded, defer=True):
                    self._observe_step(step_id, "SUCCEEDED")
            else:
                await self._record_failure(step_id, call.attempt, result.error)

    async def _record_failure(self, step_id: str, attempt: int, error: AgentCallError) -> None:
        if self.run.is_finished:
            return
        message = str(error)
        failures = self.run.failed_attempts(step_id)
        policy = self.run.retry_policy(step_id)
        will_retry = (
            error.retryable
            and not isinstance(error, AgentCallCancelled)
            and failures < policy.max_retries
        )
        if will_retry:
            delay = int(policy.backoff.delay(failures + 1))
            if await self._change(lambda r: r.fail_attempt(step_id, attempt, message, delay)):
                metrics.AGENT_CALL_RETRIES.labels(agent=self.run.steps[step_id].agent_name).inc()
        else:
            await self._fail_step_for_good(step_id, attempt, message)

    async def _fail_step_for_good(self, step_id: str, attempt: int | None, message: str) -> None:
        """The step fails; the run decides what that fails with it (the map or loop around
        it, or the run: then the calls still in flight are abandoned)."""
        if attempt is None:
            await self._change(lambda r: r.fail_step(step_id, message))
        elif await self._change(lambda r: r.fail_attempt(step_id, attempt, message, None)):
            self._observe_step(step_id, "FAILED")
        now = datetime.now(UTC)
        await self._change(lambda r: r.advance(now))
        if self.run.is_finished:
            await self._abandon_calls()

    async def _interrupt(self, step_id: str) -> None:
        attempt = self.run.steps[step_id].in_flight
        if attempt is None:
            return
        if attempt.task_id:  # the stopped executor's call may still run at the agent
            url, auth = await self._endpoint(step_id)
            await self._cancel_remote(url, auth, attempt.task_id)
        number = attempt.number
        await self._change(lambda r: r.interrupt_attempt(step_id, number))

    async def _drop_unrecorded_calls(self) -> None:
        """Stop the calls whose start the run (reloaded after a refused append) does not hold."""
        for step_id, call in list(self._calls.items()):
            attempt = self.run.steps[step_id].in_flight if step_id in self.run.steps else None
            if attempt is None or attempt.number != call.attempt:
                del self._calls[step_id]
                await self._stop_call(call)

    async def _abandon_calls(self) -> None:
        """Stop every call in flight, and ask the agents to cancel the tasks they started (a
        child run goes on by itself: :meth:`_cancel_children` ends those of a failed run)."""
        calls = list(self._calls.values())
        self._calls.clear()
        self._child_news.clear()
        for call in calls:
            await self._stop_call(call)

    async def _stop_call(self, call: InFlight) -> None:
        call.task.cancel()
        if call.task_id:
            await self._cancel_remote(call.url, call.auth, call.task_id)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await call.task

    async def _cancel_children(self) -> None:
        """Cancel the child runs a failed run's steps were following."""
        for child in self.run.children_cut_off():
            try:
                reason = f"its parent run {self.run_id} failed"
                await asyncio.to_thread(
                    cancel_run, self.store, CancelRun(run_id=child, reason=reason), self.meta
                )
            except Conflict:
                pass  # it ended meanwhile
            except Exception as error:
                log.warning("could not cancel child run %s: %s", child, error)

    async def _cancel_remote(self, url: str, auth: AgentAuth, task_id: str) -> None:
        try:
            await self.client.cancel(url, task_id, auth=auth, timeout_s=5.0)
        except Exception as error:
            log.warning("could not cancel task %s at %s: %s", task_id, url, error)

    def _observe_step(self, step_id: str, status: str) -> None:
        step = self.run.steps[step_id]
        if step.started_at is not None and step.finished_at is not None:
            seconds = (step.finished_at - step.started_at).total_seconds()
            metrics.STEP_DURATION.labels(agent=step.agent_name, status=status).observe(seconds)

    # ------------------------------------------------------------------ state

    def _room_for_more(self) -> bool:
        limit = self.run.max_parallel
        return limit is None or len(self.run.in_flight()) < limit

    def _deadline(self) -> datetime | None:
        timeout_ms = self.run.timeout_ms
        if not timeout_ms or self.run.round_started_at is None:
            return None
        return self.run.round_started_at + timedelta(milliseconds=timeout_ms)

    def _deadline_passed(self) -> bool:
        deadline = self._deadline()
        return deadline is not None and datetime.now(UTC) >= deadline

    async def _load(self) -> Run:
        run = await asyncio.to_thread(self.store.get, Run, self.run_id, kind="run")
        self._loaded_at = time.monotonic()
        return run

    async def _refresh(self) -> Run:
        """The run with the events others appended since this copy (a long run's history is
        not read again on every look)."""
        if self.run.pending_events:
            return await self._load()
        newer = await asyncio.to_thread(
            lambda: list(self.store.events.get(self.run_id, gt=self.run.version))
        )
        run = self.run
        for new in newer:
            assert isinstance(new, Run.Event | Run.Requested)
            new.mutate(run)
        self._loaded_at = time.monotonic()
        return run

    async def _change(
        self,
        action: Callable[[Run], object],
        *,
        defer: bool = False,
        skip_if_stale: bool = False,
        reads: Mapping[UUID, int] | None = None,
    ) -> bool:
        """Apply a command to the run and append its events; False if the run had moved on
        (then the driver's copy is reloaded and the loop decides again).

        ``defer``: keep the events for the next append, when the driver's next decision
        follows at once (a step's success, then the next step's start or the run's success):
        one commit instead of two. The driver never waits with events kept back
        (:meth:`_flush`). ``skip_if_stale``: the action does nothing (and is no conflict)
        when it has become pointless (a task id already recorded, an attempt over).
        ``reads``: versions of other aggregates the action relied on, checked at the commit
        (see :meth:`EventStore.record_async`)."""
        async with self._write_lock:
            try:
                try:
                    action(self.run)  # its guards raise before it records anything
                except Conflict:
                    if skip_if_stale:
                        return False
                    await self._record_deferred()  # what was decided before still stands
                    raise
                if not self.run.pending_events:
                    pass  # nothing was decided: nothing to append
                elif defer:
                    self._deferred = True
                    self._reads.update(reads or {})
                else:
                    await self._record(reads)
            except Conflict as refused:
                log.info("run %s: %s; reloading", self.run_id, refused)
                self._deferred = False
                self._reads = {}
                self.run = await self._load()
                return False
            return True

    async def _flush(self) -> bool:
        """Append the events kept back by ``_change(..., defer=True)``; False when that was
        refused (then the driver's copy is reloaded)."""
        async with self._write_lock:
            try:
                await self._record_deferred()
            except Conflict as refused:
                log.info("run %s: %s; reloading", self.run_id, refused)
                self._reads = {}
                self.run = await self._load()
                return False
            return True

    async def _record_deferred(self) -> None:
        if self._deferred:
            await self._record()

    async def _record(self, reads: Mapping[UUID, int] | None = None) -> None:
        checked = {**self._reads, **(reads or {})}
        self._deferred = False
        self._reads = {}
        await self.store.record_async(self.run, metadata=self.meta, reads=checked or None)
        self._loaded_at = time.monotonic()


def _auth(agent: Agent | None) -> AgentAuth:
    if agent is None:
        return AgentAuth()
    return AgentAuth.from_config(agent.auth_type, agent.auth_config)


def _assign_task(step_id: str, attempt: int, task_id: str) -> Callable[[Run], None]:
    def action(run: Run) -> None:
        attempt_now = run.steps[step_id].in_flight if step_id in run.steps else None
        if attempt_now is not None and attempt_now.task_id == task_id:
            raise Conflict(f"task {task_id} of step {step_id!r} is recorded already")
        run.assign_task(step_id, attempt, task_id)

    return action


def _succeed_step(step_id: str, attempt: int, output: Any) -> Callable[[Run], None]:
    def action(run: Run) -> None:
        run.succeed_step(step_id, attempt, output)

    return action
