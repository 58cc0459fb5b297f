"""Following one call: what is known of the task (or direct message) that answers it.

The :class:`Tracker` folds the events of a ``SendStreamingMessage`` stream, or the Task read
back with ``GetTask``, into the task's id, state, status message and artifacts (streamed text
chunks of one part are joined), and says when the call is final.
"""

from __future__ import annotations

import logging
from typing import Final

from a2a.types import Artifact, Message, Part, StreamResponse, Task, TaskState

__all__ = ["Tracker", "state_name"]

logger = logging.getLogger(__name__)

_TERMINAL: Final = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    }
)
_INTERRUPTED: Final = frozenset(
    {TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED}
)


def state_name(state: TaskState) -> str:
    """``TASK_STATE_INPUT_REQUIRED`` -> ``"input_required"``."""
    try:
        name = str(TaskState.Name(state))
    except ValueError:
        return f"unknown({int(state)})"
    return name.removeprefix("TASK_STATE_").lower()


class Tracker:
    """What is known of the task (or message) answering one call."""

    def __init__(self) -> None:
        self.task_id: str | None = None
        self.context_id: str | None = None
        self.state: TaskState | None = None
        self.status_message: Message | None = None
        self.task_with_metadata: Task | None = None
        self.artifacts: dict[str, Artifact] = {}
        self.message: Message | None = None

    @property
    def final(self) -> bool:
        return self.message is not None or (
            self.state is not None and (self.state in _TERMINAL or self.state in _INTERRUPTED)
        )

    def _claim(self, task_id: str, context_id: str) -> bool:
        if not task_id:
            return False
        if self.task_id is None:
            self.task_id = task_id
        if task_id != self.task_id:
            logger.warning("ignoring event for task %s (following %s)", task_id, self.task_id)
            return False
        if context_id:
            self.context_id = context_id
        return True

    def apply_task(self, task: Task) -> None:
        if not self._claim(task.id, task.context_id):
            return
        self.state = task.status.state
        self.status_message = task.status.message if task.status.HasField("message") else None
        self.task_with_metadata = task if task.HasField("metadata") else None
        if task.artifacts:
            self.artifacts = {}
            for artifact in task.artifacts:
                self._merge_artifact(artifact, append=False)

    def apply(self, event: StreamResponse) -> None:
        kind = event.WhichOneof("payload")
        if kind == "task":
            self.apply_task(event.task)
        elif kind == "message":
            self.message = event.message
            if event.message.context_id:
                self.context_id = event.message.context_id
        elif kind == "status_update":
            update = event.status_update
            if self._claim(update.task_id, update.context_id):
                self.state = update.status.state
                has_message = update.status.HasField("message")
                self.status_message = update.status.message if has_message else None
        elif kind == "artifact_update":
            update_a = event.artifact_update
            if self._claim(update_a.task_id, update_a.context_id):
                self._merge_artifact(update_a.artifact, append=update_a.append)

    def _merge_artifact(self, artifact: Artifact, *, append: bool) -> None:
        key = artifact.artifact_id or f"#{len(self.artifacts)}"
        existing = self.artifacts.get(key)
        if not append or existing is None:
            copy = Artifact()
            copy.CopyFrom(artifact)
            self.artifacts[key] = copy
            return
        new_parts = list(artifact.parts)
        # Streamed text arrives as appended chunks of one text part: join them.
        if (
            new_parts
            and existing.parts
            and existing.parts[-1].WhichOneof("content") == "text"
            and new_parts[0].WhichOneof("content") == "text"
        ):
            existing.parts[-1].text += new_parts.pop(0).text
        existing.parts.extend(new_parts)

    def reply_parts(self) -> list[Part]:
        if self.message is not None:
            return list(self.message.parts)
        parts = [part for artifact in self.artifacts.values() for part in artifact.parts]
        if not parts and self.status_message is not None:
            parts = list(self.status_message.parts)
        return parts
