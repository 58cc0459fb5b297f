"""Request and response bodies for webhooks and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from flowledger.domain import webhooks as rules
from flowledger.domain.agents import DESCRIPTION_MAX_LENGTH, URL_MAX_LENGTH
from flowledger.domain.webhooks import Webhook

DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled"]

EventTypePattern = Annotated[
    str,
    Meta(
        pattern=rules.EVENT_TYPE_PATTERN,
        description="An event type (`RunFailed`) or a glob pattern (`Run*`, `*Deleted`).",
        examples=["Run*"],
    ),
]


class WebhookCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new webhook."""

    url: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=URL_MAX_LENGTH,
            pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://",
            description="Where each event is POSTed (http or https).",
            examples=["https://example.com/hooks/flowledger"],
        ),
    ]
    secret: Annotated[
        str,
        Meta(
            min_length=rules.SECRET_MIN_LENGTH,
            max_length=rules.SECRET_MAX_LENGTH,
            description="Signs every delivery (HMAC-SHA256, see `X-Flowledger-Signature`). "
            "Write-only: stored, never returned.",
            examples=["whsec-3c1b8f0e9a7d4c2b"],
        ),
    ]
    event_types: Annotated[
        list[EventTypePattern],
        Meta(
            max_length=rules.MAX_EVENT_TYPES,
            description="Deliver only events whose type matches one of these; empty: all.",
            examples=[["Run*", "AgentDeleted"]],
        ),
    ] = msgspec.field(default_factory=list)
    description: (
        Annotated[
            str, Meta(max_length=DESCRIPTION_MAX_LENGTH, examples=["Notify the on-call channel"])
        ]
        | None
    ) = None


class WebhookResponse(msgspec.Struct):
    """A webhook (its secret is never shown)."""

    id: UUID
    url: str
    description: str | None
    event_types: list[str]
    status: Annotated[Literal["active", "deleted"], Meta(examples=["active"])]
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_webhook(cls, webhook: Webhook) -> WebhookResponse:
        return cls(
            id=webhook.id,
            url=webhook.url,
            description=webhook.description,
            event_types=list(webhook.event_types),
            status=webhook.status,
            version=webhook.version,
            created_at=webhook.created_on,
            updated_at=webhook.modified_on,
        )


class DeliveryAttempt(msgspec.Struct):
    """One POST of a delivery, and how it went."""

    attempt: Annotated[int, Meta(ge=1)]
    started_at: datetime
    duration_ms: float
    succeeded: bool
    status_code: int | None
    """The receiver's HTTP status; none when it could not be reached."""
    error: str | None
    response_excerpt: str | None
    """The start of the receiver's answer."""


class WebhookDelivery(msgspec.Struct):
    """One event for one webhook: pending (with its next attempt), succeeded, failed (attempts
    exhausted) or cancelled (the webhook was deleted)."""

    id: UUID
    webhook_id: UUID
    event_id: UUID
    event_type: str
    aggregate_type: str
    aggregate_id: UUID
    position: int
    status: Annotated[DeliveryStatus, Meta(examples=["succeeded"])]
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None
    attempts: list[DeliveryAttempt]
