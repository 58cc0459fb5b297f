"""Bulk operations: one command, cancel or retry, applied to many runs, one run at a time.

A :class:`BulkOperation` records what was asked: the action, the filters, and the runs they
matched at that moment (the operation never grows or shrinks afterwards). Each run it reaches
gets a :class:`BulkItem` saying how it went:

* ``done`` — the run's own command (``Run.Cancelled``, ``Run.Retried``) was recorded, in the
  same transaction as the item;
* ``skipped`` — the run refused the command (already finished, not FAILED or CANCELLED), with
  the run's own reason;
* ``failed`` — something else stopped it (the run does not exist, it kept changing), with the
  reason.

An item's id is derived from its operation and its run, so the event store accepts one item per
run: an operation resumed after a crash, or driven twice by mistake, never applies its command
to a run twice, and the items are exactly what was done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final, Literal, cast, get_args
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from flowledger.domain.errors import Conflict, FieldProblem, InvalidInput
from flowledger.domain.runs import RETRYABLE_RUN_STATES, TERMINAL, Run

BulkAction = Literal["cancel", "retry"]
BULK_ACTIONS: Final[tuple[str, ...]] = get_args(BulkAction)
ItemOutcome = Literal["done", "skipped", "failed"]
OperationStatus = Literal["RUNNING", "COMPLETED", "STOPPED"]
REASON_MAX_LENGTH: Final = 500
ITEM_NAMESPACE: Final = uuid5(NAMESPACE_URL, "https://flowledger.dev/bulk-items")


def applies_to(action: BulkAction, run_status: str) -> bool:
    """Whether a run in this status accepts the action (the run's own rule, for previews that
    read statuses rather than runs)."""
    if action == "retry":
        return run_status in RETRYABLE_RUN_STATES
    return run_status not in TERMINAL


def bulk_item_id(operation_id: UUID, run_id: UUID) -> UUID:
    return uuid5(ITEM_NAMESPACE, f"{operation_id}/{run_id}")


def cancel_reason(operation_id: UUID, reason: str | None) -> str:
    """What a run cancelled by a bulk operation records as its reason."""
    because = f": {reason}" if reason else ""
    return f"cancelled by bulk operation {operation_id}{because}"


class BulkOperation(Aggregate):
    """A cancel or a retry of the runs some filters matched when it was requested."""

    class Requested(Aggregate.Created):
        action: str
        filters: dict[str, Any]
        """The filters as given (run ids aside), for the record."""
        run_ids: list[str]
        """Every run matched, oldest first: the operation goes through them in this order."""
        reason: str | None
        requested_by: str
        audit_omits: ClassVar[tuple[str, ...]] = ("run_ids",)
        """The audit row keeps the filters; each run touched has an item (and its own row)."""

    class Stopped(Aggregate.Event):
        reason: str

    class Completed(Aggregate.Event):
        pass

    @classmethod
    def request(
        cls,
        action: str,
        run_ids: Sequence[UUID],
        *,
        filters: Mapping[str, Any],
        reason: str | None,
        requested_by: str,
        max_runs: int,
    ) -> BulkOperation:
        """A new operation on ``run_ids``; refused when it names too many runs, the same run
        twice, or an unknown action."""
        problems: list[FieldProblem] = []
        if action not in BULK_ACTIONS:
            problems.append(FieldProblem("action", f"must be one of {', '.join(BULK_ACTIONS)}"))
        if len(run_ids) > max_runs:
            problems.append(
                FieldProblem(
                    "run_ids",
                    f"{len(run_ids)} runs match; at most {max_runs} per bulk operation "
                    "(narrow the filters, or give a limit)",
                )
            )
        if len(set(run_ids)) != len(run_ids):
            problems.append(FieldProblem("run_ids", "names a run more than once"))
        if reason is not None and len(reason) > REASON_MAX_LENGTH:
            problems.append(FieldProblem("reason", f"at most {REASON_MAX_LENGTH} characters"))
        if problems:
            raise InvalidInput(problems)
        return cls(
            action=action,
            filters=dict(filters),
            run_ids=[str(run_id) for run_id in run_ids],
            reason=reason,
            requested_by=requested_by,
        )

    @event(Requested)
    def __init__(
        self,
        action: str,
        filters: dict[str, Any],
        run_ids: list[str],
        reason: str | None,
        requested_by: str,
    ) -> None:
        self.action = cast(BulkAction, action)
        self.filters = filters
        self.run_ids = tuple(UUID(run_id) for run_id in run_ids)
        self.reason = reason
        self.requested_by = requested_by
        self.status: OperationStatus = "RUNNING"
        self.stop_reason: str | None = None

    @property
    def is_running(self) -> bool:
        return self.status == "RUNNING"

    def stop(self, reason: str) -> None:
        """No further run is touched; what was done stays done."""
        self._require_running()
        self._stop(reason=reason)

    @event(Stopped)
    def _stop(self, reason: str) -> None:
        self.status = "STOPPED"
        self.stop_reason = reason

    def complete(self) -> None:
        """Every run has its item."""
        self._require_running()
        self._complete()

    @event(Completed)
    def _complete(self) -> None:
        self.status = "COMPLETED"

    def _require_running(self) -> None:
        if not self.is_running:
            raise Conflict(f"bulk operation {self.id} is {self.status}")


class BulkItem(Aggregate):
    """How one run of one bulk operation went. One per (operation, run): its id says so."""

    class Recorded(Aggregate.Created):
        operation_id: UUID
        run_id: UUID
        outcome: str
        reason: str | None
        run_status: str | None
        """The run's status after the item (None when there is no such run)."""

    @staticmethod
    def create_id(
        operation_id: UUID, run_id: UUID, outcome: str, reason: str | None, run_status: str | None
    ) -> UUID:
        return bulk_item_id(operation_id, run_id)

    @event(Recorded)
    def __init__(
        self,
        operation_id: UUID,
        run_id: UUID,
        outcome: str,
        reason: str | None,
        run_status: str | None,
    ) -> None:
        self.operation_id = operation_id
        self.run_id = run_id
        self.outcome = cast(ItemOutcome, outcome)
        self.reason = reason
        self.run_status = run_status


def apply_to_run(
    operation_id: UUID, action: BulkAction, run: Run, *, reason: str | None = None
) -> BulkItem:
    """Apply the operation's command to ``run`` (which then holds the run's new event, to be
    recorded with the item), or note why the run refused it."""
    try:
        if action == "cancel":
            run.cancel(cancel_reason(operation_id, reason))
        else:
            run.retry()
    except Conflict as refused:
        return BulkItem(operation_id, run.id, "skipped", refused.detail, run.status)
    return BulkItem(operation_id, run.id, "done", None, run.status)


def failed_item(
    operation_id: UUID, run_id: UUID, reason: str, run_status: str | None = None
) -> BulkItem:
    """A run the operation could not act on, and why."""
    return BulkItem(operation_id, run_id, "failed", reason, run_status)
