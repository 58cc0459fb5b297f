"""The executor's own projection: runs that are requested or retried and not finished yet.

It is how an executor finds the runs of an executor that stopped (see service.py); it does not
depend on the projections worker being up.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Connection, delete
from sqlalchemy.dialects.postgresql import insert

from flowledger.domain.runs import Run
from flowledger.projections.projector import Projection
from flowledger.projections.tables import executor_active_runs as active_runs_table

__all__ = ["ActiveRunsProjection", "active_runs_table"]


class ActiveRunsProjection(Projection):
    name: ClassVar[str] = "executor"
    topic_prefixes = ("flowledger.domain.runs:",)
    tables = (active_runs_table,)

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        if isinstance(event, Run.Requested | Run.Retried):
            conn.execute(
                insert(active_runs_table)
                .values(run_id=event.originator_id, position=position)
                .on_conflict_do_update(index_elements=["run_id"], set_={"position": position})
            )
        elif isinstance(event, Run.Succeeded | Run.Failed | Run.Cancelled):
            conn.execute(
                delete(active_runs_table).where(active_runs_table.c.run_id == event.originator_id)
            )
