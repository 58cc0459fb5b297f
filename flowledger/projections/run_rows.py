"""The rows one batch of run events reads and changes, held in memory for the runs projection
(``runs.py``) and its control-flow handlers (``run_control.py``), with what both share: a step
instance's row made when it first appears, and how a step ends.

Every run, step and attempt row the batch changes is read once before the batch
(:meth:`RunRows.load`), changed in place by each event, and written back together
(:class:`~flowledger.projections.rowsets.RowSet`). The rows of runs still in progress whose
every row is held (the batch requested them, or they were carried into it) are carried to the
next batch (:meth:`RunRows.carry`, up to :data:`CARRIED_RUNS` runs and :data:`CARRIED_ROWS`
rows), which then reads none of their rows when it continues where this one's position was
written (see ``RunsProjection.resume``): the rows are then what the tables hold.

``run_body_steps`` (the steps of each run's map and loop bodies, written when the run is
requested) is where an instance row (``each[2].shout``) is made from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
from psycopg import sql
from sqlalchemy import Connection

from flowledger.domain.run_state import split_key, split_scope
from flowledger.domain.runs import TERMINAL
from flowledger.projections.rowsets import RowSet, driver, json_text
from flowledger.projections.tables import run_body_steps, run_step_attempts, run_steps, runs

Row = dict[str, Any]
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS: Final = timedelta(milliseconds=1)
_json = msgspec.json.Encoder()


def json_value(value: Any) -> str:
    """An event's value for a JSON column, as JSON text: None is JSON ``null`` (a value the
    event carries), unlike :func:`~flowledger.projections.rowsets.json_text`."""
    return _json.encode(value).decode()


def epoch_ms(moment: datetime) -> int:
    return (moment - EPOCH) // ONE_MS


def ms_since(started_at: datetime | None, now: datetime) -> int:
    """Milliseconds from ``started_at`` to ``now`` (0 when it never started)."""
    return 0 if started_at is None else epoch_ms(now) - epoch_ms(started_at)


CARRIED_RUNS: Final = 2_000
"""At most this many runs' rows are carried from one batch to the next (the most recently
changed): enough for the runs in progress together in a busy log."""
CARRIED_ROWS: Final = 40_000
"""And at most about this many rows in all (runs with large maps have thousands of steps and
attempts each, with their inputs and outputs): tens of MB."""

_BY_ID: Final = sql.SQL("id = ANY(%(ids)s)")
# Each query names the runs it reads (``run_id = ANY(%(among)s)``: the first column of the
# table's key), so the planner can look them up by index whatever else it selects by. Without
# it, an ``OR`` of a list and a set of pairs has no index to use: the whole table was read
# for every batch, a cost that grew with the table (most of a catch-up's time by 1M events).
_STEPS: Final = sql.SQL(
    "run_id = ANY(%(among)s) AND (run_id = ANY(%(whole)s) OR (run_id, step_id) "
    "IN (SELECT * FROM unnest(%(runs)s::uuid[], %(steps)s::text[])))"
)
_ATTEMPTS: Final = sql.SQL(
    "run_id = ANY(%(among)s) AND ((run_id = ANY(%(whole)s) AND outcome = 'running') OR "
    "(run_id, step_id, attempt) "
    "IN (SELECT * FROM unnest(%(runs)s::uuid[], %(steps)s::text[], %(numbers)s::int[])))"
)
_BODY_STEPS: Final = sql.SQL(
    "run_id = ANY(%(among)s) AND (run_id, step_id) "
    "IN (SELECT * FROM unnest(%(runs)s::uuid[], %(steps)s::varchar[]))"
)


class RunRows:
    """The rows one batch of run events reads and changes."""

    def __init__(self) -> None:
        self.runs = RowSet(runs, ("id",))
        self.steps = RowSet(run_steps, ("run_id", "step_id"))
        self.attempts = RowSet(run_step_attempts, ("run_id", "step_id", "attempt"))
        self.body_steps = RowSet(run_body_steps, ("run_id", "step_id"))
        self.status_before: dict[Any, tuple[Any, str | None]] = {}
        """Each run's (workflow, status) before the batch; status None for runs it requested."""
        self._whole: dict[Any, None] = {}
        """The runs (hashed ids, least recently changed first) whose every row is held."""

    def clear(self) -> None:
        """Forget every row, carried ones too."""
        for rows in self._tables:
            rows.clear()
        self.status_before = {}
        self._whole = {}

    def carry(self) -> None:
        """Once the batch's rows are written: keep the rows of the runs in progress whose every
        row is held (see the module's doc), forget the others."""
        whole = self._whole
        for run_id, (_, before) in self.status_before.items():
            key = self.runs.key(run_id)[0]
            held = key in whole or before is None
            whole.pop(key, None)
            row = self.runs.get(run_id)
            # A finished run is not carried: most never change again (a retried one is read).
            if held and row is not None and row["status"] not in TERMINAL:
                whole[key] = None  # now the most recently changed
        while len(whole) > CARRIED_RUNS:
            del whole[next(iter(whole))]
        for rows in self._tables:
            rows.clear(whole)
        count = sum(len(rows) for rows in self._tables)
        if count > CARRIED_ROWS:  # the oldest go until the rest fit
            while whole and count > CARRIED_ROWS:
                oldest = next(iter(whole))
                del whole[oldest]
                count -= sum(rows.held(oldest) for rows in self._tables)
            for rows in self._tables:
                rows.clear(whole)
        self.status_before = {}

    # ------------------------------------------------------------------ reading
    def load(
        self,
        conn: Connection,
        run_ids: set[Any],
        whole: set[Any],
        steps: set[tuple[Any, str]],
        attempts: set[tuple[Any, str, int]],
        bodies: set[tuple[Any, str]],
    ) -> None:
        """Hold the rows of runs requested before the batch: the runs, the steps and attempts
        named, every step and attempt in flight of the ``whole`` runs, and the body steps
        instances may be made from."""
        carried = {r for r in run_ids if self.runs.key(r)[0] in self._whole}
        for run_id in carried:
            row = self.runs.get(run_id)
            if row is not None:
                self.status_before[run_id] = (row["workflow_id"], row["status"])
        if carried:
            run_ids = run_ids - carried
            whole = whole - carried
            steps = {pair for pair in steps if pair[0] not in carried}
            attempts = {triple for triple in attempts if triple[0] not in carried}
            bodies = {pair for pair in bodies if pair[0] not in carried}
        if not run_ids:
            return
        with driver(conn).pipeline():  # the tables' queries in one round trip
            sent = [
                (self.runs, self.runs.send_load(conn, _BY_ID, {"ids": list(run_ids)})),
                (
                    self.steps,
                    self.steps.send_load(
                        conn,
                        _STEPS,
                        {
                            "among": list(whole | {r for r, _ in steps}),
                            "whole": list(whole),
                            "runs": [r for r, _ in steps],
                            "steps": [s for _, s in steps],
                        },
                    ),
                ),
                (
                    self.attempts,
                    self.attempts.send_load(
                        conn,
                        _ATTEMPTS,
                        {
                            "among": list(whole | {r for r, _, _ in attempts}),
                            "whole": list(whole),
                            "runs": [r for r, _, _ in attempts],
                            "steps": [s for _, s, _ in attempts],
                            "numbers": [n for _, _, n in attempts],
                        },
                    ),
                ),
            ]
            if bodies:
                params = {
                    "among": list({r for r, _ in bodies}),
                    "runs": [r for r, _ in bodies],
                    "steps": [s for _, s in bodies],
                }
                sent.append((self.body_steps, self.body_steps.send_load(conn, _BODY_STEPS, params)))
        for rows, cursor in sent:
            rows.take(cursor)
        for run_id in run_ids:
            row = self.runs.get(run_id)
            if row is not None:
                self.status_before[run_id] = (row["workflow_id"], row["status"])

    # ------------------------------------------------------------------ the rows
    def run(self, run_id: Any) -> Row | None:
        return self.runs.edit(run_id)

    def step(self, run_id: Any, step_id: str) -> Row | None:
        return self.steps.edit(run_id, step_id)

    def attempt(self, run_id: Any, step_id: str, number: int) -> Row | None:
        return self.attempts.edit(run_id, step_id, number)

    def steps_of(self, run_id: Any) -> list[Row]:
        """Every step of the run (all are held for the run-wide events that need them)."""
        return self.steps.group(run_id)

    def running_attempts(self, run_id: Any) -> list[Row]:
        """The run's attempts in flight (all are held for the run-wide events that need them)."""
        return self.attempts.group(run_id, outcome="running")

    def instance(self, run_id: Any, key: str) -> Row | None:
        """The step's row; an instance of a map's or loop's body (``each[2].shout``) gets its
        row from the run's body step when it first appears."""
        step = self.step(run_id, key)
        if step is not None:
            return step
        scope, plan_id = split_key(key)
        if not scope:
            return None  # top-level steps have their rows from the request
        body = self.body_steps.get(run_id, plan_id)
        if body is None:
            return None
        parent, index = split_scope(scope)
        return self.steps.add(
            {
                "run_id": run_id,
                "step_id": key,
                "step_order": body["step_order"],
                "agent_name": body["agent_name"],
                "depends_on": body["depends_on"],
                "status": "PENDING",
                "attempts": 0,
                "kind": body["kind"],
                "parent_step_id": parent,
                "item_index": index,
            }
        )

    # ------------------------------------------------------------------ writing
    def count_moves(self) -> Counter[tuple[Any, str]]:
        """Runs into and out of each (workflow, status) over the batch."""
        moves: Counter[tuple[Any, str]] = Counter()
        for run_id, (workflow_id, before) in self.status_before.items():
            row = self.runs.get(run_id)
            after = None if row is None else row["status"]
            if before == after:
                continue
            if before is not None:
                moves[(workflow_id, before)] -= 1
            if after is not None:
                moves[(workflow_id, after)] += 1
        return moves

    @property
    def few(self) -> bool:
        """Whether every table has few rows to write (upserted: their statements can go in
        one pipeline with the batch's others, see ``RunsProjection.finish_batch``)."""
        return all(rows.upserts for rows in self._tables)

    def write(self, conn: Connection) -> None:
        """Write every table's touched rows."""
        for rows in self._tables:
            rows.write(conn)

    @property
    def _tables(self) -> tuple[RowSet, ...]:
        return (self.runs, self.steps, self.attempts, self.body_steps)


Handler = Callable[[RunRows, Row, Any, datetime], None]
"""How one event type changes a run's rows: ``run`` is the run's row, ``at`` the event's
time (the run's version, time and position are set for every event by the projection)."""


def step_done(step: Row, at: datetime, **values: Any) -> None:
    """A step (or instance) that ends, with how (status, output, error)."""
    step.update(
        finished_at=at, retry_at=None, duration_ms=ms_since(step["started_at"], at), **values
    )


def body_step_rows(run_id: Any, plan: Any) -> list[Row]:
    """``run_body_steps`` rows of a run's plan: every step inside a map or loop body."""
    return [
        {
            "run_id": run_id,
            "step_id": step.step_id,
            "step_order": plan.order_of(step.step_id),
            "kind": step.kind,
            "agent_name": step.agent_name,
            "depends_on": json_text(list(step.depends_on)),
        }
        for step in plan.every_step()
        if plan.parent_of(step.step_id) is not None
    ]
