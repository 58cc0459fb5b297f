"""Request and response bodies for triggers, their firings, backfills and inbound webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from flowledger.domain.redaction import redact
from flowledger.domain.triggering import Trigger

TriggerStatus = Literal["active", "paused", "disabled", "removed"]
TriggerType = Literal["schedule", "webhook"]
HOOKS_PREFIX = "/hooks/"


class TriggerFiringResponse(msgspec.Struct):
    """One firing: the run it started, or why it could not start one."""

    id: UUID
    scheduled_for: Annotated[datetime | None, Meta(description="The tick (schedules).")]
    run_id: UUID | None
    error: str | None
    fired_at: datetime
    actor: Annotated[str, Meta(examples=["trigger:5b1e…"])]


class TriggerResponse(msgspec.Struct, kw_only=True):
    """A schedule or webhook trigger of a workflow (its secrets are never shown)."""

    id: UUID
    workflow_id: UUID
    key: Annotated[
        str,
        Meta(
            description="What names it within its workflow across versions: its `id` in the "
            "definition, else a webhook's path, else `schedule-<n>`.",
            examples=["schedule-1"],
        ),
    ]
    type: TriggerType
    status: Annotated[
        TriggerStatus,
        Meta(
            description="`paused` by the API, `disabled` by its definition (`enabled: false`), "
            "`removed` when its workflow's current version no longer has it."
        ),
    ]
    config: Annotated[
        dict[str, Any], Meta(description="The trigger as defined, secrets shown as `********`.")
    ]
    url_path: Annotated[
        str | None, Meta(description="Webhooks: where to call it.", examples=["/hooks/orders"])
    ] = None
    method: str | None = None
    workflow_version: int
    next_fire_times: Annotated[
        list[datetime],
        Meta(description="Schedules: the next ticks (UTC), none while paused or disabled."),
    ] = msgspec.field(default_factory=list)
    last_tick: datetime | None = None
    last_fired_at: datetime | None = None
    fired_count: int = 0
    failed_count: int = 0
    last_runs: Annotated[
        list[TriggerFiringResponse], Meta(description="The latest firings, newest first.")
    ] = msgspec.field(default_factory=list)
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_trigger(cls, trigger: Trigger) -> TriggerResponse:
        """The write side's view right after a command."""
        return cls(
            id=trigger.id,
            workflow_id=trigger.workflow_id,
            key=trigger.key,
            type=trigger.kind,  # type: ignore[arg-type]
            status=trigger.status,  # type: ignore[arg-type]
            config=shown_config(trigger.config),
            url_path=hook_url(trigger.path),
            method=hook_method(trigger.kind, trigger.config),
            workflow_version=trigger.workflow_version,
            version=trigger.version,
            created_at=trigger.created_on,
            updated_at=trigger.modified_on,
        )


def shown_config(config: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = redact(config)
    return shown


def hook_url(path: str | None) -> str | None:
    return f"{HOOKS_PREFIX}{path}" if path else None


def hook_method(kind: str, config: dict[str, Any]) -> str | None:
    return str(config.get("method", "POST")) if kind == "webhook" else None


class BackfillRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Fire a schedule trigger's ticks of a past time range (those that have not fired)."""

    start: Annotated[datetime, Meta(description="Ticks after this (exclusive)...")]
    end: Annotated[datetime, Meta(description="...up to this (inclusive).")]
    limit: Annotated[int, Meta(ge=1, le=1000, description="At most this many ticks.")] = 1000


class BackfillResponse(msgspec.Struct):
    trigger_id: UUID
    ticks: Annotated[int, Meta(description="Ticks in the range.")]
    started: Annotated[int, Meta(description="Runs started now.")]
    already_fired: Annotated[int, Meta(description="Ticks that had fired before.")]
    failed: Annotated[int, Meta(description="Ticks whose run could not start (see `firings`).")]
    firings: list[TriggerFiringResponse]


class InboundWebhookCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Spec 003's webhook: adds a webhook trigger to the workflow (as its next version)."""

    workflow_id: UUID
    event_type: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=100,
            description="A label for what the calls announce; runs get it as input field "
            "`event_type` (unless the body has one).",
            examples=["order.created"],
        ),
    ]
    url_path: (
        Annotated[
            str,
            Meta(
                pattern=r"^[A-Za-z0-9_\-]{1,100}$",
                description="The hook's path under `/hooks/` (unique across workflows); "
                "default: made from the event type.",
                examples=["orders-created"],
            ),
        ]
        | None
    ) = None
    method: Literal["POST", "PUT", "PATCH", "GET", "DELETE"] = "POST"
    authentication: Annotated[
        dict[str, Any] | None,
        Meta(
            description='`{"type": "none"}`, `{"type": "token", "token": ..., '
            '"header": ...}`, `{"type": "hmac", "secret": ..., "header": ..., '
            '"tolerance_s": ...}` or `{"type": "basic", "username": ..., '
            '"password": ...}`; secrets are never shown again.',
            examples=[{"type": "hmac", "secret": "a-long-shared-secret"}],
        ),
    ] = None
    headers: dict[str, str] | None = None
    query: dict[str, str] | None = None


class HookAccepted(msgspec.Struct):
    """The run an inbound webhook call started (or, replayed, the one it started before)."""

    run_id: UUID | None
    trigger_id: UUID
    workflow_id: UUID
    replayed: Annotated[
        bool, Meta(description="True when this `Idempotency-Key` had started a run before.")
    ] = False
