"""What a definition's schedule and webhook triggers may say (ADR 0005, 0013)."""

from __future__ import annotations

from typing import Any

import pytest

from flowledger.domain.triggers import trigger_entries, trigger_problems

pytestmark = pytest.mark.unit


def problems(*triggers: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in trigger_problems(list(triggers), None)]


def test_a_full_schedule_and_webhook_are_accepted() -> None:
    assert (
        problems(
            {
                "type": "schedule",
                "id": "nightly",
                "cron": "0 2 * * *",
                "timezone": "America/New_York",
                "catchup": "all",
                "catchup_limit": 10,
                "input": {"x": 1},
            },
            {"type": "schedule", "every": 30},
            {
                "type": "webhook",
                "path": "orders",
                "method": "PUT",
                "auth": {"type": "hmac", "secret": "s" * 16, "header": "X-Sig", "tolerance_s": 60},
                "headers": {"X-Event": "event"},
                "query": {"source": "source"},
                "event_type": "order.created",
            },
        )
        == []
    )


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (
            {"type": "schedule", "cron": "@daily", "every": 5},
            [("triggers.0.every", "give cron or every, not both")],
        ),
        (
            {"type": "schedule", "every": 0},
            [("triggers.0.every", "must be a number of seconds from 1 to 31622400")],
        ),
        (
            {"type": "schedule", "cron": "@daily", "timezone": "Mars/Olympus"},
            [("triggers.0.timezone", "must be an IANA time zone such as Europe/Paris")],
        ),
        (
            {"type": "schedule", "cron": "@daily", "catchup": "some"},
            [("triggers.0.catchup", "must be one of skip, latest, all")],
        ),
        ({"type": "webhook"}, [("triggers.0.path", "is required for webhook triggers")]),
        (
            {"type": "webhook", "path": "a", "method": "TRACE"},
            [("triggers.0.method", "must be one of POST, PUT, PATCH, GET, DELETE")],
        ),
        (
            {"type": "webhook", "path": "a", "auth": {"type": "token", "token": "short"}},
            [("triggers.0.auth.token", "must be a string of 16 to 256 characters")],
        ),
        (
            {"type": "webhook", "path": "a", "auth": {"type": "basic", "username": "u"}},
            [("triggers.0.auth.password", "is required for basic authentication")],
        ),
        (
            {"type": "webhook", "path": "a", "auth": {"type": "oauth"}},
            [("triggers.0.auth.type", "must be one of none, token, hmac, basic")],
        ),
        (
            {"type": "webhook", "path": "a", "headers": {"X-Event": "not a field"}},
            [("triggers.0.headers.X-Event", "must name an input field (a identifier)")],
        ),
    ],
)
def test_wrong_settings_are_named(trigger: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems(trigger) == expected


def test_two_triggers_may_not_share_an_id() -> None:
    assert problems(
        {"type": "schedule", "id": "x", "cron": "@daily"},
        {"type": "schedule", "id": "x", "cron": "@hourly"},
    ) == [("triggers.1.id", "'x' names another trigger")]


def test_keys_name_triggers_across_versions() -> None:
    entries = trigger_entries(
        [
            {"type": "manual"},
            {"type": "schedule", "cron": "@daily"},
            {"type": "webhook", "path": "in"},
            {"type": "schedule", "id": "nightly", "cron": "@daily"},
            {"type": "schedule", "cron": "@hourly"},
        ]
    )
    assert [key for key, _ in entries] == ["schedule-1", "in", "nightly", "schedule-3"]
