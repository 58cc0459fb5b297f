"""Webhooks: URLs that receive every event (or the types they filter for) as signed POSTs.

A webhook is registered with a URL, an optional list of event-type patterns and a secret that
signs each delivery. The secret is write-only: it is kept to sign, never shown. Deleting a
webhook stops its deliveries. Deliveries themselves are operational state, not events.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, Literal

from eventsourcing.domain import Aggregate, event

from flowledger.domain.agents import description_problems, url_problems
from flowledger.domain.errors import FieldProblem, InvalidInput
from flowledger.domain.lifecycle import Deletable

WebhookStatus = Literal["active", "deleted"]

SECRET_MIN_LENGTH: Final = 16
SECRET_MAX_LENGTH: Final = 256
MAX_EVENT_TYPES: Final = 50
EVENT_TYPE_PATTERN: Final = r"^[A-Za-z*][A-Za-z0-9*]{0,99}$"
_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)


def event_types_problems(event_types: object) -> list[FieldProblem]:
    if not isinstance(event_types, list | tuple):
        return [FieldProblem("event_types", "must be a list of event types")]
    if len(event_types) > MAX_EVENT_TYPES:
        return [FieldProblem("event_types", f"must list at most {MAX_EVENT_TYPES} event types")]
    return [
        FieldProblem(
            f"event_types[{i}]",
            "must be an event type such as RunFailed, or a pattern such as Run* or *Deleted",
        )
        for i, pattern in enumerate(event_types)
        if not isinstance(pattern, str) or not _EVENT_TYPE.match(pattern)
    ]


def secret_problems(secret: object) -> list[FieldProblem]:
    if not isinstance(secret, str) or not SECRET_MIN_LENGTH <= len(secret) <= SECRET_MAX_LENGTH:
        return [
            FieldProblem(
                "secret",
                f"must be a string of {SECRET_MIN_LENGTH} to {SECRET_MAX_LENGTH} characters",
            )
        ]
    if not secret.isprintable() or secret != secret.strip():
        return [FieldProblem("secret", "must be printable, without surrounding whitespace")]
    return []


class Webhook(Deletable, Aggregate):
    """An HTTP endpoint subscribed to events. Deleting it (:class:`Deletable`) stops its
    deliveries; pending ones are cancelled."""

    noun = "webhook"

    class Registered(Aggregate.Created):
        url: str
        event_types: list[str]
        """Patterns the event type must match (``Run*``); empty: every event."""
        secret: str
        description: str | None

    @classmethod
    def register(
        cls,
        *,
        url: str,
        secret: str,
        event_types: Sequence[str] = (),
        description: str | None = None,
    ) -> Webhook:
        problems = (
            url_problems(url)
            + event_types_problems(event_types)
            + secret_problems(secret)
            + description_problems(description)
        )
        if problems:
            raise InvalidInput(problems)
        unique_types = list(dict.fromkeys(event_types))
        return cls(url=url, event_types=unique_types, secret=secret, description=description)

    @event(Registered)
    def __init__(
        self, url: str, event_types: list[str], secret: str, description: str | None
    ) -> None:
        self.url = url
        self.event_types = event_types
        self.secret = secret
        self.description = description
        self.status: WebhookStatus = "active"
