"""Building envelopes for tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flowledger.eventlog.envelope import Envelope


def envelope(**fields: object) -> Envelope:
    base: dict[str, object] = {
        "event_id": uuid.uuid4(),
        "event_type": "StepSucceeded",
        "aggregate_type": "step",
        "aggregate_id": uuid.uuid4(),
        "aggregate_version": 1,
        "position": 1,
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
        "actor": "system",
        "correlation_id": None,
        "traceparent": None,
        "data": {},
    }
    return Envelope(**{**base, **fields})  # type: ignore[arg-type]
