"""Control-flow runs driven through the store, one append per action, for tests that compare
how projections fold them (a branch, a map over items, a loop, a wait, a signal, a child run,
pauses, parking, and a retry of a failed map)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from flowledger.domain.errors import DomainError
from flowledger.domain.runs import Run, child_run_id
from flowledger.eventlog.store import EventMetadata, EventStore
from tests.support.runs import LIMITS, call, plan_of, requested

META = EventMetadata.system(actor="control")


def echo(**fields: Any) -> dict[str, Any]:
    return {"agent_name": "echo", **fields}


DEFINITION: dict[str, Any] = {
    "steps": {
        "measure": echo(),
        "route": {
            "type": "if",
            "depends_on": ["measure"],
            "condition": "input.big",
            "then": "big",
            "else": ["small"],
        },
        "big": echo(),
        "small": echo(),
        "each_word": {
            "type": "foreach",
            "depends_on": ["measure"],
            "items": "input.words",
            "max_parallel": 2,
            "steps": {"shout": echo(input_mapping={"word": "$.item"})},
        },
        "poll": {
            "type": "do_while",
            "depends_on": ["each_word"],
            "while": "iteration < `2`",
            "steps": {"check": echo(input_mapping={"n": "$.iteration"})},
        },
        "cool_down": {"type": "wait", "depends_on": ["poll"], "duration_ms": 1000},
        "approve": {"type": "signal", "depends_on": ["cool_down"], "signal": "approval"},
        "sub": {"type": "workflow", "depends_on": ["approve"], "workflow_name": "child"},
    }
}
INPUT = {"big": True, "words": ["a", "b", "c"]}
ACTIONS = [
    "start",
    "advance",
    "call",
    "fail_item",
    "later",
    "signal",
    "child",
    "child_done",
    "pause",
    "resume",
    "park",
    "wake",
    "cancel",
    "retry",
]
SCRIPT = [
    "start", "advance", "call", "advance",  # measure; the branch, the map begins
    "call", "call", "fail_item", "advance",  # a word shouted, big, a word fails: the run fails
    "retry", "start", "advance", "call", "call", "advance",  # the failed word again, and the last
    "pause", "resume", "call", "advance", "call", "advance",  # both loop iterations
    "park", "wake", "later",  # the wait begins and ends
    "park", "signal", "wake", "advance",  # the signal comes while the run is parked
    "child", "child_done", "advance",  # the child run's output: the run succeeds
]  # fmt: skip
"""Actions that take a run through every kind of step and a retry of a failed map."""


def control_run() -> Run:
    return requested(plan_of(DEFINITION), input_data=INPUT, limits=LIMITS)


def act(run: Run, action: str, now: datetime) -> Run | None:
    """One thing the executor, a user or a caller may do to a control-flow run (it may refuse:
    DomainError); a child run it starts, to record."""
    if action == "start":
        run.start()
    elif action == "advance":
        run.advance(now)
    elif action == "later":
        run.advance(now + timedelta(days=1))
    elif action in ("call", "fail_item", "child"):
        ready = [k for k in run.ready_calls() if (k == "sub") == (action == "child")]
        if action == "fail_item":
            ready = [k for k in ready if k.startswith("each_word[")]
        if not ready:
            raise DomainError("nothing to call")
        if action == "call":
            call(run, ready[0])
        elif action == "fail_item":
            run.fail_attempt(ready[0], run.start_step(ready[0], {}), "shout failed", None)
        else:
            attempt = run.start_step("sub", {})
            child = child_run_id(run.id, "sub")
            run.follow_child("sub", attempt, child)
            return requested(
                plan_of({"steps": {"only": echo()}}),
                parent_run_id=run.id,
                parent_step_id="sub",
                depth=1,
                limits=LIMITS,
            )
    elif action == "child_done":
        current = run.steps["sub"].current if "sub" in run.steps else None
        if current is None:
            raise DomainError("no child run in flight")
        run.succeed_step("sub", current.number, {"from": "child"})
    elif action == "signal":
        run.receive_signal("approval", {"approved": True})
    elif action == "pause":
        run.pause("maintenance")
    elif action == "resume":
        run.resume()
    elif action == "park":
        run.suspend(run.next_wake(), now)
    elif action == "wake":
        run.wake()
    elif action == "cancel":
        run.cancel("enough")
    else:
        run.retry()
    return None


def record_control_histories(store: EventStore, histories: list[list[str]]) -> list[Run]:
    """Control-flow runs driven through their actions, interleaved, one append per action
    (and the child runs they start); the runs."""
    live = [control_run() for _ in histories]
    for run in live:
        store.record(run, metadata=META)
    children: set[Any] = set()
    for turn in range(max((len(h) for h in histories), default=0)):
        for run, history in zip(live, histories, strict=True):
            if turn >= len(history):
                continue
            child = None
            with contextlib.suppress(DomainError):  # refused; what it did before is recorded
                child = act(run, history[turn], datetime.now(UTC))
            if child is not None and child.id not in children:
                children.add(child.id)
                store.record(child, metadata=META)
            store.record(run, metadata=META)
    return live
