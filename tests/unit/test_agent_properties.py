"""Properties of the Agent aggregate over generated inputs and command sequences."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st

from flowledger.domain.agents import Agent
from flowledger.domain.errors import Conflict, InvalidInput
from tests.support.domain import history, replay

pytestmark = pytest.mark.unit

CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_valid_name(name: str) -> bool:
    return 1 <= len(name) <= 255 and name == name.strip() and not CONTROL.search(name)


@for_all(
    st.text(max_size=300) | st.sampled_from(["a", " a", "a ", "\ta", "a\nb", "x" * 255, "x" * 256])
)
def test_names_are_accepted_exactly_when_they_follow_the_rule(name: str) -> None:
    try:
        Agent.register(name=name, url="http://agent")
    except InvalidInput as error:
        assert not is_valid_name(name)
        assert [p.field for p in error.problems] == ["name"]
    else:
        assert is_valid_name(name)


@for_all(st.integers(min_value=-10, max_value=400_000))
def test_timeouts_are_accepted_exactly_between_1s_and_300s(timeout_ms: int) -> None:
    try:
        Agent.register(name="a", url="http://agent", timeout_ms=timeout_ms)
    except InvalidInput:
        assert not 1000 <= timeout_ms <= 300_000
    else:
        assert 1000 <= timeout_ms <= 300_000


@for_all(
    st.integers(-1, 12),
    st.integers(0, 70_000),
    st.integers(0, 700_000),
    st.floats(0, 12, allow_nan=False),
)
def test_retry_configs_are_accepted_exactly_within_their_bounds(
    retries: int, initial: int, maximum: int, multiplier: float
) -> None:
    valid = (
        0 <= retries <= 10
        and 100 <= initial <= 60_000
        and 1000 <= maximum <= 600_000
        and 1.0 <= multiplier <= 10.0
        and initial <= maximum
    )
    config = {
        "max_retries": retries,
        "initial_delay_ms": initial,
        "max_delay_ms": maximum,
        "backoff_multiplier": multiplier,
    }
    try:
        Agent.register(name="a", url="http://agent", retry_config=config)
    except InvalidInput as error:
        assert not valid
        assert all(p.field.startswith("retry_config.") for p in error.problems)
    else:
        assert valid


updates = st.fixed_dictionaries(
    {},
    optional={
        "url": st.sampled_from(["http://a", "https://b.example/x", "ftp://bad"]),
        "description": st.none() | st.text(max_size=5),
        "timeout_ms": st.integers(500, 301_000),
        "auth_type": st.sampled_from(["none", "bearer", "apikey", "basic"]),
        "auth_config": st.none() | st.sampled_from([{"token": "t"}, {"key": "k"}, {"x": "y"}]),
        "retry_config": st.fixed_dictionaries({}, optional={"max_retries": st.integers(-1, 11)}),
    },
)
commands = st.one_of(
    st.tuples(st.just("update"), updates),
    st.tuples(st.sampled_from(["activate", "deactivate", "delete"]), st.none()),
)


def run(agent: Agent, name: str, argument: Any) -> None:
    if name == "update":
        agent.update(argument)
    else:
        getattr(agent, name)()


@settings(max_examples=200)
@for_all(st.lists(commands, max_size=12))
def test_any_command_sequence_keeps_the_aggregate_consistent_with_its_events(
    sequence: list[tuple[str, Any]],
) -> None:
    agent = Agent.register(name="a", url="http://a")
    recorded = history(agent)
    for name, argument in sequence:
        was_deleted = agent.status == "deleted"
        before = agent.version
        try:
            run(agent, name, argument)
        except (InvalidInput, Conflict):
            assert agent.version == before, "a refused command must record nothing"
            assert agent.pending_events == []
            continue
        finally:
            recorded += history(agent)
        if was_deleted:
            assert agent.version == before, "a deleted agent never changes"
    rebuilt = replay(recorded)
    assert rebuilt.version == agent.version == len(recorded)
    assert rebuilt.settings() == agent.settings()
    assert rebuilt.status == agent.status
