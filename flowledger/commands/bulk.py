"""Commands of bulk operations: request one, apply it to one run, stop it, complete it.

Applying an operation to a run is a normal command on that run (``Run.cancel``,
``Run.retry``, with the run's own event, actor and correlation id) recorded in the same append
as the operation's item for that run (see :mod:`flowledger.domain.bulk`). The bulk runner
(``flowledger/bulk/``) calls :func:`apply_bulk_item` once per run; nothing here batches.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from flowledger.commands import Outcome
from flowledger.domain.bulk import (
    BulkAction,
    BulkItem,
    BulkOperation,
    apply_to_run,
    bulk_item_id,
    failed_item,
)
from flowledger.domain.errors import ConcurrentModification
from flowledger.domain.runs import RetryPlan, Run
from flowledger.eventlog.store import EventMetadata, EventStore, metadata_of


class StartBulkOperation(msgspec.Struct, frozen=True, kw_only=True):
    action: str
    run_ids: list[UUID]
    filters: dict[str, Any] = msgspec.field(default_factory=dict)
    reason: str | None = None
    max_runs: int


class ApplyBulkItem(msgspec.Struct, frozen=True, kw_only=True):
    """Apply a bulk operation's command to one of its runs."""

    operation_id: UUID
    action: BulkAction
    run_id: UUID
    reason: str | None = None


class RecordItemFailure(msgspec.Struct, frozen=True, kw_only=True):
    operation_id: UUID
    run_id: UUID
    reason: str


class StopBulkOperation(msgspec.Struct, frozen=True, kw_only=True):
    operation_id: UUID
    reason: str = "stopped by request"


class CompleteBulkOperation(msgspec.Struct, frozen=True, kw_only=True):
    operation_id: UUID


def start_bulk_operation(
    store: EventStore, command: StartBulkOperation, meta: EventMetadata
) -> Outcome[BulkOperation]:
    operation = BulkOperation.request(
        command.action,
        command.run_ids,
        filters=command.filters,
        reason=command.reason,
        requested_by=meta.actor,
        max_runs=command.max_runs,
    )
    return Outcome(operation, store.record(operation, metadata=meta))


def apply_bulk_item(
    store: EventStore, command: ApplyBulkItem, meta: EventMetadata
) -> Outcome[BulkItem]:
    """The run's command and the operation's item for it, in one append. A run that already
    has its item (an operation resumed after a crash) is answered with it, unchanged (no
    position). ConcurrentModification when the run (or the item) changed meanwhile: try again."""
    recorded = store.find(BulkItem, bulk_item_id(command.operation_id, command.run_id))
    if recorded is not None:
        return Outcome(recorded, None)
    run = store.find(Run, command.run_id)
    if run is None:
        item = failed_item(command.operation_id, command.run_id, f"run {command.run_id} not found")
        return Outcome(item, store.record(item, metadata=meta))
    item = apply_to_run(command.operation_id, command.action, run, reason=command.reason)
    return Outcome(item, store.record(run, item, metadata=meta))


def record_item_failure(
    store: EventStore, command: RecordItemFailure, meta: EventMetadata
) -> Outcome[BulkItem]:
    """The run could not be acted on (it kept changing): an item saying why. If the run got
    its item meanwhile, that one stands."""
    item = failed_item(command.operation_id, command.run_id, command.reason)
    try:
        return Outcome(item, store.record(item, metadata=meta))
    except ConcurrentModification:
        return Outcome(store.get(BulkItem, item.id), None)


def stop_bulk_operation(
    store: EventStore, command: StopBulkOperation, meta: EventMetadata
) -> Outcome[BulkOperation]:
    operation = store.get(BulkOperation, command.operation_id, kind="bulk operation")
    operation.stop(command.reason)
    return Outcome(operation, store.record(operation, metadata=meta))


def complete_bulk_operation(
    store: EventStore, command: CompleteBulkOperation, meta: EventMetadata
) -> Outcome[BulkOperation]:
    """Record that every run has its item; nothing when the operation already ended."""
    operation = store.get(BulkOperation, command.operation_id, kind="bulk operation")
    if not operation.is_running:
        return Outcome(operation, None)
    operation.complete()
    return Outcome(operation, store.record(operation, metadata=meta))


def operation_metadata(store: EventStore, operation_id: UUID) -> EventMetadata:
    """Who requested the operation, in which request and trace: every run command it makes
    carries the same stamp, so the audit log shows them under the request's correlation id."""
    for requested in store.events.get(operation_id, lte=1):
        return metadata_of(requested)
    raise LookupError(f"bulk operation {operation_id} not found")


def has_ended(store: EventStore, operation_id: UUID) -> bool:
    """Whether the operation was stopped or completed (any event after the request), without
    loading its (long) list of runs."""
    return any(True for _ in store.events.get(operation_id, gt=1, limit=1))


def preview_item(
    store: EventStore, action: BulkAction, run_id: UUID
) -> tuple[str | None, RetryPlan | None]:
    """What applying the action to the run would do now, by the run's own rules: why it would
    refuse (None: it would apply) and, for a retry, its retry plan. Records nothing."""
    run = store.find(Run, run_id)
    if run is None:
        return f"run {run_id} not found", None
    if action == "retry":
        plan = run.retry_plan()
        return plan.refusal, plan
    return run.cancel_refusal(), None
