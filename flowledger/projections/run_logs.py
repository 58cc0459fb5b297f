"""A run's log: one readable line per run event, with a level and the step it concerns."""

from __future__ import annotations

from collections.abc import Callable
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
    return control_flow_line(event) or ("INFO", None, type(event).__qualname__)


def control_flow_line(event: Any) -> tuple[str, str | None, str] | None:
    """(level, step id, message) for the events of branches, maps, loops, waits, signals,
    child runs, pauses and parked runs."""
    line = _CONTROL_FLOW_LINES.get(type(event))
    return line(event) if line is not None else None


def _chose(event: Any) -> tuple[str, str | None, str]:
    chose = f"case {event.case!r}" if event.case is not None else "the default"
    return "INFO", event.step_id, f"Step {event.step_id!r} chose {chose} ({event.value!r})"


def _skipped(event: Any) -> tuple[str, str | None, str]:
    why = "on a path the branch did not take" if event.by_branch else "after a failed item"
    return "INFO", None, f"Skipped {', '.join(map(repr, event.step_ids))}: {why}"


def _signal_awaited(event: Any) -> tuple[str, str | None, str]:
    deadline = f" until {event.timeout_at.isoformat()}" if event.timeout_at else ""
    return (
        "INFO",
        event.step_id,
        f"Step {event.step_id!r} waits for signal {event.signal!r}{deadline}",
    )


def _timed_out(event: Any) -> tuple[str, str | None, str]:
    outcome = "its default is used" if event.default_used else "the step fails"
    return "WARNING", event.step_id, f"No signal {event.signal!r} came in time: {outcome}"


def _suspended(event: Any) -> tuple[str, str | None, str]:
    until = f" until {event.wake_at.isoformat()}" if event.wake_at else ""
    return "DEBUG", None, f"Run waiting{until}: nothing to do until then"


_CONTROL_FLOW_LINES: dict[type, Callable[[Any], tuple[str, str | None, str]]] = {
    Run.BranchChosen: _chose,
    Run.StepsSkipped: _skipped,
    Run.MapStarted: lambda e: (
        "INFO", e.step_id, f"Map {e.step_id!r} started over {len(e.items)} items"
    ),
    Run.IterationStarted: lambda e: (
        "INFO", e.step_id, f"Loop {e.step_id!r} started iteration {e.index + 1}"
    ),
    Run.StepCompleted: lambda e: ("INFO", e.step_id, f"Step {e.step_id!r} completed"),
    Run.WaitStarted: lambda e: (
        "INFO", e.step_id, f"Step {e.step_id!r} waits until {e.until.isoformat()}"
    ),
    Run.SignalAwaited: _signal_awaited,
    Run.SignalReceived: lambda e: (
        "INFO", e.step_id, f"Signal {e.signal!r} received from {metadata_of(e).actor}"
    ),
    Run.SignalTimedOut: _timed_out,
    Run.ChildRunStarted: lambda e: (
        "INFO", e.step_id, f"Child run {e.child_run_id} (attempt {e.attempt})"
    ),
    Run.Paused: lambda e: ("WARNING", None, f"Run paused by {metadata_of(e).actor}: {e.reason}"),
    Run.Resumed: lambda e: ("INFO", None, f"Run resumed by {metadata_of(e).actor}"),
    Run.Suspended: _suspended,
    Run.Woken: lambda e: ("DEBUG", None, "Run running again"),
}  # fmt: skip


class RunLogsProjection(AppendOnlyProjection):
    name: ClassVar[str] = "run_logs"
    topic_prefixes = ("flowledger.domain.runs:",)
    tables = (run_logs,)
    columns = ("position", "run_id", "level", "step_id", "message", "logged_at")

    def record(self, event: Any, position: int) -> tuple[Any, ...]:
        level, step_id, message = log_line(event)
        return (position, event.originator_id, level, step_id, message, event.timestamp)
