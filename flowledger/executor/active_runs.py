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
from sqlalchemy import ColumnElement, Connection, literal_column

from flowledger.domain.runs import Run
from flowledger.eventlog.store import EventStore
from flowledger.projections.projector import Projection
from flowledger.projections.rowsets import driver
from flowledger.projections.tables import executor_active_runs as active_runs_table

__all__ = ["ActiveRunsProjection", "active_runs_table", "parent_in"]

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

    def __init__(
        self,
        on_due: Callable[[UUID], None] | None = None,
        parent_of: Callable[[UUID], UUID | None] | None = None,
    ) -> None:
        self.on_due = on_due
        """Told of a parent run whose child ended (so that it is driven at once)."""
        self.parent_of = parent_of
        """The parent of a retried run (its ``Run.Retried`` does not say; its request does):
        a retried child run is followed by its parent as a requested one is."""

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        """One statement per event that changes the table, sent as prepared text (a live batch
        of one run event is most of what this projection sees: building and compiling a
        SQLAlchemy statement for it cost more than running it)."""
        run_id = event.originator_id
        raw = driver(conn)
        if isinstance(event, Run.Requested):
            raw.execute(_UPSERT, (run_id, position, event.parent_run_id), prepare=True)
        elif isinstance(event, Run.Retried):
            parent = self.parent_of(run_id) if self.parent_of is not None else None
            raw.execute(_UPSERT, (run_id, position, parent), prepare=True)
        elif isinstance(event, Run.Suspended):
            wake_at = event.wake_at if event.wake_at is not None else _INFINITY
            raw.execute(_WAKE_AT, (wake_at, run_id), prepare=True)
        elif isinstance(event, Run.Paused):
            raw.execute(_WAKE_AT, (_INFINITY, run_id), prepare=True)
        elif isinstance(event, _DUE):
            raw.execute(_WAKE_AT, (None, run_id), prepare=True)
        elif isinstance(event, _ENDED):
            row = raw.execute(_END, (run_id,), prepare=True).fetchone()
            if row is not None and self.on_due is not None:
                self.on_due(row[0])


_UPSERT = (
    b"INSERT INTO executor_active_runs (run_id, position, wake_at, parent_run_id) "
    b"VALUES (%s, %s, NULL, %s) "
    b"ON CONFLICT (run_id) DO UPDATE SET position = EXCLUDED.position, wake_at = NULL"
)
"""A run requested or retried (with its parent, if it is a child run): to drive now."""
_WAKE_AT = b"UPDATE executor_active_runs SET wake_at = %s::timestamptz WHERE run_id = %s"
_END = (
    b"WITH ended AS "
    b"(DELETE FROM executor_active_runs WHERE run_id = %s RETURNING parent_run_id) "
    b"UPDATE executor_active_runs SET wake_at = NULL "
    b"WHERE run_id = (SELECT parent_run_id FROM ended) RETURNING run_id"
)
"""A run ended: it leaves the table, and its parent (a run following it as a child) is to
drive now; the parent woken, if any, is returned."""
_INFINITY = "infinity"
"""``wake_at`` of a run that waits for news only (:data:`NEVER`), as a parameter."""


def parent_in(store: EventStore) -> Callable[[UUID], UUID | None]:
    """The parent of a run, from its request (its first event) in ``store``: a run is retried
    rarely, so one read of one event each time."""

    def parent_of(run_id: UUID) -> UUID | None:
        first = next(iter(store.events.get(run_id, limit=1)), None)
        return getattr(first, "parent_run_id", None)

    return parent_of
