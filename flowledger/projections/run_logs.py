"""A run's log: one readable line per run event, with a level and the step it concerns."""

from __future__ import annotations

from typing import Any, ClassVar

from flowledger.domain.runs import Run
from flowledger.eventlog.store import metadata_of
from flowledger.projections.projector import AppendOnlyProjection
from flowledger.projections.tables import run_logs


def log_line(event: Any) -> tuple[str, str | None, str]:
    """(level, step id, message) for a run event."""
    if isinstance(event, Run.Requested):
        return (
            "INFO",
            None,
            f"Run requested by {event.triggered_by} for workflow {event.workflow_name!r} "
            f"version {event.workflow_version}",
        )
    if isinstance(event, Run.Started):
        return "INFO", None, "Run started"
    if isinstance(event, Run.StepStarted):
        return "INFO", event.step_id, f"Step {event.step_id!r} started (attempt {event.attempt})"
    if isinstance(event, Run.StepTaskAssigned):
        return "DEBUG", event.step_id, f"Agent accepted the call as task {event.task_id}"
    if isinstance(event, Run.StepAttemptFailed):
        then = (
            f"retrying in {event.retry_in_ms / 1000:g}s"
            if event.retry_in_ms is not None
            else "no retries left"
        )
        return "WARNING", event.step_id, f"Attempt {event.attempt} failed: {event.error}; {then}"
    if isinstance(event, Run.StepAttemptInterrupted):
        return (
            "WARNING",
            event.step_id,
            f"Attempt {event.attempt} was interrupted (its executor stopped); trying again",
        )
    if isinstance(event, Run.StepSucceeded):
        return "INFO", event.step_id, f"Step {event.step_id!r} succeeded (attempt {event.attempt})"
    if isinstance(event, Run.StepFailed):
        return "ERROR", event.step_id, f"Step {event.step_id!r} failed: {event.error}"
    if isinstance(event, Run.Succeeded):
        return "INFO", None, "Run succeeded"
    if isinstance(event, Run.Failed):
        return "ERROR", event.step_id, f"Run failed: {event.error}"
    if isinstance(event, Run.Cancelled):
        return "WARNING", None, f"Run cancelled by {metadata_of(event).actor}: {event.reason}"
    if isinstance(event, Run.Retried):
        return (
            "INFO",
            None,
            f"Run retried (retry {event.retry_number}) by {metadata_of(event).actor}",
        )
    return "INFO", None, type(event).__qualname__


class RunLogsProjection(AppendOnlyProjection):
    name: ClassVar[str] = "run_logs"
    topic_prefixes = ("flowledger.domain.runs:",)
    tables = (run_logs,)
    columns = ("position", "run_id", "level", "step_id", "message", "logged_at")

    def record(self, event: Any, position: int) -> tuple[Any, ...]:
        level, step_id, message = log_line(event)
        return (position, event.originator_id, level, step_id, message, event.timestamp)
