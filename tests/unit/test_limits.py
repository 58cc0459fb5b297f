"""Spec 004's limits as settings: their defaults, their variables, and what a run pins."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from flowledger.domain.agents import RetryPolicy
from flowledger.domain.limits import LimitExceeded, RunLimits
from flowledger.executor.settings import LimitSettings
from flowledger.runtime.settings import Settings, SettingsError

pytestmark = pytest.mark.unit


def test_the_limits_default_to_spec_004s_values() -> None:
    assert LimitSettings.from_settings(Settings()).limits() == RunLimits(
        workflow_timeout_ms=300_000,
        max_loop_iterations=100,
        max_total_operations=1000,
        max_loop_depth=10,
        max_parallel_nodes=10,
    )


def test_each_limit_is_read_from_its_own_variable() -> None:
    environment = {
        "WORKFLOW_TIMEOUT_SECONDS": "2.5",
        "MAX_LOOP_ITERATIONS": "7",
        "MAX_TOTAL_OPERATIONS": "5000",
        "MAX_LOOP_DEPTH": "2",
        "MAX_PARALLEL_NODES": "32",
    }
    assert LimitSettings.from_settings(Settings(extra=environment)).limits() == RunLimits(
        2500, 7, 5000, 2, 32
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("MAX_LOOP_ITERATIONS", "0"), ("WORKFLOW_TIMEOUT_SECONDS", "0"), ("MAX_LOOP_DEPTH", "deep")],
)
def test_a_limit_that_cannot_be_used_stops_the_process_naming_it(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        LimitSettings.from_settings(Settings(extra={name: value}))


def test_a_run_pins_its_limits_and_runs_from_before_limits_have_none() -> None:
    limits = RunLimits(1000, 2, 3, 4, 5)
    assert RunLimits.from_dict(limits.to_dict()) == limits
    assert RunLimits.from_dict(None) == RunLimits.unlimited()


def test_a_broken_limit_says_which_setting_and_what_broke_it() -> None:
    error = LimitExceeded("max_loop_depth", 10, "loop 'x' would nest 11 deep")
    assert str(error) == "MAX_LOOP_DEPTH (10) exceeded: loop 'x' would nest 11 deep"


def test_limits_and_retry_policies_go_into_events_as_asdict_would_put_them() -> None:
    """Their ``to_dict`` copies the fields by name (faster than ``asdict``): the same keys, in
    the same order, with the same values, for the defaults and for values of each field."""
    for value in (
        RunLimits(),
        RunLimits.unlimited(),
        RunLimits(1, 2, 3, 4, 5),
        RetryPolicy(),
        RetryPolicy(max_retries=7, initial_delay_ms=9, max_delay_ms=99, backoff_multiplier=1.5),
    ):
        assert list(value.to_dict().items()) == list(asdict(value).items())
