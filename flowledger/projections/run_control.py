"""The runs projection's handlers for control flow: step instances of maps and loops, branches,
skips, waits, signals, child runs, pauses and parked runs (one handler per event type; the
runs projection registers them beside its own).

A step instance inside a map or a loop gets its row when it first appears in an event: it is
made from ``run_body_steps`` (the run's body steps, written when the run was requested) by one
``INSERT ... SELECT``, so the handlers never read anything back and stay pipelined.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    Text,
    bindparam,
    case,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as upsert

from flowledger.domain.run_state import split_key, split_scope
from flowledger.domain.runs import Run
from flowledger.projections.tables import run_body_steps, run_step_attempts, run_steps, runs

Handler = Callable[[Connection, Any, int], None]

_STEP = (run_steps.c.run_id == bindparam("rid")) & (run_steps.c.step_id == bindparam("sid"))
_MS = bindparam("ms", type_=BigInteger)


def _ms_since(started_at: Any) -> Any:
    return _MS - func.coalesce(func.floor(func.extract("epoch", started_at) * 1000), _MS)


_NEW_INSTANCE = (
    upsert(run_steps)
    .from_select(
        [
            "run_id",
            "step_id",
            "step_order",
            "agent_name",
            "depends_on",
            "status",
            "attempts",
            "kind",
            "parent_step_id",
            "item_index",
        ],
        select(
            run_body_steps.c.run_id,
            bindparam("sid", type_=Text),
            run_body_steps.c.step_order,
            run_body_steps.c.agent_name,
            run_body_steps.c.depends_on,
            literal("PENDING"),
            literal(0),
            run_body_steps.c.kind,
            bindparam("parent", type_=Text),
            bindparam("index", type_=Integer),
        ).where(
            run_body_steps.c.run_id == bindparam("rid"),
            run_body_steps.c.step_id == bindparam("plan_id"),
        ),
    )
    .on_conflict_do_nothing(index_elements=["run_id", "step_id"])
)
_SET_STEP = update(run_steps).where(_STEP)


def new_instance(conn: Connection, run_id: Any, key: str) -> None:
    """The row of a map's or loop's step instance, made when it first appears."""
    scope, plan_id = split_key(key)
    if not scope:
        return  # top-level steps have their rows from the request
    parent, index = split_scope(scope)
    conn.execute(
        _NEW_INSTANCE,
        {"rid": run_id, "sid": key, "plan_id": plan_id, "parent": parent, "index": index},
    )


def body_step_rows(run_id: Any, plan: Any) -> list[dict[str, Any]]:
    """``run_body_steps`` rows of a run's plan: every step inside a map or loop body."""
    return [
        {
            "run_id": run_id,
            "step_id": step.step_id,
            "step_order": plan.order_of(step.step_id),
            "kind": step.kind,
            "agent_name": step.agent_name,
            "depends_on": list(step.depends_on),
        }
        for step in plan.every_step()
        if plan.parent_of(step.step_id) is not None
    ]


