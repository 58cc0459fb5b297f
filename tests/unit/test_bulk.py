"""Bulk operations and their items, as given/when/then specifications."""

from __future__ import annotations

import uuid

import pytest

from flowledger.domain.bulk import (
    BulkAction,
    BulkItem,
    BulkOperation,
    applies_to,
    apply_to_run,
    bulk_item_id,
    failed_item,
)
from flowledger.domain.errors import Conflict, InvalidInput
from tests.support.domain import given, history, names, when
from tests.support.runs import run_in_state

pytestmark = pytest.mark.unit
WORKFLOW = uuid.uuid4()


def requested(action: str = "cancel", count: int = 3, max_runs: int = 10) -> BulkOperation:
    return BulkOperation.request(
        action,
        [uuid.uuid4() for _ in range(count)],
        filters={"status": "FAILED"},
        reason="outage",
        requested_by="key:ops",
        max_runs=max_runs,
    )


def test_an_operation_records_the_runs_it_matched_in_order() -> None:
    operation = requested()
    events = history(operation)
    assert names(events) == ["BulkOperation.Requested"]
    rebuilt = given(events)
    assert rebuilt.run_ids == operation.run_ids and len(rebuilt.run_ids) == 3
    assert (rebuilt.status, rebuilt.action, rebuilt.requested_by) == (
        "RUNNING",
        "cancel",
        "key:ops",
    )
    assert events[0].audit_omits == ("run_ids",)


def test_an_operation_is_refused_past_the_maximum_or_with_a_run_twice() -> None:
    with pytest.raises(InvalidInput, match="11 runs match; at most 10"):
        requested(count=11)
    twice = uuid.uuid4()
    with pytest.raises(InvalidInput, match="more than once"):
        BulkOperation.request(
            "retry", [twice, twice], filters={}, reason=None, requested_by="a", max_runs=5
        )
    with pytest.raises(InvalidInput, match="action"):
        requested(action="delete")


def test_a_stopped_or_completed_operation_does_not_move_again() -> None:
    operation = given(history(requested()))
    assert names(when(operation, lambda o: o.stop("wrong filter"))) == ["BulkOperation.Stopped"]
    assert (operation.status, operation.stop_reason) == ("STOPPED", "wrong filter")
    with pytest.raises(Conflict, match="is STOPPED"):
        operation.complete()
    completed = given(history(requested()))
    when(completed, BulkOperation.complete)
    with pytest.raises(Conflict, match="is COMPLETED"):
        completed.stop("too late")


def test_applying_a_cancel_records_the_runs_event_with_a_done_item() -> None:
    operation_id = uuid.uuid4()
    run = run_in_state("RUNNING", workflow_id=WORKFLOW)
    history(run)
    item = apply_to_run(operation_id, "cancel", run, reason="outage")
    assert names(history(run)) == ["Run.Cancelled"]
    assert run.error == f"cancelled by bulk operation {operation_id}: outage"
    assert (item.outcome, item.reason, item.run_status) == ("done", None, "CANCELLED")
    assert item.id == bulk_item_id(operation_id, run.id)


def test_a_run_that_refuses_is_skipped_with_its_own_reason_and_no_event() -> None:
    run = run_in_state("SUCCEEDED", workflow_id=WORKFLOW)
    history(run)
    item = apply_to_run(uuid.uuid4(), "retry", run)
    assert history(run) == []
    assert item.outcome == "skipped" and item.run_status == "SUCCEEDED"
    assert item.reason == run.retry_refusal()


@pytest.mark.parametrize("status", ["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"])
@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_the_status_rule_of_previews_is_the_runs_own(action: BulkAction, status: str) -> None:
    run = run_in_state(status, workflow_id=WORKFLOW)
    history(run)
    item = apply_to_run(uuid.uuid4(), action, run)
    assert (item.outcome == "done") == applies_to(action, status)


def test_an_item_is_one_per_operation_and_run() -> None:
    operation_id, run_id = uuid.uuid4(), uuid.uuid4()
    first = failed_item(operation_id, run_id, "run not found")
    again = BulkItem(operation_id, run_id, "done", None, "CANCELLED")
    assert first.id == again.id, "the store accepts only one of them"
    assert bulk_item_id(uuid.uuid4(), run_id) != first.id
    assert given(history(first)).reason == "run not found"
