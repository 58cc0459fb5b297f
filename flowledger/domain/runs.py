"""Runs: one execution of a pinned workflow plan, step by step, with every attempt recorded.

Run states: PENDING → RUNNING → SUCCEEDED | FAILED | CANCELLED, with two more while it runs:
WAITING (parked: nothing is in flight and it waits for a time, a signal or a child run) and
PAUSED (an operator paused it: no step starts until it is resumed; calls in flight finish).
Step states: PENDING, RUNNING, WAITING (a wait or a signal), SUCCEEDED, FAILED, SKIPPED,
CANCELLED. Nothing leaves a terminal state except by a retry of the run, which puts every step
that did not succeed back to PENDING (maps and loops back to RUNNING, keeping the items and
iterations that succeeded) and keeps the outputs of the ones that did.

Steps inside a map or a loop run as *instances*, one per item or iteration (see
:mod:`flowledger.domain.run_state` for their keys); :meth:`Run.advance` records every
control-flow decision the run can take by itself (:mod:`flowledger.domain.progress`), and the
executor starts the agent calls and child runs :meth:`Run.ready_calls` lists.

The executor drives a run by calling these commands; each one checks that it still makes sense
(the run may have been cancelled meanwhile) and raises otherwise, recording nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from flowledger.domain.agents import RetryPolicy
from flowledger.domain.errors import Conflict, InvalidInput, NotFound
from flowledger.domain.limits import RunLimits
from flowledger.domain.mappings import Context
from flowledger.domain.plans import CALL_KINDS, StepPlan, WorkflowPlan
from flowledger.domain.progress import (
    AwaitSignal,
    Choose,
    Complete,
    Decision,
    FailRun,
    FailStep,
    Progress,
    Skip,
    StartIteration,
    StartMap,
    StartWait,
    Succeed,
    TimeOut,
)
from flowledger.domain.run_state import (
    AgentBinding,
    Attempt,
    AttemptOutcome,
    CompositeState,
    StepState,
    StepStatus,
    split_key,
    split_scope,
)
from flowledger.domain.step_kinds import data_problems

__all__ = [
    "RETRYABLE_RUN_STATES",
    "TERMINAL",
    "AgentBinding",
    "Attempt",
    "AttemptOutcome",
    "Run",
    "RunStatus",
    "StaleAttempt",
    "StepState",
    "StepStatus",
    "child_run_id",
]

RunStatus = Literal["PENDING", "RUNNING", "WAITING", "PAUSED", "SUCCEEDED", "FAILED", "CANCELLED"]

TERMINAL: Final = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
RETRYABLE_RUN_STATES: Final = frozenset({"FAILED", "CANCELLED"})
PAUSABLE: Final = frozenset({"PENDING", "RUNNING", "WAITING"})
RECORDING: Final = frozenset({"RUNNING", "PAUSED"})
"""States in which outcomes of calls in flight are recorded (a paused run's calls finish)."""
MAX_DECISION_PASSES: Final = 10_000
_CHILD_NAMESPACE: Final = UUID("6c1f7f1e-8a5e-4c8e-9a43-0b6d5f0c2a71")


def child_run_id(parent_run_id: UUID, step_key: str) -> UUID:
    """The id of the child run a ``workflow`` step instance runs: the same for every attempt,
    so that a retried attempt finds (and retries) the child it started."""
    return uuid.uuid5(_CHILD_NAMESPACE, f"{parent_run_id}:{step_key}")


class StaleAttempt(Conflict):
    """A result for an attempt that is no longer in flight (the run moved on)."""


@dataclass(frozen=True)
class PlannedStep:
    """A step in a :class:`RetryPlan`, as it is now."""

    step_id: str
    agent_name: str | None
    """None for a step that calls no agent (a branch, a map, a wait...)."""
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
        limits: dict[str, Any] | None
        """The limits pinned for the run (None: requested before limits existed)."""
        parent_run_id: UUID | None
        parent_step_id: str | None
        """The run and step instance that started this run as a child (sub-workflow)."""
        depth: int
        """How many parent runs this run has."""
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Runs requested before control flow: no limits, no parent."""
            state.update(limits=None, parent_run_id=None, parent_step_id=None, depth=0)

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

    class ChildRunStarted(Event):
        """A ``workflow`` step's attempt follows this child run."""

        step_id: str
        attempt: int
        child_run_id: UUID

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

    class BranchChosen(Event):
        """An ``if`` or ``switch`` chose ``case`` (None: the switch's default) from ``value``."""

        step_id: str
        case: str | None
        value: Any

    class StepsSkipped(Event):
        step_ids: list[str]
        by_branch: bool
        """True: a branch did not lead there (a retry keeps them skipped); False: the item of
        a map that continues on errors failed (a retry runs them)."""

    class MapStarted(Event):
        step_id: str
        items: list[Any]

    class IterationStarted(Event):
        step_id: str
        index: int

    class StepCompleted(Event):
        """A map, a loop or a wait is done."""

        step_id: str
        output: Any

    class WaitStarted(Event):
        step_id: str
        until: datetime

    class SignalAwaited(Event):
        step_id: str
        signal: str
        timeout_at: datetime | None

    class SignalReceived(Event):
        step_id: str
        signal: str
        data: Any

    class SignalTimedOut(Event):
        step_id: str
        signal: str
        default_used: bool
        output: Any
        """The step's default data, its output when ``default_used``."""

    class Succeeded(Event):
        output: Any

    class Failed(Event):
        error: str
        step_id: str | None

    class Cancelled(Event):
        reason: str

    class Retried(Event):
        retry_number: int
        reset: list[str] | None
        """Step instances put back to PENDING (None on runs retried before control flow)."""
        resumed: list[str] | None
        """Maps and loops put back to RUNNING."""
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.update(reset=None, resumed=None)

    class Paused(Event):
        reason: str

    class Resumed(Event):
        status: str
        """What the run is again: PENDING if it had not started, RUNNING otherwise."""

    class Suspended(Event):
        """Nothing is in flight and the run waits: for ``wake_at`` (None: for a signal or a
        child run with no deadline)."""

        wake_at: datetime | None

    class Woken(Event):
        pass

    @staticmethod
    def create_id(parent_run_id: UUID | None = None, parent_step_id: str | None = None) -> UUID:
        """A new run's id: a child run's is fixed by its parent's step instance."""
        if parent_run_id is not None and parent_step_id is not None:
            return child_run_id(parent_run_id, parent_step_id)
        return uuid.uuid4()

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
        limits: dict[str, Any] | None = None,
        parent_run_id: UUID | None = None,
        parent_step_id: str | None = None,
        depth: int = 0,
    ) -> None:
        self.workflow_id = workflow_id
        self.workflow_name = workflow_name
        self.workflow_version = workflow_version
        self.plan = WorkflowPlan.from_dict(plan)
        """The pinned plan, parsed once from the event that carries it."""
        self.bindings = {name: AgentBinding.from_dict(agent) for name, agent in agents.items()}
        """The pinned agents, parsed once from the event that carries them (the executor reads
        a step's several times)."""
        self.input_data = input_data
        self.variables = variables
        self.triggered_by = triggered_by
        self.idempotency_key = idempotency_key
        self.limits = RunLimits.from_dict(limits)
        self.parent_run_id = parent_run_id
        self.parent_step_id = parent_step_id
        self.depth = depth
        self.status: RunStatus = "PENDING"
        self.steps: dict[str, StepState] = {
            s.step_id: StepState(s.step_id, s.agent_name, kind=s.kind) for s in self.plan.steps
        }
        """Every step instance: the top-level steps from the start, the others once begun."""
        self.composites: dict[str, CompositeState] = {}
        """Maps and loops that have started, by instance key."""
        self.operations = 0
        """Step instances begun (``MAX_TOTAL_OPERATIONS`` counts them)."""
        self.active_calls: dict[str, None] = {}
        """Agent and workflow instances RUNNING (in flight, or waiting to be tried again)."""
        self.waiting: dict[str, None] = {}
        """Waits and signals WAITING, in the order they began."""
        self.output: Any = None
        self.error: str | None = None
        self.failed_step: str | None = None
        self.retry_number = 0
        self.round_started_at: datetime | None = None
        """When the current round began running: the workflow timeout counts from here."""
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.paused_from: RunStatus | None = None
        self.paused_at: datetime | None = None
        self.wake_at: datetime | None = None
        """While WAITING: when the run must be looked at again (None: on news only)."""
        self.attempt_watermark = 0
        """Highest attempt number before the current round (retries count per round)."""
        self.event_time: datetime = self.created_on
        """The time of the event being applied (set before each event's method body runs)."""

    # ------------------------------------------------------------------ queries

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def timeout_ms(self) -> int | None:
        """The longest the run may take: the workflow's, or the limit's default."""
        return self.plan.timeout_ms or self.limits.workflow_timeout_ms

    @property
    def max_parallel(self) -> int | None:
        """Most calls of the run in flight at once."""
        return self.plan.max_parallel_steps or self.limits.max_parallel_nodes

    def progress(self, now: datetime | None = None) -> Progress:
        """The control-flow rules over the run as it is (``now``: for waits and timeouts)."""
        return Progress(self, now or self.event_time)

    def binding(self, step_id: str) -> AgentBinding:
        """The agent a step instance calls (from its plan step: an instance of a map or loop
        body has no state until it begins, and the executor reads its agent before that)."""
        name = self.plan_step(step_id).agent_name
        assert name is not None, f"{step_id} calls no agent"
        return self.bindings[name]

    def call_timeout_ms(self, step_id: str) -> int:
        return self.plan_step(step_id).timeout_ms or self.binding(step_id).timeout_ms

    def retry_policy(self, step_id: str) -> RetryPolicy:
        step = self.plan_step(step_id)
        if step.kind == "workflow":
            base = RetryPolicy(max_retries=0)
        else:
            base = RetryPolicy.from_dict(self.binding(step_id).retry_config)
        policy, _ = RetryPolicy.parse(step.retry, base=base)
        return policy

    def plan_step(self, step_id: str) -> StepPlan:
        """The plan step an instance runs."""
        return self.plan.step(split_key(step_id)[1])

    def failed_attempts(self, step_id: str) -> int:
        """Attempts of this step in the current round that count against its retries."""
        round_attempts = self.steps[step_id].attempts_this_round(self.attempt_watermark)
        return sum(1 for a in round_attempts if a.outcome == "failed")

    def outputs(self) -> dict[str, Any]:
        return {s.step_id: s.output for s in self.steps.values() if s.status == "SUCCEEDED"}

    def in_flight(self) -> list[str]:
        return [key for key in self.active_calls if self.steps[key].in_flight is not None]

    def ready_calls(self) -> list[str]:
        """Agent calls and child runs that may start now (see :class:`Progress`)."""
        return self.progress().ready_calls()

    def ready_steps(self) -> list[str]:
        """The calls that may start now (the name of a plain DAG's rule)."""
        return self.ready_calls()

    def awaiting_retry(self) -> list[str]:
        """Running calls whose last attempt failed (or was interrupted) and that go again."""
        return [
            key
            for key in self.active_calls
            if (current := self.steps[key].current) is not None and current.outcome != "running"
        ]

    def context(self, step_id: str) -> Context:
        """What a step instance's mapping reads."""
        return self.progress().context(step_id)

    def steps_to_rerun(self) -> list[str]:
        """The retry rule: every step instance that did not succeed runs again (maps and loops
        resume, keeping their items and iterations that succeeded; a branch keeps the path it
        took), in plan order; the steps that succeeded keep their outputs (see :meth:`retry`
        and :meth:`retry_plan`)."""
        reset, resumed = self._to_retry()
        again = {*reset, *resumed}
        return [key for key, step in self.steps.items() if key in again or step.status == "PENDING"]

    def retry_refusal(self) -> str | None:
        """Why :meth:`retry` would refuse now, or None."""
        if self.status not in RETRYABLE_RUN_STATES:
            return f"run {self.id} is {self.status}; only FAILED or CANCELLED runs retry"
        return None

    def retry_plan(self) -> RetryPlan:
        """What :meth:`retry` would do now: the steps it would run again, the outputs it would
        reuse, with which workflow version and agents, or why it would be refused."""
        rerun = self.steps_to_rerun()
        agent_names = dict.fromkeys(
            name for step_id in rerun if (name := self.steps[step_id].agent_name) is not None
        )
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
                if s.status == "SUCCEEDED"
            ),
            agents={name: self.bindings[name] for name in agent_names},
        )

    def cancel_refusal(self) -> str | None:
        """Why :meth:`cancel` would refuse now, or None."""
        if self.is_finished:
            return f"run {self.id} is already {self.status} and cannot be cancelled"
        return None

    def next_wake(self) -> datetime | None:
        """The earliest time a wait ends, a signal times out or a retry is due."""
        moments = [self.steps[key].wake_at for key in self.waiting]
        moments += [self.steps[key].retry_at for key in self.active_calls]
        found = [moment for moment in moments if moment is not None]
        return min(found, default=None)

    def children_in_flight(self) -> dict[str, UUID]:
        """Each ``workflow`` step instance whose attempt follows a child run, and the child."""
        found = {}
        for key in self.in_flight():
            attempt = self.steps[key].in_flight
            if attempt is not None and self.steps[key].kind == "workflow":
                found[key] = attempt.child_run_id or child_run_id(self.id, key)
        return found

    def children_cut_off(self) -> list[UUID]:
        """The child runs the ``workflow`` steps were following when the run ended (their
        attempts were cancelled with it)."""
        found = []
        for step in self.steps.values():
            attempt = step.current
            if step.kind == "workflow" and attempt is not None and attempt.outcome == "cancelled":
                found.append(attempt.child_run_id or child_run_id(self.id, step.step_id))
        return found

    def final_output(self) -> Any:
        """The output of the step nobody depends on; of several such steps, all by id (steps
        a branch skipped are left out)."""
        return self.progress().block_output("")

    # ------------------------------------------------------------------ commands: the run

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

    def advance(self, now: datetime) -> None:
        """Record every decision the run can take by itself now: branches, skips, maps and
        loops starting, going round or ending, waits and signals starting and timing out,
        failures spreading, the run succeeding (see :class:`Progress`)."""
        for _ in range(MAX_DECISION_PASSES):
            decisions = Progress(self, now).decisions()
            if not decisions:
                return
            for decision in decisions:
                if self.status != "RUNNING":
                    return
                self._take(decision)
        raise AssertionError(f"run {self.id} kept deciding")  # pragma: no cover

    def _take(self, decision: Decision) -> None:
        if isinstance(decision, Skip):
            self._skip(step_ids=list(decision.keys), by_branch=decision.by_branch)
        elif isinstance(decision, Choose):
            self._choose(step_id=decision.key, case=decision.case, value=decision.value)
        elif isinstance(decision, StartMap):
            self._start_map(step_id=decision.key, items=decision.items)
        elif isinstance(decision, StartIteration):
            self._start_iteration(step_id=decision.key, index=decision.index)
        elif isinstance(decision, Complete):
            self._complete(step_id=decision.key, output=decision.output)
        else:
            self._take_waiting_or_ending(decision)

    def _take_waiting_or_ending(self, decision: Decision) -> None:
        if isinstance(decision, StartWait):
            self._start_wait(step_id=decision.key, until=decision.until)
        elif isinstance(decision, AwaitSignal):
            self._await_signal(
                step_id=decision.key, signal=decision.signal, timeout_at=decision.timeout_at
            )
        elif isinstance(decision, TimeOut):
            signal = self.steps[decision.key].signal or ""
            options = self.plan_step(decision.key).options
            self._time_out(
                step_id=decision.key,
                signal=signal,
                default_used="default" in options,
                output=options.get("default"),
            )
        elif isinstance(decision, FailStep):
            self._fail_step(step_id=decision.key, error=decision.error)
        elif isinstance(decision, FailRun):
            self._fail(error=decision.error, step_id=decision.step_id)
        elif isinstance(decision, Succeed):
            self._succeed(output=decision.output)

    def succeed(self) -> None:
        self._require_running()
        status, output = self.progress().scope_outcome("")
        if status != "done":
            unfinished = [s.step_id for s in self.plan.steps if not self.steps[s.step_id].settled]
            raise Conflict(f"run {self.id} still has steps to finish: {', '.join(unfinished)}")
        self._succeed(output=output)

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
        reset, resumed = self._to_retry()
        self._retry(retry_number=self.retry_number + 1, reset=reset, resumed=resumed)

    @event(Retried)
    def _retry(self, retry_number: int, reset: list[str] | None, resumed: list[str] | None) -> None:
        if reset is None or resumed is None:
            reset, resumed = self._to_retry()
        self.retry_number = retry_number
        self.attempt_watermark = max(
            (a.number for s in self.steps.values() for a in s.attempts), default=0
        )
        for key in reset:
            step = self.steps[key]
            step.status = "PENDING"
            step.error = None
            step.retry_at = None
            step.finished_at = None
            step.wake_at = None
        for key in resumed:
            step = self.steps[key]
            step.status = "RUNNING"
            step.error = None
            step.finished_at = None
            composite = self.composites[key]
            composite.active.update(composite.errors)
            composite.errors.clear()
        self.status = "PENDING"
        self.error = None
        self.failed_step = None
        self.finished_at = None
        self.round_started_at = None

    def _to_retry(self) -> tuple[list[str], list[str]]:
        """The instances a retry puts back to PENDING, and the maps and loops it resumes."""
        reset, resumed = [], []
        for key, step in self.steps.items():
            if step.status == "SUCCEEDED" or (step.status == "SKIPPED" and step.skipped_by_branch):
                continue
            if key in self.composites:
                resumed.append(key)
            elif step.status != "PENDING":
                reset.append(key)
        return reset, resumed

    def pause(self, reason: str = "paused by request") -> None:
        """No step starts until :meth:`resume`; calls in flight finish and are recorded."""
        if self.status not in PAUSABLE:
            raise Conflict(f"run {self.id} is {self.status} and cannot be paused")
        self._pause(reason=reason)

    @event(Paused)
    def _pause(self, reason: str) -> None:
        self.paused_from = self.status
        self.paused_at = self.event_time
        self.status = "PAUSED"

    def resume(self) -> None:
        if self.status != "PAUSED":
            raise Conflict(f"run {self.id} is {self.status}, not PAUSED")
        self._resume(status="PENDING" if self.paused_from == "PENDING" else "RUNNING")

    @event(Resumed)
    def _resume(self, status: RunStatus) -> None:
        # The time paused does not count against the workflow timeout.
        if self.round_started_at is not None and self.paused_at is not None:
            self.round_started_at += self.event_time - self.paused_at
        self.status = status
        self.paused_from = None
        self.paused_at = None
        self.wake_at = None

    def suspend(self, wake_at: datetime | None, now: datetime) -> None:
        """Park the run (WAITING) until ``wake_at`` or news: nothing is in flight but child
        runs, and nothing can start or be decided ``now``."""
        self._require_running()
        busy = [key for key in self.in_flight() if self.steps[key].kind != "workflow"]
        if busy or self.awaiting_retry() or self.ready_calls() or self.progress(now).decisions():
            raise Conflict(f"run {self.id} has work to do and cannot wait")
        self._suspend(wake_at=wake_at)

    @event(Suspended)
    def _suspend(self, wake_at: datetime | None) -> None:
        self.status = "WAITING"
        self.wake_at = wake_at

    def wake(self) -> None:
        if self.status != "WAITING":
            raise Conflict(f"run {self.id} is {self.status}, not WAITING")
        self._wake()

    @event(Woken)
    def _wake(self) -> None:
        self.status = "RUNNING"
        self.wake_at = None

    # ------------------------------------------------------------------ commands: calls

    def start_step(self, step_id: str, step_input: Any) -> int:
        """Start the next attempt of an agent or workflow step; returns the attempt number."""
        self._require_running()
        step = self._step(step_id)
        if step.kind not in CALL_KINDS:
            raise Conflict(f"step {step_id!r} is a {step.kind} step; the run decides it")
        if step.in_flight is not None:
            raise Conflict(f"step {step_id!r} already has attempt {step.in_flight.number} running")
        if step.status == "PENDING":
            self._check_ready(step_id)
            limit = self.max_parallel
            if limit is not None and len(self.in_flight()) >= limit:
                raise Conflict(f"run {self.id} already has {limit} steps running")
        elif step.status != "RUNNING":
            raise Conflict(f"step {step_id!r} is {step.status}")
        attempt = (step.current.number if step.current else self.attempt_watermark) + 1
        self._start_step(step_id=step_id, attempt=attempt, input=step_input)
        return attempt

    @event(StepStarted)
    def _start_step(self, step_id: str, attempt: int, input: Any) -> None:
        step = self._materialise(step_id)
        self._begin(step)
        step.status = "RUNNING"
        step.retry_at = None
        step.attempts.append(Attempt(attempt, input, started_at=self.event_time))
        self.active_calls[step_id] = None

    def assign_task(self, step_id: str, attempt: int, task_id: str) -> None:
        self._attempt_in_flight(step_id, attempt)
        self._assign_task(step_id=step_id, attempt=attempt, task_id=task_id)

    @event(StepTaskAssigned)
    def _assign_task(self, step_id: str, attempt: int, task_id: str) -> None:
        current = self.steps[step_id].current
        assert current is not None
        current.task_id = task_id

    def follow_child(self, step_id: str, attempt: int, child: UUID) -> None:
        """The attempt of a ``workflow`` step follows the child run ``child``."""
        self._attempt_in_flight(step_id, attempt)
        self._follow_child(step_id=step_id, attempt=attempt, child_run_id=child)

    @event(ChildRunStarted)
    def _follow_child(self, step_id: str, attempt: int, child_run_id: UUID) -> None:
        current = self.steps[step_id].current
        assert current is not None
        current.child_run_id = child_run_id

    def fail_attempt(self, step_id: str, attempt: int, error: str, retry_in_ms: int | None) -> None:
        """Record a failed attempt; with ``retry_in_ms`` the step goes again after that delay,
        without it the step fails (and the run with it, or the map or loop around it: see
        :meth:`advance`)."""
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

    def fail_step(self, step_id: str, error: str) -> None:
        """Fail a step that could not even be tried (its input could not be made)."""
        self._require_running()
        step = self._step(step_id)
        if step.status not in ("PENDING", "RUNNING") or step.in_flight is not None:
            raise Conflict(f"step {step_id!r} is {step.status}")
        self._fail_step(step_id=step_id, error=error)

    @event(StepFailed)
    def _fail_step(self, step_id: str, error: str) -> None:
        step = self._materialise(step_id)
        step.status = "FAILED"
        step.error = error
        step.retry_at = None
        step.finished_at = self.event_time
        self._settle(step)

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
        self._finish(step, output)

    # ------------------------------------------------------------------ commands: signals

    def receive_signal(self, signal: str, data: Any, step_id: str | None = None) -> str:
        """Deliver a signal to the step instance waiting for it (the one waiting longest, or
        ``step_id``); returns that instance's key."""
        if self.is_finished:
            raise Conflict(f"run {self.id} is {self.status}")
        declared = [
            s
            for s in self.plan.every_step()
            if s.kind == "signal" and s.options["signal"] == signal
        ]
        if not declared:
            raise NotFound(f"run {self.id} has no signal named {signal!r}")
        waiting = [key for key in self.waiting if self.steps[key].signal == signal]
        if step_id is not None:
            if step_id not in waiting:
                raise Conflict(f"step {step_id!r} is not waiting for signal {signal!r}")
            waiting = [step_id]
        if not waiting:
            raise Conflict(f"no step of run {self.id} is waiting for signal {signal!r} now")
        key = waiting[0]
        schema = self.plan_step(key).options.get("schema")
        if schema is not None:
            problems = data_problems(schema, data, "data")
            if problems:
                raise InvalidInput(problems, detail=f"the data of signal {signal!r} is invalid")
        self._receive_signal(step_id=key, signal=signal, data=data)
        return key

    @event(SignalReceived)
    def _receive_signal(self, step_id: str, signal: str, data: Any) -> None:
        self._finish(self.steps[step_id], data)

    # ------------------------------------------------------------------ decisions

    @event(BranchChosen)
    def _choose(self, step_id: str, case: str | None, value: Any) -> None:
        step = self._materialise(step_id)
        self._begin(step)
        step.case = case
        step.input = value
        self._finish(step, {"case": case, "value": value})

    @event(StepsSkipped)
    def _skip(self, step_ids: list[str], by_branch: bool) -> None:
        for key in step_ids:
            step = self._materialise(key)
            step.status = "SKIPPED"
            step.skipped_by_branch = by_branch
            self._settle(step)

    @event(MapStarted)
    def _start_map(self, step_id: str, items: list[Any]) -> None:
        step = self._materialise(step_id)
        self._begin(step)
        step.status = "RUNNING"
        step.input = items
        self.composites[step_id] = CompositeState(step_id, "foreach", items=list(items))

    @event(IterationStarted)
    def _start_iteration(self, step_id: str, index: int) -> None:
        step = self._materialise(step_id)
        if index == 0:
            self._begin(step)
            step.status = "RUNNING"
            self.composites[step_id] = CompositeState(step_id, "do_while")
        composite = self.composites[step_id]
        composite.started = index + 1
        composite.active.add(index)

    @event(StepCompleted)
    def _complete(self, step_id: str, output: Any) -> None:
        step = self.steps[step_id]
        if step.kind == "do_while":
            step.input = {"iterations": self.composites[step_id].started}
        self._finish(step, output)

    @event(WaitStarted)
    def _start_wait(self, step_id: str, until: datetime) -> None:
        step = self._materialise(step_id)
        self._begin(step)
        step.status = "WAITING"
        step.wake_at = until
        step.input = {"until": until.isoformat()}
        self.waiting[step_id] = None

    @event(SignalAwaited)
    def _await_signal(self, step_id: str, signal: str, timeout_at: datetime | None) -> None:
        step = self._materialise(step_id)
        self._begin(step)
        step.status = "WAITING"
        step.signal = signal
        step.wake_at = timeout_at
        self.waiting[step_id] = None

    @event(SignalTimedOut)
    def _time_out(self, step_id: str, signal: str, default_used: bool, output: Any) -> None:
        step = self.steps[step_id]
        if default_used:
            self._finish(step, output)
            return
        self.waiting.pop(step_id, None)
        step.status = "FAILED"
        step.error = f"no signal {signal!r} came within {self.plan_step(step_id).timeout_ms} ms"
        step.finished_at = self.event_time
        self._settle(step)

    # ------------------------------------------------------------------ helpers

    def _step(self, step_id: str) -> StepState:
        """A step instance, begun or not; Conflict if the run has no such instance."""
        if step_id in self.steps:
            return self.steps[step_id]
        scope, plan_id = split_key(step_id)
        try:
            plan = self.plan.step(plan_id)
            composite_key, index = split_scope(scope) if scope else ("", -1)
        except (KeyError, ValueError):
            raise Conflict(f"run {self.id} has no step {step_id!r}") from None
        composite = self.composites.get(composite_key)
        in_body = (
            composite is not None and self.plan.parent_of(plan_id) == split_key(composite_key)[1]
        )
        bound = len(composite.items) if composite and composite.kind == "foreach" else None
        if not in_body or composite is None or index < 0 or (bound is not None and index >= bound):
            raise Conflict(f"run {self.id} has no step {step_id!r}")
        if composite.kind == "do_while" and index >= composite.started:
            raise Conflict(f"run {self.id} has no step {step_id!r} yet")
        return StepState(step_id, plan.agent_name, kind=plan.kind)

    def _materialise(self, step_id: str) -> StepState:
        """The instance's state, created (and its item or iteration begun) on first use."""
        step = self.steps.get(step_id)
        if step is not None:
            return step
        plan = self.plan_step(step_id)
        step = StepState(step_id, plan.agent_name, kind=plan.kind)
        self.steps[step_id] = step
        scope = step.scope
        if scope:
            composite_key, index = split_scope(scope)
            composite = self.composites[composite_key]
            if index >= composite.started:
                composite.started = index + 1
            if index not in composite.outputs and index not in composite.errors:
                composite.active.add(index)
        return step

    def _begin(self, step: StepState) -> None:
        if step.started_at is None:
            step.started_at = self.event_time
            self.operations += 1

    def _finish(self, step: StepState, output: Any) -> None:
        """A step instance SUCCEEDED with ``output``."""
        step.status = "SUCCEEDED"
        step.output = output
        step.error = None
        step.retry_at = None
        step.wake_at = None
        step.finished_at = self.event_time
        self.waiting.pop(step.step_id, None)
        self._settle(step)

    def _settle(self, step: StepState) -> None:
        """A step instance ended: it no longer runs, and its item or iteration may be done."""
        self.active_calls.pop(step.step_id, None)
        self.waiting.pop(step.step_id, None)
        scope = step.scope
        if not scope:
            return
        composite_key, index = split_scope(scope)
        composite = self.composites.get(composite_key)
        if composite is None:
            return
        status, value = self.progress().scope_outcome(scope)
        if status == "done":
            composite.outputs[index] = value
            composite.active.discard(index)
        elif status == "failed" and composite.kind == "foreach":
            plan = self.plan.step(split_key(composite_key)[1])
            if plan.options.get("continue_on_error"):
                composite.errors[index] = value
                composite.active.discard(index)

    def _close_steps(self) -> None:
        for step in self.steps.values():
            if step.status in ("RUNNING", "WAITING"):
                step.status = "CANCELLED"
                step.retry_at = None
                step.wake_at = None
                step.finished_at = self.event_time
                attempt = step.in_flight
                if attempt is not None:
                    attempt.outcome = "cancelled"
                    attempt.finished_at = self.event_time
            elif step.status == "PENDING":
                step.status = "SKIPPED"
        self.active_calls.clear()
        self.waiting.clear()
        self.wake_at = None
        self.paused_from = None
        self.paused_at = None

    def _check_ready(self, step_id: str) -> None:
        scope, plan_id = split_key(step_id)
        plan = self.plan.step(plan_id)
        verdict = self.progress().verdict(scope, plan, {})
        if verdict == "ready":
            return
        if verdict == "skip":
            raise Conflict(f"step {step_id!r} is on a path a branch did not take")
        missing = [
            dep
            for dep in plan.depends_on
            if (state := self.steps.get(f"{scope}.{dep}" if scope else dep)) is None
            or state.status not in ("SUCCEEDED", "SKIPPED")
        ]
        raise Conflict(f"step {step_id!r} waits for {', '.join(missing)}")

    def _require_running(self) -> None:
        if self.status != "RUNNING":
            raise Conflict(f"run {self.id} is {self.status}, not RUNNING")

    def _attempt_in_flight(self, step_id: str, attempt: int) -> None:
        step = self.steps.get(step_id)
        if (
            self.status not in RECORDING
            or step is None
            or step.in_flight is None
            or step.in_flight.number != attempt
        ):
            raise StaleAttempt(
                f"attempt {attempt} of step {step_id!r} is not in flight (run {self.status})"
            )