class ControlFlowHandlers:
    """Handlers of the run events that control flow added (see the module's docstring).

    ``move`` counts a run out of its status and into another in ``run_counts`` (the runs
    projection's own)."""

    def __init__(self, move: Callable[[Connection, Any, str], None]) -> None:
        self.move = move

    def handlers(self) -> dict[type, Handler]:
        return {
            Run.BranchChosen: self.branch_chosen,
            Run.StepsSkipped: self.steps_skipped,
            Run.MapStarted: self.map_started,
            Run.IterationStarted: self.iteration_started,
            Run.StepCompleted: self.step_completed,
            Run.WaitStarted: self.wait_started,
            Run.SignalAwaited: self.signal_awaited,
            Run.SignalReceived: self.signal_received,
            Run.SignalTimedOut: self.signal_timed_out,
            Run.ChildRunStarted: self.child_run_started,
            Run.Paused: self.paused,
            Run.Resumed: self.resumed,
            Run.Suspended: self.suspended,
            Run.Woken: self.woken,
        }

    # ------------------------------------------------------------------ steps

    def branch_chosen(self, conn: Connection, event: Any, position: int) -> None:
        self._begin(conn, event, "SUCCEEDED", input=event.value)
        self._finish(conn, event, "SUCCEEDED", {"case": event.case, "value": event.value})

    def steps_skipped(self, conn: Connection, event: Any, position: int) -> None:
        for key in event.step_ids:
            new_instance(conn, event.originator_id, key)
        conn.execute(
            update(run_steps)
            .where(
                run_steps.c.run_id == event.originator_id,
                run_steps.c.step_id.in_(list(event.step_ids)),
            )
            .values(status="SKIPPED")
        )

    def map_started(self, conn: Connection, event: Any, position: int) -> None:
        self._begin(conn, event, "RUNNING", input=event.items, items=len(event.items))

    def iteration_started(self, conn: Connection, event: Any, position: int) -> None:
        if event.index == 0:
            self._begin(conn, event, "RUNNING", items=1)
            return
        conn.execute(
            _SET_STEP.values(items=bindparam("n", type_=Integer)),
            {"rid": event.originator_id, "sid": event.step_id, "n": event.index + 1},
        )

    def step_completed(self, conn: Connection, event: Any, position: int) -> None:
        self._finish(conn, event, "SUCCEEDED", event.output)

    def wait_started(self, conn: Connection, event: Any, position: int) -> None:
        self._begin(
            conn, event, "WAITING", input={"until": event.until.isoformat()}, wake_at=event.until
        )

    def signal_awaited(self, conn: Connection, event: Any, position: int) -> None:
        self._begin(conn, event, "WAITING", signal=event.signal, wake_at=event.timeout_at)

    def signal_received(self, conn: Connection, event: Any, position: int) -> None:
        self._finish(conn, event, "SUCCEEDED", event.data)

    def signal_timed_out(self, conn: Connection, event: Any, position: int) -> None:
        if event.default_used:
            self._finish(conn, event, "SUCCEEDED", event.output)
        else:
            error = f"no signal {event.signal!r} came in time"
            self._finish(conn, event, "FAILED", None, error=error)

    def child_run_started(self, conn: Connection, event: Any, position: int) -> None:
        keys = {"rid": event.originator_id, "sid": event.step_id, "child": event.child_run_id}
        child = bindparam("child", type_=run_steps.c.child_run_id.type)
        conn.execute(_SET_STEP.values(child_run_id=child), keys)
        conn.execute(
            update(run_step_attempts)
            .where(
                run_step_attempts.c.run_id == event.originator_id,
                run_step_attempts.c.step_id == event.step_id,
                run_step_attempts.c.attempt == event.attempt,
            )
            .values(child_run_id=event.child_run_id)
        )

    # ------------------------------------------------------------------ the run

    def paused(self, conn: Connection, event: Any, position: int) -> None:
        self._status(conn, event, "PAUSED")

    def resumed(self, conn: Connection, event: Any, position: int) -> None:
        self._status(conn, event, event.status)

    def suspended(self, conn: Connection, event: Any, position: int) -> None:
        self._status(conn, event, "WAITING")

    def woken(self, conn: Connection, event: Any, position: int) -> None:
        self._status(conn, event, "RUNNING")

    # ------------------------------------------------------------------ helpers

    def _status(self, conn: Connection, event: Any, status: str) -> None:
        self.move(conn, event.originator_id, status)
        conn.execute(update(runs).where(runs.c.id == event.originator_id).values(status=status))

    def _begin(self, conn: Connection, event: Any, status: str, **values: Any) -> None:
        """A step that makes no attempts begins (its row made first if it is an instance)."""
        new_instance(conn, event.originator_id, event.step_id)
        conn.execute(
            update(run_steps)
            .where(run_steps.c.run_id == event.originator_id, run_steps.c.step_id == event.step_id)
            .values(
                status=status,
                started_at=func.coalesce(run_steps.c.started_at, event.timestamp),
                **{key: _json(key, value) for key, value in values.items()},
            )
        )

    def _finish(
        self, conn: Connection, event: Any, status: str, output: Any, error: str | None = None
    ) -> None:
        conn.execute(
            update(run_steps)
            .where(_STEP)
            .values(
                status=status,
                output=bindparam("b_output", type_=JSONB),
                error=error,
                wake_at=None,
                finished_at=bindparam("at"),
                duration_ms=_ms_since(run_steps.c.started_at),
            ),
            {
                "rid": event.originator_id,
                "sid": event.step_id,
                "b_output": output,
                "at": event.timestamp,
                "ms": _epoch_ms(event.timestamp),
            },
        )


def retried(conn: Connection, event: Any) -> None:
    """A retry puts the instances it names back to PENDING and its maps and loops back to
    RUNNING (runs retried before control flow: every step that did not succeed)."""
    run_id = event.originator_id
    reset = getattr(event, "reset", None)
    if reset is None:
        conn.execute(
            update(run_steps)
            .where(run_steps.c.run_id == run_id, run_steps.c.status != "SUCCEEDED")
            .values(status="PENDING", error=None, finished_at=None, duration_ms=None, retry_at=None)
        )
        return
    names = {"PENDING": list(reset), "RUNNING": list(event.resumed or [])}
    for status, keys in names.items():
        if keys:
            conn.execute(
                update(run_steps)
                .where(run_steps.c.run_id == run_id, run_steps.c.step_id.in_(keys))
                .values(
                    status=status,
                    error=None,
                    finished_at=None,
                    duration_ms=None,
                    retry_at=None,
                    wake_at=None,
                )
            )


CLOSED_STATUS = case(
    (run_steps.c.status.in_(["RUNNING", "WAITING"]), literal("CANCELLED")),
    else_=literal("SKIPPED"),
)
"""What a run's end makes of its steps still running, waiting or pending."""


def _json(key: str, value: Any) -> Any:
    return bindparam(f"v_{key}", value, type_=JSONB) if key == "input" else value


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
