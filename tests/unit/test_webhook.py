"""Webhook aggregate: given/when/then."""

from __future__ import annotations

import pytest

from flowledger.domain.errors import InvalidInput
from flowledger.domain.webhooks import Webhook
from tests.support.domain import history, names

pytestmark = pytest.mark.unit
SECRET = "0123456789abcdef"


def test_registering_records_the_url_types_and_secret() -> None:
    webhook = Webhook.register(
        url="https://example.com/hook", secret=SECRET, event_types=["Run*", "Run*", "AgentDeleted"]
    )
    [registered] = history(webhook)
    assert names([registered]) == ["Webhook.Registered"]
    assert registered.event_types == ["Run*", "AgentDeleted"]
    assert registered.secret == SECRET
    assert webhook.status == "active"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "ftp://x"}, "url"),
        ({"url": "http://"}, "url"),
        ({"secret": "short"}, "secret"),
        ({"secret": " " + SECRET}, "secret"),
        ({"event_types": ["Agent Registered"]}, "event_types[0]"),
        ({"event_types": ["Ok", "1Bad"]}, "event_types[1]"),
        ({"event_types": [f"T{i}" for i in range(51)]}, "event_types"),
    ],
)
def test_invalid_registrations_name_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        Webhook.register(**{"url": "http://x", "secret": SECRET, **fields})  # type: ignore[arg-type]
    assert [p.field for p in error.value.problems] == [field]
