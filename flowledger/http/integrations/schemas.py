"""Request and response bodies for integrations (n8n)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from flowledger.domain.agents import URL_MAX_LENGTH


class N8nSync(msgspec.Struct, forbid_unknown_fields=True):
    """Which n8n instance to sync, with what credentials."""

    n8n_url: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=URL_MAX_LENGTH,
            pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://",
            description="The instance's base URL.",
            examples=["http://localhost:5678"],
        ),
    ]
    api_key: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=4096,
            description="An n8n API key (sent as `X-N8N-API-KEY`). Stored, never shown.",
        ),
    ]
    workflow_ids: (
        Annotated[
            list[Annotated[str, Meta(min_length=1, max_length=100)]],
            Meta(max_length=500, description="Only these workflows; absent: all of them."),
        ]
        | None
    ) = None


class SyncError(msgspec.Struct):
    workflow_id: str
    name: str
    reason: Annotated[str, Meta(examples=["it is not started by a Webhook node"])]


class N8nSyncResult(msgspec.Struct):
    integration_id: UUID
    synced_count: Annotated[int, Meta(description="Workflows registered or updated as agents.")]
    errors: Annotated[list[SyncError], Meta(description="One per workflow not synced.")]
    agents: Annotated[
        dict[str, UUID], Meta(description="n8n workflow id → agent id, for those synced now.")
    ]


class IntegrationResponse(msgspec.Struct):
    """An integration (its credentials are never shown)."""

    id: UUID
    service: Literal["n8n"]
    url: str
    status: Annotated[
        Literal["active", "inactive", "error"],
        Meta(description="`error` when the last sync could not read the instance."),
    ]
    last_sync: datetime | None
    last_error: str | None
    synced_count: int
    agents: Annotated[dict[str, UUID], Meta(description="n8n workflow id → agent id.")]
    errors: list[SyncError]
    created_at: datetime
    updated_at: datetime
