"""The executor's own projection: runs that are requested or retried and not finished yet, and
when each needs driving.

It is how an executor finds the runs of an executor that stopped, and the parked ones whose
time has come (see service.py); it does not depend on the projections worker being up.
``wake_at`` is NULL for a run to drive now, a time for a run parked until then (a wait, a
signal's timeout, the workflow deadline), and ``infinity`` for a run that waits for news only
(a signal, a child run) or is paused. News — a signal, a resume, the end of a child run —
sets it back to NULL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.utils import get_topic
from sqlalchemy import ColumnElement, Connection, delete, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert

from flowledger.domain.runs import Run
from flowledger.projections.projector import Projection
from flowledger.projections.tables import executor_active_runs as active_runs_table

__all__ = ["ActiveRunsProjection", "active_runs_table"]

NEVER: ColumnElement[datetime] = literal_column("'infinity'::timestamptz")
_DUE = (Run.Woken, Run.Resumed, Run.SignalReceived)
_ENDED = (Run.Succeeded, Run.Failed, Run.Cancelled)
_TOPICS = frozenset(
    get_topic(cls)
    for cls in (Run.Requested, Run.Retried, Run.Suspended, Run.Paused, *_DUE, *_ENDED)
)
"""The run events that change the table: the steps' events (most of a run's) are not even
decoded."""


class ActiveRunsProjection(Projection):
    name: ClassVar[str] = "executor"
    tables = (active_runs_table,)

    def wants(self, topic: str) -> bool:
        return topic in _TOPICS

    def __init__(self, on_due: Callable[[UUID], None] | None = None) -> None:
        self.on_due = on_due
        """Told of a parent run whose child ended (so that it is driven at once)."""

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        run_id = event.originator_id
        table = active_runs_table
        if isinstance(event, Run.Requested | Run.Retried):
            parent = getattr(event, "parent_run_id", None)
            values = {"run_id": run_id, "position": position, "wake_at": None}
            row = {**values, **({"parent_run_id": parent} if parent else {})}
            conn.execute(
                insert(table)
                .values(**row)
                .on_conflict_do_update(index_elements=["run_id"], set_=values)
            )
        elif isinstance(event, Run.Suspended):
            wake_at = event.wake_at if event.wake_at is not None else NEVER
            conn.execute(update(table).where(table.c.run_id == run_id).values(wake_at=wake_at))
        elif isinstance(event, Run.Paused):
            conn.execute(update(table).where(table.c.run_id == run_id).values(wake_at=NEVER))
        elif isinstance(event, _DUE):
            conn.execute(update(table).where(table.c.run_id == run_id).values(wake_at=None))
        elif isinstance(event, _ENDED):
            parent = select(table.c.parent_run_id).where(table.c.run_id == run_id)
            woken = conn.execute(
                update(table)
                .where(table.c.run_id == parent.scalar_subquery())
                .values(wake_at=None)
                .returning(table.c.run_id)
            ).scalar_one_or_none()
            conn.execute(delete(table).where(table.c.run_id == run_id))
            if woken is not None and self.on_due is not None:
                self.on_due(woken)
