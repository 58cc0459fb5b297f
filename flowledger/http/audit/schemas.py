"""Response body of the audit log: one entry per change."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from msgspec import Meta


class AuditEntry(msgspec.Struct):
    """One change: which entity, what happened, who did it, when, and what changed."""

    position: Annotated[
        int, Meta(description="The event's global position in the event store.", examples=[42])
    ]
    entity_type: Annotated[str, Meta(examples=["agent"])]
    entity_id: UUID
    entity_version: Annotated[int, Meta(description="The entity's version after the change.")]
    action: Annotated[
        str, Meta(description="create, update, delete, activate, revoke...", examples=["update"])
    ]
    event_type: Annotated[str, Meta(examples=["AgentUpdated"])]
    actor: Annotated[
        str,
        Meta(
            description="Who: `key:<api key id>`, `jwt:<subject>`, `admin-env` or `system`.",
            examples=["key:0b7c5d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e"],
        ),
    ]
    correlation_id: Annotated[str | None, Meta(description="The request that made the change.")]
    changes: Annotated[
        dict[str, Any] | None,
        Meta(
            description="The event's data, secrets masked.",
            examples=[{"changes": {"timeout_ms": 5000}, "previous": {"timeout_ms": 30000}}],
        ),
    ]
    occurred_at: datetime
