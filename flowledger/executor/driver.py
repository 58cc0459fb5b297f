"""Driving one run: start ready steps, call their agents, record every outcome, until the run
ends.

The driver owns a copy of the Run aggregate and appends each state change as a command on it.
Writes are serialised; a conflicting append (the run was cancelled or changed by someone else)
reloads the run and the loop decides again from the new state, so the event store is always
the truth. Attempts found in flight when a driver starts belong to an executor that stopped:
they are recorded as interrupted and tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from flowledger.a2a import AgentAuth, AgentCallCancelled, AgentCallError
from flowledger.domain.agents import Agent
from flowledger.domain.errors import Conflict
from flowledger.domain.mappings import MappingError, resolve
from flowledger.domain.runs import Run
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.executor.callers import AgentCallers
from flowledger.observability import metrics
from flowledger.observability.tracing import handling_event, outgoing_call_span

log = logging.getLogger(__name__)

EXECUTOR_ACTOR = "system:executor"
REFRESH_S: Final = 2.0
"""While calls are in flight, read the run again at least this often (missed signals)."""


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
    url: str
    auth: AgentAuth
    task_id: str | None = None


class RunDriver:
    def __init__(
        self,
        run_id: UUID,
        store: EventStore,
        client: AgentCallers,
        *,
        call_slots: asyncio.Semaphore,
        correlation_id: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.store = store
        self.client = client
        self.call_slots = call_slots
        self.meta = EventMetadata.system(EXECUTOR_ACTOR, correlation_id)
        self.changed = asyncio.Event()
        """Set from outside when the run may have changed (e.g. it was cancelled)."""
        self.run: Run
        self._write_lock = asyncio.Lock()
        self._calls: dict[str, InFlight] = {}
        self._loaded_at = 0.0
        self._deferred = False
        """Whether the run holds events not appended yet (see :meth:`_change`)."""

    # ------------------------------------------------------------------ the loop

    async def drive(self) -> None:
        """Drive the run until it ends, in the trace of the request that started (or retried)
        it: every event the driver appends, and every agent call, belongs to that trace."""
        self.run = await self._load()
        if self.run.is_finished:
            return
        request = await asyncio.to_thread(self._last_request)
        with handling_event("drive run", request, run_id=str(self.run_id)):
            if self.run.status == "PENDING":
                await self._change(lambda run: run.start(), defer=True)
            try:
                while await self._step():
                    pass
            finally:
                try:
                    # Stopped or failed with events kept back (a step's success): they stand.
                    await self._flush()
                finally:
                    await self._abandon_calls()

    def _last_request(self) -> object:
        """The run's latest Requested or Retried event (its metadata carries the trace)."""
        for event in self.store.events.get(self.run_id, desc=True):
            if isinstance(event, Run.Requested | Run.Retried):
                return event
        return None

    async def _step(self) -> bool:
        """One round of decisions; False when the run needs nothing more from this driver."""
        if self.run.is_finished:
            return False
        for step_id in self.run.in_flight():
            if step_id not in self._calls:
                # Left running by an executor that stopped (or a result this driver could not
                # record): interrupt it, and look again next round if that was refused.
                await self._interrupt(step_id)
        run = self.run
        if run.is_finished:
            return False
        if self._deadline_passed():
            timeout_s = (run.plan.timeout_ms or 0) / 1000
            await self._abandon_calls()
            await self._change(lambda r: r.fail(f"workflow timed out after {timeout_s:g}s"))
            return True
        now = datetime.now(UTC)
        for step_id in run.awaiting_retry():
            retry_at = run.steps[step_id].retry_at
            if step_id not in self._calls and (retry_at is None or retry_at <= now):
                await self._start_attempt(step_id)
        for step_id in self.run.ready_steps():
            if self._room_for_more() and step_id not in self._calls:
                await self._start_attempt(step_id)
        if self.run.is_finished:
            return False
        idle = not self._calls and not self.run.awaiting_retry()
        if idle and all(s.status == "SUCCEEDED" for s in self.run.steps.values()):
            await self._change(lambda r: r.succeed())
            return not self.run.is_finished
        await self._flush()
        await self._wait()
        await self._collect()
        return True

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
            self.run = await self._load()

    def _next_wake(self) -> float:
        """Seconds until a retry is due or the workflow deadline passes (at most 1s)."""
        moments = [s.retry_at for s in self.run.steps.values() if s.retry_at is not None]
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
            step_input = resolve(
                run.plan.step(step_id).input_mapping,
                input_data=run.input_data,
                variables=run.variables,
                outputs=run.outputs(),
            )
        except MappingError as error:
            await self._fail_step_for_good(step_id, None, f"input mapping failed: {error}")
            return
        attempts: list[int] = []
        started = await self._change(lambda r: attempts.append(r.start_step(step_id, step_input)))
        if not started or not attempts:
            return
        url, auth = await self._endpoint(step_id)
        attempt = attempts[0]
        timeout_s = self.run.call_timeout_ms(step_id) / 1000
        task = asyncio.create_task(
            self._call(step_id, attempt, url, auth, timeout_s, step_input),
            name=f"run-{self.run_id}-{step_id}-{attempt}",
        )
        self._calls[step_id] = InFlight(step_id, attempt, task, url, auth)

    async def _endpoint(self, step_id: str) -> tuple[str, AgentAuth]:
        """The pinned URL of the step's agent, and its credentials as they are now."""
        binding = self.run.binding(step_id)
        agent = await asyncio.to_thread(self.store.find, Agent, binding.agent_id)
        if agent is None:
            return binding.url, AgentAuth()
        return binding.url, AgentAuth.from_config(agent.auth_type, agent.auth_config)

    async def _call(
        self, step_id: str, attempt: int, url: str, auth: AgentAuth, timeout_s: float, payload: Any
    ) -> CallResult:
        assigning: list[asyncio.Task[bool]] = []

        async def on_task(task_id: str) -> None:
            call = self._calls.get(step_id)
            if call is not None:
                call.task_id = task_id
            # Recorded while the call goes on, not before reading the agent's next event: an
            # agent that answers at once had every step wait for this commit. The write lock
            # still puts it before the attempt's outcome, which waits for it below.
            assigning.append(
                asyncio.create_task(
                    self._change(lambda r: r.assign_task(step_id, attempt, task_id)),
                    name=f"run-{self.run_id}-{step_id}-{attempt}-task",
                )
            )

        body = payload if isinstance(payload, dict) else {"value": payload}
        agent = self.run.steps[step_id].agent_name
        try:
            async with self.call_slots:
                with outgoing_call_span(
                    "agent call",
                    agent,
                    url,
                    **{"flowledger.step": step_id, "flowledger.attempt": attempt},
                ):
                    try:
                        reply = await self.client.send(
                            url,
                            body,
                            kind=self.run.binding(step_id).kind,
                            auth=auth,
                            timeout_s=timeout_s,
                            on_task=on_task,
                            message_id=f"{self.run_id}:{step_id}:{attempt}",
                        )
                    except AgentCallError as error:
                        metrics.AGENT_CALL_ERRORS.labels(agent=agent, kind=error.kind).inc()
                        result = CallResult(step_id, attempt, error=error)
                    else:
                        result = CallResult(step_id, attempt, output=reply.output)
            for assignment in assigning:  # the outcome is recorded after the task id
                await assignment
            return result
        finally:
            # Cancelled (the call abandoned) or failed otherwise: the task ids are still being
            # appended; the driver must not return (and its run be unlocked) before they are.
            await asyncio.gather(*assigning, return_exceptions=True)

    async def _collect(self) -> None:
        for step_id, call in list(self._calls.items()):
            if not call.task.done():
                continue
            del self._calls[step_id]
            if call.task.cancelled():
                continue
            result = call.task.result()
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
        if attempt is not None and await self._change(
            lambda r: r.fail_attempt(step_id, attempt, message, None)
        ):
            self._observe_step(step_id, "FAILED")
        await self._abandon_calls()
        await self._change(lambda r: r.fail(f"step {step_id!r} failed: {message}", step_id))

    async def _interrupt(self, step_id: str) -> None:
        attempt = self.run.steps[step_id].in_flight
        if attempt is None:
            return
        if attempt.task_id:  # the stopped executor's call may still run at the agent
            url, auth = await self._endpoint(step_id)
            await self._cancel_remote(url, auth, attempt.task_id)
        number = attempt.number
        await self._change(lambda r: r.interrupt_attempt(step_id, number))

    async def _abandon_calls(self) -> None:
        """Stop every call in flight, and ask the agents to cancel the tasks they started."""
        calls = list(self._calls.values())
        self._calls.clear()
        for call in calls:
            call.task.cancel()
            if call.task_id:
                await self._cancel_remote(call.url, call.auth, call.task_id)
        for call in calls:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await call.task

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
        limit = self.run.plan.max_parallel_steps
        return limit is None or len(self.run.in_flight()) < limit

    def _deadline(self) -> datetime | None:
        timeout_ms = self.run.plan.timeout_ms
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

    async def _change(self, action: Callable[[Run], object], *, defer: bool = False) -> bool:
        """Apply a command to the run and append its events; False if the run had moved on
        (then the driver's copy is reloaded and the loop decides again).

        ``defer``: keep the events for the next append, when the driver's next decision
        follows at once (a step's success, then the next step's start or the run's success):
        one commit instead of two. The driver never waits with events kept back
        (:meth:`_flush`)."""
        async with self._write_lock:
            try:
                try:
                    action(self.run)
                except Conflict:
                    await self._record_deferred()  # what was decided before still stands
                    raise
                if defer:
                    self._deferred = True
                else:
                    await self._record()
            except Conflict as refused:
                log.info("run %s: %s; reloading", self.run_id, refused)
                self._deferred = False
                self.run = await self._load()
                return False
            return True

    async def _flush(self) -> None:
        """Append the events kept back by ``_change(..., defer=True)``."""
        async with self._write_lock:
            try:
                await self._record_deferred()
            except Conflict as refused:
                log.info("run %s: %s; reloading", self.run_id, refused)
                self.run = await self._load()

    async def _record_deferred(self) -> None:
        if self._deferred:
            await self._record()

    async def _record(self) -> None:
        self._deferred = False
        await asyncio.to_thread(self.store.record, self.run, metadata=self.meta)


def _succeed_step(step_id: str, attempt: int, output: Any) -> Callable[[Run], None]:
    def action(run: Run) -> None:
        run.succeed_step(step_id, attempt, output)

    return action
