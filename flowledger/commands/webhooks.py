"""Commands on webhooks: register and delete."""

from __future__ import annotations

from uuid import UUID

import msgspec

from flowledger.commands import Outcome
from flowledger.domain.webhooks import Webhook
from flowledger.eventlog.store import EventMetadata, EventStore

KIND = "webhook"


class RegisterWebhook(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    secret: str
    event_types: list[str] = msgspec.field(default_factory=list)
    description: str | None = None


class DeleteWebhook(msgspec.Struct, frozen=True, kw_only=True):
    webhook_id: UUID


def register_webhook(
    store: EventStore, command: RegisterWebhook, meta: EventMetadata
) -> Outcome[Webhook]:
    webhook = Webhook.register(**msgspec.structs.asdict(command))
    return Outcome(webhook, store.record(webhook, metadata=meta))


def delete_webhook(
    store: EventStore, command: DeleteWebhook, meta: EventMetadata
) -> Outcome[Webhook]:
    webhook = store.get(Webhook, command.webhook_id, kind=KIND)
    webhook.delete()
    return Outcome(webhook, store.record(webhook, metadata=meta))
