"""Runs: one execution of a pinned workflow plan, step by step, with every attempt recorded.

Run states: PENDING → RUNNING → SUCCEEDED | FAILED | CANCELLED. Step states: PENDING, RUNNING,
SUCCEEDED, FAILED, SKIPPED, CANCELLED. Nothing leaves a terminal state except by a retry of
the run, which puts every step that did not succeed back to PENDING and keeps the outputs of
the ones that did.

The executor drives a run by calling these commands; each one checks that it still makes sense
(the run may have been cancelled meanwhile) and raises otherwise, recording nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from flowledger.domain.agents import RetryPolicy
from flowledger.domain.errors import Conflict
from flowledger.domain.plans import WorkflowPlan

RunStatus = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
StepStatus = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"]
AttemptOutcome = Literal["running", "succeeded", "failed", "cancelled", "interrupted"]

TERMINAL: Final = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
RETRYABLE_RUN_STATES: Final = frozenset({"FAILED", "CANCELLED"})


class StaleAttempt(Conflict):
    """A result for an attempt that is no longer in flight (the run moved on)."""


@dataclass(frozen=True)
class AgentBinding:
    """The agent a step calls, pinned when the run was requested (secrets are not pinned)."""

    agent_id: UUID
    url: str
    timeout_ms: int
    retry_config: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_id": str(self.agent_id),
            "url": self.url,
            "timeout_ms": self.timeout_ms,
            "retry_config": dict(self.retry_config),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentBinding:
        return cls(
            agent_id=UUID(str(data["agent_id"])),
            url=data["url"],
            timeout_ms=int(data["timeout_ms"]),
            retry_config=dict(data["retry_config"]),
        )


@dataclass(frozen=True)
class PlannedStep:
    """A step in a :class:`RetryPlan`, as it is now."""

    step_id: str
    agent_name: str
    status: StepStatus
    output: Any = None
    """The output a reused step keeps (None for a step that runs again)."""


@dataclass(frozen=True)
class RetryPlan:
    """What :meth:`Run.retry` would do if it were called now, computed by the same rule.

    ``rerun`` are the steps the retry puts back to PENDING, in plan order (each runs once its
    dependencies succeed); ``reused`` the steps whose outputs it keeps. The retry keeps the
    run's pinned workflow version and agents.
    """

    run_id: UUID
    status: RunStatus
    refusal: str | None
    """Why a retry would be refused now; None when it would be accepted."""
    retry_number: int
    """The round the retry would start (the run's retries so far, plus one)."""
    workflow_id: UUID
    workflow_name: str
    workflow_version: int
    """The pinned version: a retry never moves to a newer one."""
    rerun: tuple[PlannedStep, ...]
    reused: tuple[PlannedStep, ...]
    agents: Mapping[str, AgentBinding]
    """The pinned agent of each step in ``rerun``, by agent name."""

    @property
    def allowed(self) -> bool:
        return self.refusal is None


@dataclass
class Attempt:
    number: int
    input: Any
    started_at: datetime
    outcome: AttemptOutcome = "running"
    finished_at: datetime | None = None
    output: Any = None
    error: str | None = None
    task_id: str | None = None


@dataclass
class StepState:
    step_id: str
    agent_name: str
    status: StepStatus = "PENDING"
    attempts: list[Attempt] = field(default_factory=list)
    output: Any = None
    error: str | None = None
    retry_at: datetime | None = None
    """When the next attempt is due, after a failed attempt that will be retried."""
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def in_flight(self) -> Attempt | None:
        current = self.current
        return current if current is not None and current.outcome == "running" else None

    def attempts_this_round(self, since: int) -> list[Attempt]:
        return [a for a in self.attempts if a.number > since]


class Run(Aggregate):
    """One execution of a workflow version."""

    class Event(Aggregate.Event):
        def mutate(self, aggregate: Any) -> Any:
            # The @event method body runs before the library sets modified_on, so it reads
            # the time of the event being applied here instead.
            if aggregate is not None:
                aggregate.event_time = self.timestamp
            return super().mutate(aggregate)

    class Requested(Aggregate.Created):
        workflow_id: UUID
        workflow_name: str
        workflow_version: int
        plan: dict[str, Any]
        agents: dict[str, dict[str, Any]]
        input_data: dict[str, Any]
        variables: dict[str, Any]
        triggered_by: str
        idempotency_key: str | None

    class Started(Event):
        pass

    class StepStarted(Event):
        step_id: str
        attempt: int
        input: Any

    class StepTaskAssigned(Event):
        step_id: str
        attempt: int
        task_id: str

    class StepAttemptFailed(Event):
        step_id: str
        attempt: int
        error: str
        retry_in_ms: int | None
        """Delay before the next attempt; None when the step will not be tried again."""

    class StepAttemptInterrupted(Event):
        step_id: str
        attempt: int

    class StepSucceeded(Event):
        step_id: str
        attempt: int
        output: Any

    class StepFailed(Event):
        step_id: str
        error: str

    class Succeeded(Event):
        output: Any

    class Failed(Event):
        error: str
        step_id: str | None

    class Cancelled(Event):
        reason: str

    class Retried(Event):
        retry_number: int

    @event(Requested)
    def __init__(
        self,
        workflow_id: UUID,
        workflow_name: str,
        workflow_version: int,
        plan: dict[str, Any],
        agents: dict[str, dict[str, Any]],
        input_data: dict[str, Any],
        variables: dict[str, Any],
        triggered_by: str,
        idempotency_key: str | None,
    ) -> None:
        self.workflow_id = workflow_id
        self.workflow_name = workflow_name
        self.workflow_version = workflow_version
        self.plan = WorkflowPlan.from_dict(plan)
        """The pinned plan, parsed once from the event that carries it."""
        self.agent_bindings = agents
        self.input_data = input_data
        self.variables = variables
        self.triggered_by = triggered_by
        self.idempotency_key = idempotency_key
        self.status: RunStatus = "PENDING"
        self.steps: dict[str, StepState] = {
            s.step_id: StepState(s.step_id, s.agent_name) for s in self.plan.steps
        }
        self.output: Any = None
        self.error: str | None = None
        self.failed_step: str | None = None
        self.retry_number = 0
        self.round_started_at: datetime | None = None
        """When the current round began running: the workflow timeout counts from here."""
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.attempt_watermark = 0
        """Highest attempt number before the current round (retries count per round)."""
        self.event_time: datetime = self.created_on
        """The time of the event being applied (set before each event's method body runs)."""

    # ------------------------------------------------------------------ queries

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL

    def binding(self, step_id: str) -> AgentBinding:
        return AgentBinding.from_dict(self.agent_bindings[self.steps[step_id].agent_name])

    def call_timeout_ms(self, step_id: str) -> int:
        return self.plan.step(step_id).timeout_ms or self.binding(step_id).timeout_ms

    def retry_policy(self, step_id: str) -> RetryPolicy:
        base = RetryPolicy.from_dict(self.binding(step_id).retry_config)
        policy, _ = RetryPolicy.parse(self.plan.step(step_id).retry, base=base)
        return policy

    def failed_attempts(self, step_id: str) -> int:
        """Attempts of this step in the current round that count against its retries."""
        round_attempts = self.steps[step_id].attempts_this_round(self.attempt_watermark)
        return sum(1 for a in round_attempts if a.outcome == "failed")

    def outputs(self) -> dict[str, Any]:
        return {s.step_id: s.output for s in self.steps.values() if s.status == "SUCCEEDED"}

    def in_flight(self) -> list[str]:
        return [s.step_id for s in self.steps.values() if s.in_flight is not None]

    def ready_steps(self) -> list[str]:
        """Steps that may start now: never started this round and their dependencies done."""
        if self.status != "RUNNING":
            return []
        succeeded = [s.step_id for s in self.steps.values() if s.status == "SUCCEEDED"]
        started = [s.step_id for s in self.steps.values() if s.status != "PENDING"]
        return self.plan.ready(succeeded, started)

    def awaiting_retry(self) -> list[str]:
        """Running steps whose last attempt failed (or was interrupted) and that go again."""
        return [
            s.step_id
            for s in self.steps.values()
            if s.status == "RUNNING" and s.current is not None and s.current.outcome != "running"
        ]

    def steps_to_rerun(self) -> list[str]:
        """The retry rule: every step that did not succeed runs again, in plan order; the
        steps that succeeded keep their outputs (see :meth:`retry` and :meth:`retry_plan`)."""
        return [s.step_id for s in self.steps.values() if s.status != "SUCCEEDED"]

    def retry_refusal(self) -> str | None:
        """Why :meth:`retry` would refuse now, or None."""
        if self.status not in RETRYABLE_RUN_STATES:
            return f"run {self.id} is {self.status}; only FAILED or CANCELLED runs retry"
        return None

    def retry_plan(self) -> RetryPlan:
        """What :meth:`retry` would do now: the steps it would run again, the outputs it would
        reuse, with which workflow version and agents, or why it would be refused."""
        rerun = self.steps_to_rerun()
        agent_names = dict.fromkeys(self.steps[step_id].agent_name for step_id in rerun)
        return RetryPlan(
            run_id=self.id,
            status=self.status,
            refusal=self.retry_refusal(),
            retry_number=self.retry_number + 1,
            workflow_id=self.workflow_id,
            workflow_name=self.workflow_name,
            workflow_version=self.workflow_version,
            rerun=tuple(
                PlannedStep(s.step_id, s.agent_name, s.status)
                for s in (self.steps[step_id] for step_id in rerun)
            ),
            reused=tuple(
                PlannedStep(s.step_id, s.agent_name, s.status, s.output)
                for s in self.steps.values()
                if s.step_id not in rerun
            ),
            agents={
                name: AgentBinding.from_dict(self.agent_bindings[name]) for name in agent_names
            },
        )

    def cancel_refusal(self) -> str | None:
        """Why :meth:`cancel` would refuse now, or None."""
        if self.is_finished:
            return f"run {self.id} is already {self.status} and cannot be cancelled"
        return None

    def final_output(self) -> Any:
        """The output of the step nobody depends on; of several such steps, all by id."""
        plan = self.plan
        needed = {d for s in plan.steps for d in s.depends_on}
        sinks = [s.step_id for s in plan.steps if s.step_id not in needed]
        if len(sinks) == 1:
            return self.steps[sinks[0]].output
        return {step_id: self.steps[step_id].output for step_id in sinks}

    # ------------------------------------------------------------------ commands

    def start(self) -> None:
        if self.status != "PENDING":
            raise Conflict(f"run {self.id} is {self.status}, not PENDING")
        self._start()

    @event(Started)
    def _start(self) -> None:
        self.status = "RUNNING"
        self.round_started_at = self.event_time
        if self.started_at is None:
            self.started_at = self.event_time

    def start_step(self, step_id: str, step_input: Any) -> int:
        """Start the next attempt of a step; returns the attempt number."""
        self._require_running()
        step = self._step(step_id)
        if step.in_flight is not None:
            raise Conflict(f"step {step_id!r} already has attempt {step.in_flight.number} running")
        if step.status == "PENDING":
            missing = [
                d for d in self.plan.step(step_id).depends_on if self.steps[d].status != "SUCCEEDED"
            ]
            if missing:
                raise Conflict(f"step {step_id!r} waits for {', '.join(missing)}")
            limit = self.plan.max_parallel_steps
            if limit is not None and len(self.in_flight()) >= limit:
                raise Conflict(f"run {self.id} already has {limit} steps running")
        elif step.status != "RUNNING":
            raise Conflict(f"step {step_id!r} is {step.status}")
        attempt = (step.current.number if step.current else self.attempt_watermark) + 1
        self._start_step(step_id=step_id, attempt=attempt, input=step_input)
        return attempt

    @event(StepStarted)
    def _start_step(self, step_id: str, attempt: int, input: Any) -> None:
        step = self.steps[step_id]
        step.status = "RUNNING"
        step.retry_at = None
        step.started_at = step.started_at or self.event_time
        step.attempts.append(Attempt(attempt, input, started_at=self.event_time))

    def assign_task(self, step_id: str, attempt: int, task_id: str) -> None:
        self._attempt_in_flight(step_id, attempt)
        self._assign_task(step_id=step_id, attempt=attempt, task_id=task_id)

    @event(StepTaskAssigned)
    def _assign_task(self, step_id: str, attempt: int, task_id: str) -> None:
        current = self.steps[step_id].current
        assert current is not None
        current.task_id = task_id

    def fail_attempt(self, step_id: str, attempt: int, error: str, retry_in_ms: int | None) -> None:
        """Record a failed attempt; with ``retry_in_ms`` the step goes again after that delay,
        without it the step fails (and the run with it: call :meth:`fail` next)."""
        self._attempt_in_flight(step_id, attempt)
        self._fail_attempt(step_id=step_id, attempt=attempt, error=error, retry_in_ms=retry_in_ms)
        if retry_in_ms is None:
            self._fail_step(step_id=step_id, error=error)

    @event(StepAttemptFailed)
    def _fail_attempt(
        self, step_id: str, attempt: int, error: str, retry_in_ms: int | None
    ) -> None:
        step = self.steps[step_id]
        current = step.current
        assert current is not None
        current.outcome = "failed"
        current.error = error
        current.finished_at = self.event_time
        step.error = error
        if retry_in_ms is not None:
            step.retry_at = self.event_time + timedelta(milliseconds=retry_in_ms)

    @event(StepFailed)
    def _fail_step(self, step_id: str, error: str) -> None:
        step = self.steps[step_id]
        step.status = "FAILED"
        step.error = error
        step.retry_at = None
        step.finished_at = self.event_time

    def interrupt_attempt(self, step_id: str, attempt: int) -> None:
        """The attempt's outcome is unknown (its executor stopped); it will be tried again."""
        self._attempt_in_flight(step_id, attempt)
        self._interrupt_attempt(step_id=step_id, attempt=attempt)

    @event(StepAttemptInterrupted)
    def _interrupt_attempt(self, step_id: str, attempt: int) -> None:
        current = self.steps[step_id].current
        assert current is not None
        current.outcome = "interrupted"
        current.finished_at = self.event_time

    def succeed_step(self, step_id: str, attempt: int, output: Any) -> None:
        self._attempt_in_flight(step_id, attempt)
        self._succeed_step(step_id=step_id, attempt=attempt, output=output)

    @event(StepSucceeded)
    def _succeed_step(self, step_id: str, attempt: int, output: Any) -> None:
        step = self.steps[step_id]
        current = step.current
        assert current is not None
        current.outcome = "succeeded"
        current.output = output
        current.finished_at = self.event_time
        step.status = "SUCCEEDED"
        step.output = output
        step.error = None
        step.finished_at = self.event_time

    def succeed(self) -> None:
        self._require_running()
        unfinished = [s.step_id for s in self.steps.values() if s.status != "SUCCEEDED"]
        if unfinished:
            raise Conflict(f"run {self.id} still has steps to finish: {', '.join(unfinished)}")
        self._succeed(output=self.final_output())

    @event(Succeeded)
    def _succeed(self, output: Any) -> None:
        self.status = "SUCCEEDED"
        self.output = output
        self.error = None
        self.finished_at = self.event_time

    def fail(self, error: str, step_id: str | None = None) -> None:
        """End the run as FAILED: running steps are cancelled, pending ones skipped."""
        if self.is_finished:
            raise Conflict(f"run {self.id} is already {self.status}")
        self._fail(error=error, step_id=step_id)

    @event(Failed)
    def _fail(self, error: str, step_id: str | None) -> None:
        self._close_steps()
        self.status = "FAILED"
        self.error = error
        self.failed_step = step_id
        self.finished_at = self.event_time

    def cancel(self, reason: str = "cancelled by request") -> None:
        """End the run as CANCELLED at once; the executor cancels calls still in flight."""
        refusal = self.cancel_refusal()
        if refusal is not None:
            raise Conflict(refusal)
        self._cancel(reason=reason)

    @event(Cancelled)
    def _cancel(self, reason: str) -> None:
        self._close_steps()
        self.status = "CANCELLED"
        self.error = reason
        self.finished_at = self.event_time

    def retry(self) -> None:
        """Resume a FAILED or CANCELLED run from the steps that did not succeed
        (:meth:`retry_plan` shows beforehand what this does)."""
        refusal = self.retry_refusal()
        if refusal is not None:
            raise Conflict(refusal)
        self._retry(retry_number=self.retry_number + 1)

    @event(Retried)
    def _retry(self, retry_number: int) -> None:
        self.retry_number = retry_number
        self.attempt_watermark = max(
            (a.number for s in self.steps.values() for a in s.attempts), default=0
        )
        for step_id in self.steps_to_rerun():
            step = self.steps[step_id]
            step.status = "PENDING"
            step.error = None
            step.retry_at = None
            step.finished_at = None
        self.status = "PENDING"
        self.error = None
        self.failed_step = None
        self.finished_at = None
        self.round_started_at = None

    # ------------------------------------------------------------------ helpers

    def _close_steps(self) -> None:
        for step in self.steps.values():
            if step.status == "RUNNING":
                step.status = "CANCELLED"
                step.retry_at = None
                step.finished_at = self.event_time
                attempt = step.in_flight
                if attempt is not None:
                    attempt.outcome = "cancelled"
                    attempt.finished_at = self.event_time
            elif step.status == "PENDING":
                step.status = "SKIPPED"

    def _require_running(self) -> None:
        if self.status != "RUNNING":
            raise Conflict(f"run {self.id} is {self.status}, not RUNNING")

    def _step(self, step_id: str) -> StepState:
        try:
            return self.steps[step_id]
        except KeyError:
            raise Conflict(f"run {self.id} has no step {step_id!r}") from None

    def _attempt_in_flight(self, step_id: str, attempt: int) -> None:
        step = self._step(step_id)
        if self.status != "RUNNING" or step.in_flight is None or step.in_flight.number != attempt:
            raise StaleAttempt(
                f"attempt {attempt} of step {step_id!r} is not in flight (run {self.status})"
            )
