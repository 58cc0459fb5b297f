"""The workflow_grants read table: who besides its owner may view or execute each workflow.

The access policy reads it on every request to a workflow or a run, so a revocation holds on
every API process as soon as this projection has applied it (ADR 0010)."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Connection, delete
from sqlalchemy.dialects.postgresql import insert

from flowledger.domain.workflows import Workflow
from flowledger.eventlog.store import metadata_of
from flowledger.projections.projector import Projection
from flowledger.projections.tables import workflow_grants


class WorkflowGrantsProjection(Projection):
    name: ClassVar[str] = "workflow_grants"
    topic_prefixes = ("flowledger.domain.workflows:Workflow.Access",)
    tables = (workflow_grants,)

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        if isinstance(event, Workflow.AccessGranted):
            row = {
                "can_view": event.can_view,
                "can_execute": event.can_execute,
                "granted_at": event.timestamp,
                "granted_by": metadata_of(event).actor,
                "position": position,
            }
            conn.execute(
                insert(workflow_grants)
                .values(workflow_id=event.originator_id, principal=event.principal, **row)
                .on_conflict_do_update(index_elements=["workflow_id", "principal"], set_=row)
            )
        elif isinstance(event, Workflow.AccessRevoked):
            conn.execute(
                delete(workflow_grants).where(
                    workflow_grants.c.workflow_id == event.originator_id,
                    workflow_grants.c.principal == event.principal,
                )
            )
