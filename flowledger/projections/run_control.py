"""The runs projection's handlers for control flow: step instances of maps and loops, branches,
skips, waits, signals, child runs, pauses and parked runs, and what a run's end or retry does to
them (one function per event type; the runs projection registers them beside its own).

They fold events into a batch's rows like the projection's own handlers
(:class:`~flowledger.projections.run_rows.RunRows`). A step instance inside a map or a loop
gets its row when it first appears in an event, made from the run's body step
(:meth:`~flowledger.projections.run_rows.RunRows.instance`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from flowledger.domain.runs import Run
from flowledger.projections.run_rows import Handler, Row, RunRows, json_value, ms_since

# ---------------------------------------------------------------------- steps


def _branch_chosen(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    step = _begin(rows, run, event, at, "SUCCEEDED", input=json_value(event.value))
    if step is not None:
        _finish(step, at, "SUCCEEDED", {"case": event.case, "value": event.value})


def _steps_skipped(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    for key in event.step_ids:
        step = rows.instance(run["id"], key)
        if step is not None:
            step["status"] = "SKIPPED"


def _map_started(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    _begin(rows, run, event, at, "RUNNING", input=json_value(event.items), items=len(event.items))


def _iteration_started(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    if event.index == 0:
        _begin(rows, run, event, at, "RUNNING", items=1)
        return
    step = rows.step(run["id"], event.step_id)
    if step is not None:
        step["items"] = event.index + 1


def _step_completed(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    _finish(rows.step(run["id"], event.step_id), at, "SUCCEEDED", event.output)


def _wait_started(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    until = {"until": event.until.isoformat()}
    _begin(rows, run, event, at, "WAITING", input=json_value(until), wake_at=event.until)


def _signal_awaited(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    _begin(rows, run, event, at, "WAITING", signal=event.signal, wake_at=event.timeout_at)


def _signal_received(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    _finish(rows.step(run["id"], event.step_id), at, "SUCCEEDED", event.data)


def _signal_timed_out(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    step = rows.step(run["id"], event.step_id)
    if event.default_used:
        _finish(step, at, "SUCCEEDED", event.output)
    else:
        _finish(step, at, "FAILED", None, error=f"no signal {event.signal!r} came in time")


def _child_run_started(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    found = [
        rows.step(run["id"], event.step_id),
        rows.attempt(run["id"], event.step_id, event.attempt),
    ]
    for row in found:
        if row is not None:
            row["child_run_id"] = event.child_run_id


# ---------------------------------------------------------------------- the run


def _paused(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    run["status"] = "PAUSED"


def _resumed(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    run["status"] = event.status


def _suspended(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    run["status"] = "WAITING"


def _woken(rows: RunRows, run: Row, event: Any, at: datetime) -> None:
    run["status"] = "RUNNING"


HANDLERS: Final[Mapping[type, Handler]] = {
    Run.BranchChosen: _branch_chosen,
    Run.StepsSkipped: _steps_skipped,
    Run.MapStarted: _map_started,
    Run.IterationStarted: _iteration_started,
    Run.StepCompleted: _step_completed,
    Run.WaitStarted: _wait_started,
    Run.SignalAwaited: _signal_awaited,
    Run.SignalReceived: _signal_received,
    Run.SignalTimedOut: _signal_timed_out,
    Run.ChildRunStarted: _child_run_started,
    Run.Paused: _paused,
    Run.Resumed: _resumed,
    Run.Suspended: _suspended,
    Run.Woken: _woken,
}
"""How each control-flow event changes a run's rows."""

# ---------------------------------------------------------------------- shared


def _begin(
    rows: RunRows, run: Row, event: Any, at: datetime, status: str, **values: Any
) -> Row | None:
    """A step that makes no attempts begins (its row made first if it is an instance)."""
    step = rows.instance(run["id"], event.step_id)
    if step is not None:
        step.update(status=status, started_at=step["started_at"] or at, **values)
    return step


def _finish(
    step: Row | None, at: datetime, status: str, output: Any, error: str | None = None
) -> None:
    if step is not None:
        step.update(
            status=status,
            output=json_value(output),
            error=error,
            wake_at=None,
            finished_at=at,
            duration_ms=ms_since(step["started_at"], at),
        )


def close_steps(rows: RunRows, run_id: Any, at: datetime) -> None:
    """A run that ends early: attempts in flight are cancelled, steps running or waiting
    cancelled and steps not begun skipped."""
    for attempt in rows.running_attempts(run_id):
        attempt.update(outcome="cancelled", finished_at=at)
    for step in rows.steps_of(run_id):
        if step["status"] in ("RUNNING", "WAITING"):
            step.update(status="CANCELLED", retry_at=None, wake_at=None, finished_at=at)
        elif step["status"] == "PENDING":
            step.update(status="SKIPPED", retry_at=None, wake_at=None)


def retried(rows: RunRows, run_id: Any, event: Any) -> None:
    """A retry puts the instances it names back to PENDING and its maps and loops back to
    RUNNING (runs retried before control flow: every step that did not succeed)."""
    reset = getattr(event, "reset", None)
    again = {"error": None, "finished_at": None, "duration_ms": None, "retry_at": None}
    if reset is None:
        for step in rows.steps_of(run_id):
            if step["status"] != "SUCCEEDED":
                step.update(status="PENDING", **again)
        return
    for status, keys in (("PENDING", reset), ("RUNNING", event.resumed or [])):
        for key in keys:
            found = rows.step(run_id, key)
            if found is not None:
                found.update(status=status, wake_at=None, **again)
