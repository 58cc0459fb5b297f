"""Bulk operations as operators follow them: one row per operation with its counts, and one row
per run it matched with how that run went (ADR 0020)."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import Connection, update

from flowledger.domain.bulk import BulkItem, BulkOperation
from flowledger.eventlog.store import metadata_of
from flowledger.projections.projector import Projection, insert_rows
from flowledger.projections.tables import bulk_operation_items, bulk_operations

COUNTERS: dict[str, Any] = {
    "done": bulk_operations.c.done,
    "skipped": bulk_operations.c.skipped,
    "failed": bulk_operations.c.failed,
}


class BulkOperationsProjection(Projection):
    name: ClassVar[str] = "bulk_operations"
    topic_prefixes = ("flowledger.domain.bulk:",)
    tables = (bulk_operations, bulk_operation_items)

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        if isinstance(event, BulkOperation.Requested):
            self._requested(conn, event, position)
        elif isinstance(event, BulkItem.Recorded):
            self._item(conn, event, position)
        elif isinstance(event, BulkOperation.Stopped | BulkOperation.Completed):
            stopped = isinstance(event, BulkOperation.Stopped)
            reason = event.reason if isinstance(event, BulkOperation.Stopped) else None
            conn.execute(
                update(bulk_operations)
                .where(bulk_operations.c.id == event.originator_id)
                .values(
                    status="STOPPED" if stopped else "COMPLETED",
                    stop_reason=reason,
                    finished_at=event.timestamp,
                    updated_at=event.timestamp,
                    version=event.originator_version,
                    position=position,
                )
            )

    def _requested(self, conn: Connection, event: Any, position: int) -> None:
        insert_rows(
            conn,
            bulk_operations,
            [
                {
                    "id": event.originator_id,
                    "action": event.action,
                    "status": "RUNNING",
                    "filters": event.filters,
                    "reason": event.reason,
                    "matched": len(event.run_ids),
                    "done": 0,
                    "skipped": 0,
                    "failed": 0,
                    "requested_by": event.requested_by,
                    "correlation_id": metadata_of(event).correlation_id or None,
                    "created_at": event.timestamp,
                    "updated_at": event.timestamp,
                    "version": event.originator_version,
                    "position": position,
                }
            ],
        )
        insert_rows(
            conn,
            bulk_operation_items,
            [
                {"operation_id": event.originator_id, "run_id": UUID(run_id), "seq": seq,
                 "outcome": "pending"}
                for seq, run_id in enumerate(event.run_ids, start=1)
            ],
        )  # fmt: skip

    def _item(self, conn: Connection, event: Any, position: int) -> None:
        changed = conn.execute(
            update(bulk_operation_items)
            .where(
                bulk_operation_items.c.operation_id == event.operation_id,
                bulk_operation_items.c.run_id == event.run_id,
                bulk_operation_items.c.outcome == "pending",
            )
            .values(
                outcome=event.outcome,
                reason=event.reason,
                run_status=event.run_status,
                recorded_at=event.timestamp,
                position=position,
            )
        )
        if changed.rowcount:  # once per item, even if the item's event were seen again
            counter = COUNTERS[event.outcome]
            conn.execute(
                update(bulk_operations)
                .where(bulk_operations.c.id == event.operation_id)
                .values({counter.name: counter + 1, "updated_at": event.timestamp})
            )
