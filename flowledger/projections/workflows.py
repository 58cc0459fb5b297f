"""The workflow read tables: each workflow's current version (and owner), every version, and
the normalised steps of every version (the steps of map and loop bodies too)."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Connection, insert, update

from flowledger.domain.plans import WorkflowPlan
from flowledger.domain.workflows import Workflow
from flowledger.eventlog.store import metadata_of
from flowledger.projections.projector import Projection
from flowledger.projections.tables import workflow_steps, workflow_versions, workflows

STATUS_AFTER: dict[type[Any], str] = {
    Workflow.Activated: "active",
    Workflow.Deactivated: "inactive",
    Workflow.Deleted: "deleted",
}


class WorkflowsProjection(Projection):
    name: ClassVar[str] = "workflows"
    topic_prefixes = ("flowledger.domain.workflows:",)
    tables = (workflows, workflow_versions, workflow_steps)

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        actor = metadata_of(event).actor
        changes: dict[str, Any] = {}
        if isinstance(event, Workflow.Created):
            conn.execute(
                insert(workflows).values(
                    id=event.originator_id,
                    name=event.name,
                    description=event.description,
                    status="active",
                    version=1,
                    definition=event.definition,
                    created_at=event.timestamp,
                    updated_at=event.timestamp,
                    created_by=actor,
                    updated_by=actor,
                    owner=event.owner,
                    position=position,
                )
            )
            self._add_version(conn, event, 1, None, actor, position)
            return
        if isinstance(event, Workflow.Updated):
            changes = {"version": event.version, "definition": event.definition}
            self._add_version(conn, event, event.version, event.changes, actor, position)
        elif isinstance(event, Workflow.DescriptionChanged):
            changes = {"description": event.description}
        elif isinstance(event, Workflow.OwnerChanged):
            changes = {"owner": event.owner}
        elif type(event) in STATUS_AFTER:
            changes = {"status": STATUS_AFTER[type(event)]}
        conn.execute(
            update(workflows)
            .where(workflows.c.id == event.originator_id)
            .values(**changes, updated_at=event.timestamp, updated_by=actor, position=position)
        )

    @staticmethod
    def _add_version(
        conn: Connection,
        event: Any,
        version: int,
        changes: dict[str, Any] | None,
        actor: str,
        position: int,
    ) -> None:
        conn.execute(
            insert(workflow_versions).values(
                workflow_id=event.originator_id,
                version=version,
                definition=event.definition,
                changes=changes,
                created_at=event.timestamp,
                created_by=actor,
                position=position,
            )
        )
        plan = WorkflowPlan.from_dict(event.plan)
        conn.execute(
            insert(workflow_steps),
            [
                {
                    "workflow_id": event.originator_id,
                    "version": version,
                    "step_id": step.step_id,
                    "step_order": order,
                    "agent_name": step.agent_name,
                    "depends_on": list(step.depends_on),
                    "input_mapping": dict(step.input_mapping),
                    "timeout_ms": step.timeout_ms,
                    "retry_config": dict(step.retry) if step.retry is not None else None,
                    "kind": step.kind,
                }
                for order, step in enumerate(plan.every_step())
            ],
        )
