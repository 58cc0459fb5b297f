"""The Agent aggregate, as given/when/then specifications."""

from __future__ import annotations

import pytest

from flowledger.domain.agents import MASK, Agent
from flowledger.domain.errors import Conflict, InvalidInput
from tests.support.domain import given, history, names, when

pytestmark = pytest.mark.unit


def registered(**overrides: object) -> list[object]:
    fields: dict[str, object] = {"name": "summarizer", "url": "https://agents.example/sum"}
    fields.update(overrides)
    return history(Agent.register(**fields))  # type: ignore[arg-type]


def problem_fields(error: InvalidInput) -> list[str]:
    return [problem.field for problem in error.problems]


def test_registering_an_agent_records_registered_with_defaults() -> None:
    events = registered()
    assert names(events) == ["Agent.Registered"]
    agent = given(events)
    assert agent.status == "active"
    assert agent.auth_type == "none" and agent.auth_config is None
    assert agent.timeout_ms == 30_000
    assert agent.retry_config == {
        "max_retries": 3,
        "initial_delay_ms": 1000,
        "max_delay_ms": 30000,
        "backoff_multiplier": 2.0,
    }


def test_an_apikey_agent_gets_the_default_header() -> None:
    agent = given(registered(auth_type="apikey", auth_config={"key": "k1"}))
    assert agent.auth_config == {"key": "k1", "header": "X-API-Key"}
    assert agent.masked_auth_config == {"key": MASK, "header": "X-API-Key"}


def test_registering_with_every_field_wrong_names_every_field() -> None:
    with pytest.raises(InvalidInput) as raised:
        Agent.register(
            name="",
            url="ftp://example.com",
            description="x" * 10_001,
            auth_type="bearer",
            auth_config={"tokn": "t"},
            timeout_ms=999,
            retry_config={"max_retries": 11, "initial_delay_ms": 99, "extra": 1},
        )
    assert problem_fields(raised.value) == [
        "name",
        "url",
        "description",
        "auth_config.tokn",
        "auth_config.token",
        "timeout_ms",
        "retry_config.extra",
        "retry_config.max_retries",
        "retry_config.initial_delay_ms",
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://user:pw@example.com", "must not contain credentials; use auth_config"),
        ("https://", "must name a host"),
        ("https://example.com:99999", "is not a valid URL (Port out of range 0-65535)"),
        ("https://exa mple.com", "must not contain whitespace or control characters"),
        ("mailto:someone@example.com", "must be an http:// or https:// URL"),
        ("https://example.com/#frag", "must not contain a fragment"),
    ],
)
def test_an_agent_url_must_be_a_plain_http_url(url: str, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        Agent.register(name="a", url=url)
    assert [(p.field, p.message) for p in raised.value.problems] == [("url", message)]


def test_a_description_may_not_hold_a_nul_character_which_postgresql_cannot_store() -> None:
    with pytest.raises(InvalidInput) as raised:
        Agent.register(name="a", url="http://a", description="nul\x00")
    assert [(p.field, p.message) for p in raised.value.problems] == [
        ("description", "must not contain NUL characters")
    ]


def test_initial_delay_may_not_exceed_max_delay() -> None:
    with pytest.raises(InvalidInput) as raised:
        Agent.register(
            name="a",
            url="http://a",
            retry_config={"initial_delay_ms": 5000, "max_delay_ms": 2000},
        )
    assert problem_fields(raised.value) == ["retry_config.initial_delay_ms"]


def test_updating_records_only_the_changed_fields_with_their_previous_values() -> None:
    agent = given(registered())
    events = when(
        agent, lambda a: a.update({"timeout_ms": 5000, "url": "https://agents.example/sum"})
    )
    assert names(events) == ["Agent.Updated"]
    assert events[0].changes == {"timeout_ms": 5000}
    assert events[0].previous == {"timeout_ms": 30_000}
    assert agent.timeout_ms == 5000


def test_an_update_that_changes_nothing_records_nothing() -> None:
    agent = given(registered())
    assert when(agent, lambda a: a.update({"timeout_ms": 30_000})) == []


def test_a_partial_retry_config_merges_into_the_current_one() -> None:
    agent = given(registered(retry_config={"max_retries": 5, "initial_delay_ms": 500}))
    when(agent, lambda a: a.update({"retry_config": {"max_retries": 1}}))
    assert agent.retry_config["max_retries"] == 1
    assert agent.retry_config["initial_delay_ms"] == 500


def test_switching_auth_to_bearer_needs_a_token_and_to_none_clears_credentials() -> None:
    agent = given(registered(auth_type="apikey", auth_config={"key": "k"}))
    with pytest.raises(InvalidInput) as raised:
        agent.update({"auth_type": "bearer"})
    assert problem_fields(raised.value) == ["auth_config.token"]
    when(agent, lambda a: a.update({"auth_type": "none"}))
    assert agent.auth_type == "none" and agent.auth_config is None


def test_unknown_update_fields_are_refused() -> None:
    agent = given(registered())
    with pytest.raises(InvalidInput) as raised:
        agent.update({"name": "renamed"})
    assert problem_fields(raised.value) == ["name"]


@pytest.mark.parametrize(
    "command",
    [
        lambda a: a.update({"timeout_ms": 2000}),
        Agent.activate,
        Agent.deactivate,
    ],
)
def test_a_deleted_agent_refuses_changes(command: object) -> None:
    agent = given(registered())
    when(agent, Agent.delete)
    with pytest.raises(Conflict, match="is deleted"):
        command(agent)  # type: ignore[operator]
