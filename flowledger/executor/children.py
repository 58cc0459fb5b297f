"""Sub-workflow steps: the child run of a ``workflow`` step's attempt, started (or found again)
and followed to its end.

A step instance's child has a fixed id (:func:`~flowledger.domain.runs.child_run_id`), so a
driver that stopped between requesting the child and recording it finds the same child again,
and a later attempt of the step (after a retry of the parent) retries the child it started —
resuming it from its own failed steps — instead of starting another. The child pins the
parent's limits, and runs one level deeper (``MAX_LOOP_DEPTH`` bounds how deep runs call
runs).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final
from uuid import UUID

from flowledger.a2a import AgentCallCancelled, AgentCallError
from flowledger.commands.runs import (
    ParentStep,
    RequestRun,
    RetryRun,
    request_run,
    retry_run,
    workflow_named,
)
from flowledger.domain.errors import ConcurrentModification, DomainError
from flowledger.domain.limits import LimitExceeded
from flowledger.domain.runs import RETRYABLE_RUN_STATES, Run, child_run_id
from flowledger.eventlog.store import EventMetadata, EventStore

POLL_S: Final = 1.0
"""While a child runs, its parent's driver looks at it at least this often (news of its end
usually comes sooner, from the executor)."""


class ChildNotStarted(Exception):
    """The child run could not be requested (no such workflow, inactive, invalid input, or
    runs nested deeper than ``MAX_LOOP_DEPTH``): the step fails for good."""


def start_child(
    store: EventStore, parent: Run, step_id: str, step_input: Any, meta: EventMetadata
) -> UUID:
    """Request the child run of the step instance, or find it (retrying it if it FAILED or
    was CANCELLED); its id."""
    child_id = child_run_id(parent.id, step_id)
    existing = store.find(Run, child_id)
    if existing is not None:
        if existing.status in RETRYABLE_RUN_STATES:
            retry_run(store, RetryRun(run_id=child_id), meta)
        return child_id
    depth = parent.depth + 1
    limit = parent.limits.max_loop_depth
    if limit is not None and depth > limit:
        detail = f"step {step_id!r} would start a run {depth} parent runs deep"
        raise ChildNotStarted(str(LimitExceeded("max_loop_depth", limit, detail)))
    options = parent.plan_step(step_id).options
    name = options["workflow_name"]
    command = RequestRun(
        workflow_id=_workflow_id(store, name),
        input_data=step_input if isinstance(step_input, dict) else {"value": step_input},
        version=options.get("version"),
        limits=parent.limits,
        parent=ParentStep(run_id=parent.id, step_id=step_id, depth=depth),
    )
    try:
        request_run(store, command, meta)
    except ConcurrentModification:
        pass  # requested meanwhile (by a stopped driver of the same run): follow it
    except DomainError as error:
        raise ChildNotStarted(f"could not start workflow {name!r}: {error.detail}") from None
    return child_id


async def follow_child(store: EventStore, child_id: UUID, news: asyncio.Event) -> Any:
    """The child's output once it SUCCEEDED; :class:`AgentCallError` if it FAILED or was
    CANCELLED (retryable: the step's retry settings decide)."""
    while True:
        news.clear()
        child = await asyncio.to_thread(store.find, Run, child_id)
        if child is not None and child.is_finished:
            if child.status == "SUCCEEDED":
                return child.output
            message = f"child run {child_id} {child.status}: {child.error}"
            if child.status == "CANCELLED":
                raise AgentCallCancelled(message)
            raise AgentCallError(message, retryable=True, kind="task_failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(news.wait(), timeout=POLL_S)


def _workflow_id(store: EventStore, name: str) -> UUID:
    try:
        return workflow_named(store, name).id
    except DomainError as error:
        raise ChildNotStarted(error.detail) from None
