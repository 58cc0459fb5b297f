"""``/api/v1/audit`` (admin): who changed what and when, filtered and paginated."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.http.audit import queries
from flowledger.http.audit.queries import AuditFilter
from flowledger.http.audit.schemas import AuditEntry
from flowledger.http.consistency import MinPosition, wait_for_position
from flowledger.http.pagination import Page, PageNumber, PageSize, SortOrder
from flowledger.http.permissions import Permission, requires
from flowledger.runtime.settings import Settings


class AuditController(Controller):
    path = "/api/v1/audit"
    tags = ["audit"]

    @get(
        "/",
        operation_id="listAuditEntries",
        summary="Query the audit log",
        description="Every change to every entity, ordered by position (newest first by default); "
        "filters combine. "
        "Entries older than the audit retention (`FLOWLEDGER_AUDIT_RETENTION_DAYS`, at least "
        "90 days) are removed from this log; the event store keeps them (`flowledger audit "
        "replay`).",
        opt=requires(Permission.ADMIN),
    )
    async def list_entries(
        self,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        actor: Annotated[
            str | None,
            Parameter(
                description="Who made the change (`key:<id>`, `jwt:<sub>`, `admin-env`).",
                max_length=255,
            ),
        ] = None,
        action: Annotated[
            str | None,
            Parameter(description="create, update, delete, revoke...", max_length=50),
        ] = None,
        entity_type: Annotated[
            str | None, Parameter(description="agent, api_key, workflow, run...", max_length=50)
        ] = None,
        entity_id: Annotated[UUID | None, Parameter(description="One entity's changes.")] = None,
        correlation_id: Annotated[
            str | None, Parameter(description="The changes one request made.", max_length=255)
        ] = None,
        since: Annotated[
            datetime | None,
            Parameter(description="Changes at or after this time (UTC if no zone is given)."),
        ] = None,
        until: Annotated[
            datetime | None,
            Parameter(description="Changes at or before this time (UTC if no zone is given)."),
        ] = None,
        order: SortOrder = "desc",
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[AuditEntry]:
        await wait_for_position(db, "audit_log", min_position, settings.read_wait_timeout_s)
        where = AuditFilter(
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            correlation_id=correlation_id,
            since=since,
            until=until,
        )
        return await queries.list_audit_entries(
            db, where, order=order, page=page, page_size=page_size
        )
