"""Request and response bodies of bulk operations on runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from flowledger.bulk.settings import MAX_RUNS_CEILING
from flowledger.domain.bulk import REASON_MAX_LENGTH, BulkOperation
from flowledger.domain.errors import FieldProblem, InvalidInput
from flowledger.http.pagination import Page
from flowledger.http.runs.schemas import RetryPlanResponse, RunStatus

OperationStatus = Literal["RUNNING", "COMPLETED", "STOPPED"]
ItemOutcome = Literal["pending", "done", "skipped", "failed"]
FILTER_FIELDS = (
    "status",
    "workflow_id",
    "agent_name",
    "triggered_by",
    "created_from",
    "created_to",
)


class BulkRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Which runs, by the filters of `GET /api/v1/runs` and/or a list of run ids (at least one
    of them), and what to record; `dry_run` only answers what would be done."""

    status: RunStatus | None = None
    workflow_id: UUID | None = None
    agent_name: (
        Annotated[
            str,
            Meta(min_length=1, max_length=255, description="Runs with a step calling it."),
        ]
        | None
    ) = None
    triggered_by: Annotated[str, Meta(min_length=1, max_length=255)] | None = None
    created_from: (
        Annotated[datetime, Meta(description="Created at or after (ISO 8601).")] | None
    ) = None
    created_to: Annotated[datetime, Meta(description="Created before (ISO 8601).")] | None = None
    run_ids: (
        Annotated[
            list[UUID],
            Meta(
                min_length=1,
                max_length=MAX_RUNS_CEILING,
                description="These runs (with filters too: those of them that match).",
            ),
        ]
        | None
    ) = None
    limit: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=MAX_RUNS_CEILING,
                description="At most this many of the matching runs, oldest first. Without "
                "it, more matches than the server's maximum per operation is a 422.",
            ),
        ]
        | None
    ) = None
    reason: (
        Annotated[
            str,
            Meta(
                max_length=REASON_MAX_LENGTH,
                description="Why: kept with the operation (and, for a cancel, in each run's "
                "cancellation reason).",
                examples=["agent summarizer was down 09:00-10:00"],
            ),
        ]
        | None
    ) = None
    dry_run: Annotated[
        bool, Meta(description="Only answer which runs would be touched (200); change nothing.")
    ] = False

    def filters(self) -> dict[str, Any]:
        """The filters given, as JSON values (kept with the operation)."""
        given = {field: getattr(self, field) for field in FILTER_FIELDS}
        return {k: v for k, v in msgspec.to_builtins(given).items() if v is not None}

    def check(self) -> None:
        problems: list[FieldProblem] = []
        if not self.filters() and self.run_ids is None:
            problems.append(
                FieldProblem(
                    "body", "give at least one filter (status, workflow_id, ...) or run_ids"
                )
            )
        if self.created_from and self.created_to and self.created_from >= self.created_to:
            problems.append(FieldProblem("created_to", "must be after created_from"))
        if problems:
            raise InvalidInput(problems)


BULK_REQUEST_EXAMPLE = {
    "status": "FAILED",
    "agent_name": "summarizer",
    "created_from": "2026-11-30T09:00:00Z",
    "reason": "summarizer was down",
}


class BulkOperationSummary(msgspec.Struct, kw_only=True):
    """A bulk operation and how far it got: `matched` = `done` + `skipped` + `failed` +
    `pending` (runs not reached yet; after a stop, never)."""

    id: UUID
    action: Literal["cancel", "retry"]
    status: OperationStatus
    filters: dict[str, Any]
    reason: str | None
    matched: int
    done: Annotated[int, Meta(description="Runs cancelled or retried by this operation.")]
    skipped: Annotated[
        int, Meta(description="Runs that refused (already finished, not FAILED or CANCELLED).")
    ]
    failed: Annotated[int, Meta(description="Runs it could not act on (see `failures`).")]
    pending: int
    requested_by: str
    correlation_id: Annotated[
        str | None,
        Meta(description="Every event of the operation carries it: `GET /audit?correlation_id=`."),
    ]
    stop_reason: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def requested(cls, operation: BulkOperation, correlation_id: str) -> BulkOperationSummary:
        """The write side's view right after the request (same shape as the projection's)."""
        return cls(
            id=operation.id,
            action=operation.action,
            status=operation.status,
            filters=operation.filters,
            reason=operation.reason,
            matched=len(operation.run_ids),
            done=0,
            skipped=0,
            failed=0,
            pending=len(operation.run_ids),
            requested_by=operation.requested_by,
            correlation_id=correlation_id,
            stop_reason=operation.stop_reason,
            created_at=operation.created_on,
            updated_at=operation.modified_on,
            finished_at=None,
        )


class BulkItemResponse(msgspec.Struct):
    run_id: UUID
    seq: Annotated[int, Meta(description="The run's place in the operation's order, from 1.")]
    outcome: ItemOutcome
    reason: str | None
    run_status: Annotated[
        str | None, Meta(description="The run's status after the operation reached it.")
    ]
    recorded_at: datetime | None


class BulkOperationResponse(BulkOperationSummary, kw_only=True):
    skipped_by_status: Annotated[
        dict[str, int], Meta(description="Skipped runs by their status.", examples=[{"RUNNING": 2}])
    ]
    failures: Annotated[
        list[BulkItemResponse], Meta(description="The first 100 failed runs, with the reasons.")
    ]


class BulkRunPreview(msgspec.Struct, kw_only=True):
    run_id: UUID
    workflow_id: UUID
    workflow_name: str
    workflow_version: int
    status: RunStatus
    created_at: datetime
    would: Literal["apply", "skip"]
    reason: Annotated[str | None, Meta(description="Why the run would refuse.")]
    retry_plan: Annotated[
        RetryPlanResponse | None, Meta(description="For a retry: what it would redo in this run.")
    ] = None


class BulkPreview(msgspec.Struct, kw_only=True):
    """What the operation would do (`dry_run`): nothing was changed."""

    action: Literal["cancel", "retry"]
    matched: int
    would_apply: int
    would_skip: int
    by_status: Annotated[dict[str, int], Meta(description="Matched runs by status.")]
    max_runs: Annotated[int, Meta(description="The most runs one operation may match.")]
    within_limit: Annotated[bool, Meta(description="False: the real request would be a 422.")]
    unmatched_run_ids: Annotated[
        list[UUID],
        Meta(description="Run ids given that match nothing (or that you may not act on)."),
    ]
    runs: Annotated[
        Page[BulkRunPreview],
        Meta(description="The matched runs in the operation's order, a page at a time."),
    ]


class BulkOperationStopped(msgspec.Struct):
    id: UUID
    status: OperationStatus
    stop_reason: str | None


class StopRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=REASON_MAX_LENGTH)] = "stopped by request"
