"""What a finished call amounts to: an :class:`AgentReply`, or the error its final state means.

A completed task (or a direct message) is a reply; a canceled, failed or rejected task, or one
waiting for input flowledger cannot give, is an :class:`~flowledger.a2a.errors.AgentCallError`
whose ``retryable`` the agent may set in the final status message's (or the task's) metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from a2a.types import TaskState

from flowledger.a2a.errors import AgentCallCancelled, AgentCallError
from flowledger.a2a.output import message_text, metadata_retryable, parts_to_output
from flowledger.a2a.tracker import Tracker, state_name

__all__ = ["AgentReply", "final_reply"]


@dataclass(frozen=True)
class AgentReply:
    """A successful agent call. ``state`` is the final task state (``"completed"``), or
    ``None`` when the agent answered with a direct Message (then ``task_id`` is ``None``)."""

    output: Any
    task_id: str | None
    context_id: str | None
    state: str | None


def final_reply(url: str, tracker: Tracker) -> AgentReply:
    """The reply of a call whose ``tracker`` is final; raises if the task did not complete."""
    task_id = tracker.task_id
    if tracker.message is not None:
        return AgentReply(
            parts_to_output(tracker.reply_parts()),
            tracker.message.task_id or task_id,
            tracker.context_id,
            None,
        )
    state = cast(TaskState, tracker.state)
    name = state_name(state)
    said = message_text(tracker.status_message)
    detail = f": {said}" if said else ""
    hint = metadata_retryable(tracker.status_message, tracker.task_with_metadata)
    if state == TaskState.TASK_STATE_COMPLETED:
        return AgentReply(parts_to_output(tracker.reply_parts()), task_id, tracker.context_id, name)
    if state == TaskState.TASK_STATE_CANCELED:
        raise AgentCallCancelled(
            f"agent task {task_id} at {url} was canceled{detail}", task_id=task_id
        )
    if state == TaskState.TASK_STATE_FAILED:
        raise AgentCallError(
            f"agent task {task_id} at {url} failed{detail}",
            retryable=True if hint is None else hint,
            kind="task_failed",
            task_id=task_id,
            state=name,
        )
    if state == TaskState.TASK_STATE_REJECTED:
        raise AgentCallError(
            f"agent at {url} rejected task {task_id}{detail}",
            retryable=False if hint is None else hint,
            kind="task_rejected",
            task_id=task_id,
            state=name,
        )
    raise AgentCallError(
        f"agent task {task_id} at {url} stopped in state {name}{detail}; "
        "flowledger cannot supply further input",
        retryable=False,
        kind="input_required",
        task_id=task_id,
        state=name,
    )
