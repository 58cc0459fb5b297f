"""The tests' one way to wait (``tests/support/polling.py``): it returns the first value that
satisfies the condition, and fails naming what it awaited and the last value it saw."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

from tests.support.polling import NotReached, eventually, eventually_async

pytestmark = pytest.mark.unit


def test_it_returns_the_first_value_that_satisfies_the_condition() -> None:
    counter = itertools.count()
    assert eventually(lambda: next(counter), lambda n: n >= 3, what="3", interval_s=0) == 3


def test_it_fails_naming_what_it_awaited_and_the_last_value_seen() -> None:
    with pytest.raises(NotReached, match=r"waited 0\.05 s for the answer; last seen: 'no'"):
        eventually(lambda: "no", lambda v: v == "yes", what="the answer", timeout_s=0.05)


def test_ignored_errors_count_as_not_yet_and_show_as_the_last_value() -> None:
    answers: Iterator[Exception | str] = iter(
        [ConnectionError("refused"), ConnectionError("refused"), "up"]
    )

    def probe() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert eventually(probe, what="up", interval_s=0, ignoring=(ConnectionError,)) == "up"

    def refused() -> str:
        raise ConnectionError("refused")

    with pytest.raises(NotReached, match="last seen: ConnectionError: refused"):
        eventually(refused, what="a server", timeout_s=0.05, ignoring=(ConnectionError,))


def test_other_errors_stop_the_wait_at_once() -> None:
    calls: list[int] = []

    def probe() -> bool:
        calls.append(1)
        raise RuntimeError("the process died")

    with pytest.raises(RuntimeError, match="died"):
        eventually(probe, what="anything", timeout_s=5)
    assert len(calls) == 1


def test_the_async_variant_waits_without_blocking_the_loop() -> None:
    async def never() -> bool:
        return False

    async def scenario() -> int:
        done = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, done.set)

        async def probe() -> bool:
            return done.is_set()

        await eventually_async(probe, what="the event", timeout_s=5, interval_s=0.01)
        with pytest.raises(NotReached, match="the never event; last seen: False"):
            await eventually_async(never, what="the never event", timeout_s=0.05)
        return 1

    assert asyncio.run(scenario()) == 1
