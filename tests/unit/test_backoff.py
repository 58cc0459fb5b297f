"""The one capped-backoff rule every retry loop uses."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowledger.domain.backoff import Backoff

pytestmark = pytest.mark.unit

amounts = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
multipliers = st.floats(min_value=1.0, max_value=10.0)
failures = st.integers(min_value=0, max_value=10**6)


@st.composite
def backoffs(draw: st.DrawFn) -> Backoff:
    low = draw(st.floats(min_value=0.0, max_value=1.0))
    high = draw(st.floats(min_value=low, max_value=1.0))
    return Backoff(draw(amounts), draw(amounts), draw(multipliers), jitter=(low, high))


def test_the_wait_doubles_from_the_initial_one_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.2, maximum=5.0)
    assert [backoff.delay(n) for n in range(1, 8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


def test_a_multiplier_other_than_two_grows_the_wait_by_that_factor() -> None:
    backoff = Backoff(initial=1000, maximum=30_000, multiplier=3.0)
    assert [backoff.base(n) for n in range(1, 5)] == [1000, 3000, 9000, 27_000]
    assert backoff.base(5) == 30_000


def test_no_failure_yet_waits_like_the_first() -> None:
    backoff = Backoff(initial=0.5, maximum=10.0)
    assert backoff.delay(0) == backoff.delay(1) == 0.5


def test_after_very_many_failures_the_wait_is_the_cap_not_an_overflow() -> None:
    assert Backoff(initial=0.2, maximum=10.0).delay(10**6) == 10.0
    assert Backoff(initial=0.0, maximum=10.0).delay(10**6) == 0.0


def test_jitter_draws_from_its_range_with_the_random_source_given() -> None:
    backoff = Backoff(initial=100.0, maximum=100.0, jitter=(0.5, 1.0))
    draws = [backoff.delay(1, random.Random(seed)) for seed in range(50)]
    assert all(50.0 <= d <= 100.0 for d in draws)
    assert len(set(draws)) > 1, "the delays are spread"
    assert backoff.delay(1, random.Random(7)) == backoff.delay(1, random.Random(7))


def test_a_jitter_range_upside_down_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        Backoff(initial=1.0, maximum=2.0, jitter=(1.0, 0.5))


@given(backoffs(), failures)
def test_a_wait_never_exceeds_the_cap(backoff: Backoff, n: int) -> None:
    assert 0.0 <= backoff.delay(n) <= backoff.maximum


@given(backoffs(), failures)
def test_the_wait_before_jitter_never_shrinks_as_failures_go_on(backoff: Backoff, n: int) -> None:
    assert backoff.base(n) <= backoff.base(n + 1)


@given(backoffs(), failures, st.integers())
def test_jitter_stays_within_its_range_of_the_base(backoff: Backoff, n: int, seed: int) -> None:
    low, high = backoff.jitter
    base = backoff.base(n)
    delay = backoff.delay(n, random.Random(seed))
    assert base * low <= delay <= base * high
