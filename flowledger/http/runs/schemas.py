"""Request and response bodies for runs (the spec's RunResponse and StepExecutionResponse)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from flowledger.domain.contracts import ContractProblem
from flowledger.domain.dry_run import DryRun
from flowledger.domain.runs import RetryPlan, Run
from flowledger.http.workflows.contracts import AgentContractStatus, ContractProblemBody

RunStatus = Literal["PENDING", "RUNNING", "WAITING", "PAUSED", "SUCCEEDED", "FAILED", "CANCELLED"]
StepStatus = Literal["PENDING", "RUNNING", "WAITING", "SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"]
StepKind = Literal["agent", "if", "switch", "foreach", "do_while", "wait", "signal", "workflow"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

InputData = Annotated[
    dict[str, Any],
    Meta(
        description="The run's input; must satisfy the workflow's input_schema, if it has one.",
        examples=[{"text": "Event sourcing keeps every change."}],
    ),
]


class ExecuteRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Start a run of a workflow."""

    input_data: InputData = msgspec.field(default_factory=dict)
    version: (
        Annotated[int, Meta(ge=1, description="Workflow version to run; default: the current one.")]
        | None
    ) = None
    variables: Annotated[
        dict[str, Any],
        Meta(
            description="Overrides of the workflow's variable defaults.",
            examples=[{"tone": "formal"}],
        ),
    ] = msgspec.field(default_factory=dict)


class TestRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A dry run: nothing is recorded and no agent is called."""

    input_data: InputData = msgspec.field(default_factory=dict)
    version: Annotated[int, Meta(ge=1, le=2_147_483_647)] | None = None
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    mock_outputs: Annotated[
        dict[str, Any],
        Meta(
            description="Output to pretend each step's agent returned, by step id; a step "
            "without one outputs its own input (as the echo agent would).",
            examples=[{"summarize": {"summary": "short"}}],
        ),
    ] = msgspec.field(default_factory=dict)
    check_contracts: Annotated[
        bool,
        Meta(
            description="Read the agents' A2A cards and check each step's resolved input, each "
            "mocked output and each mapping that reads an output against the schemas they "
            "declare (`contract_problems`)."
        ),
    ] = True


class RunAccepted(msgspec.Struct):
    """A run was requested (or, with a repeated Idempotency-Key, found)."""

    run_id: UUID
    execution_id: UUID
    """The same id, under the name the execution API uses."""
    status: RunStatus
    workflow_id: UUID
    workflow_name: str
    workflow_version: int
    created_at: datetime
    replayed: bool = False


class Attempt(msgspec.Struct):
    attempt: int
    outcome: Literal["running", "succeeded", "failed", "cancelled", "interrupted"]
    input_data: Any
    output_data: Any
    error_message: str | None
    task_id: str | None
    started_at: datetime
    completed_at: datetime | None
    child_run_id: Annotated[
        UUID | None, Meta(description="The child run a workflow step's attempt followed.")
    ] = None


class StepExecution(msgspec.Struct):
    id: str
    """``<run_id>:<step_id>``"""
    step_id: Annotated[
        str,
        Meta(
            description="The step instance: the step's id, or inside a map or loop "
            "`<map or loop>[<item or iteration, from 0>].<step>`.",
            examples=["each[2].price"],
        ),
    ]
    agent_name: str | None
    depends_on: list[str]
    status: StepStatus
    attempts: int
    input_data: Any
    output_data: Any
    error_message: str | None
    task_id: str | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    next_retry_at: datetime | None
    attempt_history: list[Attempt]
    kind: StepKind = "agent"
    definition_step_id: Annotated[
        str | None, Meta(description="The step of the definition this instance runs.")
    ] = None
    parent_step_id: Annotated[
        str | None, Meta(description="The map or loop instance this step ran in.")
    ] = None
    index: Annotated[
        int | None, Meta(description="Its item (map) or iteration (loop) there, from 0.")
    ] = None
    items: Annotated[int | None, Meta(description="A map's items; a loop's iterations begun.")] = (
        None
    )
    child_run_id: Annotated[UUID | None, Meta(description="The child run of a workflow step.")] = (
        None
    )
    signal: Annotated[str | None, Meta(description="The signal a signal step waits for.")] = None
    waiting_until: Annotated[
        datetime | None, Meta(description="When a wait ends, or a signal step times out.")
    ] = None


class RunResponse(msgspec.Struct):
    id: UUID
    run_id: UUID
    workflow_id: UUID
    workflow_name: str
    workflow_version: int
    status: RunStatus
    input_data: dict[str, Any]
    variables: dict[str, Any]
    output_data: Any
    error_message: str | None
    failed_step: str | None
    triggered_by: str
    idempotency_key: str | None
    retry_count: int
    step_count: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    cancelled_at: datetime | None
    cancelled_by: str | None
    updated_at: datetime
    version: int
    parent_run_id: Annotated[
        UUID | None, Meta(description="The run whose workflow step started this run.")
    ] = None
    parent_step_id: Annotated[str | None, Meta(description="That run's step instance.")] = None

    @classmethod
    def from_run(cls, run: Run, actor: str | None = None) -> RunResponse:
        """The write side's view right after a command (same shape as the projection's)."""
        finished = run.finished_at
        duration = (
            int((finished - run.started_at).total_seconds() * 1000)
            if finished and run.started_at
            else None
        )
        cancelled = run.status == "CANCELLED"
        return cls(
            id=run.id,
            run_id=run.id,
            workflow_id=run.workflow_id,
            workflow_name=run.workflow_name,
            workflow_version=run.workflow_version,
            status=run.status,
            input_data=run.input_data,
            variables=run.variables,
            output_data=run.output,
            error_message=run.error,
            failed_step=run.failed_step,
            triggered_by=run.triggered_by,
            idempotency_key=run.idempotency_key,
            retry_count=run.retry_number,
            step_count=len(run.steps),
            created_at=run.created_on,
            started_at=run.started_at,
            completed_at=finished,
            duration_ms=duration,
            cancelled_at=finished if cancelled else None,
            cancelled_by=actor if cancelled else None,
            updated_at=run.modified_on,
            version=run.version,
            parent_run_id=run.parent_run_id,
            parent_step_id=run.parent_step_id,
        )


class ExecutionDetail(RunResponse):
    """A run with its step-by-step trace (the execution API's execution details)."""

    steps: list[StepExecution] = msgspec.field(default_factory=list)


class LogEntry(msgspec.Struct):
    id: int
    """The event's global position: entries are in this order."""
    level: LogLevel
    step_id: str | None
    message: str
    timestamp: datetime


class TracedStep(msgspec.Struct):
    order: int
    wave: int
    """Steps of one wave could run in parallel."""
    step_id: str
    agent_name: str | None
    depends_on: list[str]
    status: Literal["SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"]
    input_data: Any
    output_data: Any
    output_source: Annotated[
        Literal["mock", "echo", "default"] | None,
        Meta(
            description="`mock`: from mock_outputs; `echo`: the step's input (no mock); "
            "`default`: a signal step's default."
        ),
    ]
    error_message: str | None
    duration_ms: float
    kind: StepKind = "agent"
    parent_step_id: str | None = None
    index: int | None = None
    note: Annotated[
        str | None,
        Meta(
            description="What a control step decided or would have done: the case chosen, "
            "the items, the time a wait would end.",
            examples=["chose 'then'"],
        ),
    ] = None


class TestResult(msgspec.Struct):
    """A dry run's trace. Nothing was recorded and no agent was called (their cards were read,
    for the contract check)."""

    workflow_id: UUID
    workflow_version: int
    status: Literal["SUCCEEDED", "FAILED"]
    output_data: Any
    steps: list[TracedStep]
    duration_ms: float
    error_message: str | None = None
    contract_problems: Annotated[
        list[ContractProblemBody],
        Meta(
            description="Where a step's input, a mocked output or a mapping does not fit what "
            "an agent's card declares (a warning: the status does not change)."
        ),
    ] = msgspec.field(default_factory=list)
    contracts: Annotated[
        list[AgentContractStatus], Meta(description="What was checked against each agent.")
    ] = msgspec.field(default_factory=list)

    @classmethod
    def from_dry_run(
        cls,
        workflow_id: UUID,
        version: int,
        result: DryRun,
        problems: Sequence[ContractProblem] = (),
        contracts: Sequence[AgentContractStatus] = (),
    ) -> TestResult:
        return cls(
            contract_problems=[ContractProblemBody.of(p) for p in problems],
            contracts=list(contracts),
            workflow_id=workflow_id,
            workflow_version=version,
            status=result.status,
            output_data=result.output,
            duration_ms=result.duration_ms,
            error_message=result.error,
            steps=[
                TracedStep(
                    order=s.order,
                    wave=s.wave,
                    step_id=s.step_id,
                    agent_name=s.agent_name,
                    depends_on=list(s.depends_on),
                    status=s.status,
                    input_data=s.input,
                    output_data=s.output,
                    output_source=s.output_source,
                    error_message=s.error,
                    duration_ms=s.duration_ms,
                    kind=s.kind,  # type: ignore[arg-type]
                    parent_step_id=s.parent_step_id,
                    index=s.index,
                    note=s.note,
                )
                for s in result.steps
            ],
        )


class SignalRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Deliver a signal to a run that waits for it."""

    data: Annotated[
        Any,
        Meta(
            description="What the waiting step outputs (later steps read it as "
            "`$.steps.<step>.output`); must satisfy the step's `schema`, if it has one.",
            examples=[{"approved": True, "by": "ann"}],
        ),
    ] = msgspec.field(default_factory=dict)
    step_id: (
        Annotated[
            str,
            Meta(
                max_length=2000,
                description="The waiting step instance to deliver to, when several wait for "
                "the same signal (default: the one waiting longest).",
                examples=["each[2].approve"],
            ),
        ]
        | None
    ) = None


class SignalAccepted(msgspec.Struct):
    """The signal was delivered: the step that waited for it has its data."""

    run_id: UUID
    signal: str
    step_id: str
    """The step instance that received it."""
    status: RunStatus


class PauseRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(max_length=1000)] = "paused by request"


class RerunStep(msgspec.Struct):
    step_id: str
    agent_name: Annotated[str | None, Meta(description="Null for a step that calls no agent.")]
    status: Annotated[StepStatus, Meta(description="The step's status now.")]


class ReusedStep(msgspec.Struct):
    step_id: str
    agent_name: Annotated[str | None, Meta(description="Null for a step that calls no agent.")]
    output_data: Annotated[Any, Meta(description="The output the retry keeps and feeds on.")]


class PinnedAgent(msgspec.Struct):
    """An agent the steps to run again call: as pinned when the run was requested."""

    agent_name: str
    agent_id: UUID
    url: str
    timeout_ms: int
    retry_config: dict[str, Any]
    current_status: Annotated[
        Literal["active", "inactive", "deleted"] | None,
        Meta(description="The agent's status now (null: it no longer exists)."),
    ]


class RetryPlanResponse(msgspec.Struct):
    """What `POST /runs/{id}/retry` would do now, by the same rule: the steps it would run
    again (each once its dependencies succeed), the outputs it would reuse, with which
    workflow version and agents, or why it would be refused."""

    run_id: UUID
    status: RunStatus
    retryable: bool
    refusal: Annotated[
        str | None, Meta(description="Why a retry would be refused now (409); null if not.")
    ]
    retry_number: Annotated[int, Meta(description="The round the retry would start.")]
    workflow_id: UUID
    workflow_name: str
    workflow_version: Annotated[int, Meta(description="The pinned version a retry keeps.")]
    rerun_steps: list[RerunStep]
    reused_steps: list[ReusedStep]
    agents: list[PinnedAgent]
    warnings: list[str]

    @classmethod
    def of(cls, plan: RetryPlan, statuses: Mapping[UUID, str | None]) -> RetryPlanResponse:
        """``statuses``: each pinned agent's status now, by agent id."""
        agents = [
            PinnedAgent(
                agent_name=name,
                agent_id=binding.agent_id,
                url=binding.url,
                timeout_ms=binding.timeout_ms,
                retry_config=dict(binding.retry_config),
                current_status=_agent_status(statuses.get(binding.agent_id)),
            )
            for name, binding in plan.agents.items()
        ]
        return cls(
            run_id=plan.run_id,
            status=plan.status,
            retryable=plan.allowed,
            refusal=plan.refusal,
            retry_number=plan.retry_number,
            workflow_id=plan.workflow_id,
            workflow_name=plan.workflow_name,
            workflow_version=plan.workflow_version,
            rerun_steps=[RerunStep(s.step_id, s.agent_name, s.status) for s in plan.rerun],
            reused_steps=[ReusedStep(s.step_id, s.agent_name, s.output) for s in plan.reused],
            agents=agents,
            warnings=[
                f"agent {a.agent_name!r} "
                + (f"is {a.current_status}" if a.current_status else "no longer exists")
                + f"; the retry still calls it as pinned ({a.url})"
                for a in agents
                if a.current_status != "active"
            ],
        )


def _agent_status(status: str | None) -> Literal["active", "inactive", "deleted"] | None:
    return status if status in ("active", "inactive", "deleted") else None  # type: ignore[return-value]
