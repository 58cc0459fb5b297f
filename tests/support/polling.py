"""Waiting in tests for something that happens in another thread or process: one helper.

A test that must wait (a follower catching up, a run finishing, a server answering) calls
:func:`eventually` with a *probe* that reads the current value and a condition on it; the probe is
called again every ``interval_s`` until the condition holds, and its value is returned. When
``timeout_s`` runs out it fails with :class:`NotReached`, naming what was awaited and the last
value seen::

    run = eventually(lambda: api.get(f"/api/v1/runs/{run_id}").json(),
                     lambda run: run["status"] in TERMINAL, what=f"run {run_id} to finish")

The probe may raise to stop waiting at once (a process that died); exceptions listed in
``ignoring`` (a server not listening yet) count as "not yet" instead. :func:`eventually_async`
is the same for an async probe; both share :class:`_Patience`, which owns the timing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_INTERVAL_S: Final = 0.05
_SHOWN_CHARS: Final = 500


class NotReached(AssertionError):
    """The awaited condition did not hold before the timeout."""


def _truthy(value: object) -> bool:
    return bool(value)


class _Patience(Generic[T]):
    """The timing and the report shared by the sync and the async helper."""

    def __init__(
        self,
        what: str,
        until: Callable[[T], bool],
        timeout_s: float,
        interval_s: float,
        describe: Callable[[T], str],
    ) -> None:
        self.what = what
        self.until = until
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self.describe = describe
        self.deadline = time.monotonic() + timeout_s
        self.last = "nothing (the probe never answered)"

    def accepts(self, value: T) -> bool:
        self.last = self.describe(value)
        return self.until(value)

    def saw(self, error: BaseException) -> None:
        self.last = f"{type(error).__name__}: {error}"

    def give_up_if_late(self) -> None:
        if time.monotonic() >= self.deadline:
            shown = self.last if len(self.last) <= _SHOWN_CHARS else self.last[:_SHOWN_CHARS] + "…"
            raise NotReached(f"waited {self.timeout_s:g} s for {self.what}; last seen: {shown}")


def eventually(
    probe: Callable[[], T],
    until: Callable[[T], bool] = _truthy,
    *,
    what: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    interval_s: float = DEFAULT_INTERVAL_S,
    describe: Callable[[T], str] = repr,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """Call ``probe`` until ``until(value)`` holds; return that value.

    ``what`` completes "waited N s for ..." in the failure; ``describe`` renders the last value
    seen (``repr`` by default).
    """
    patience = _Patience(what, until, timeout_s, interval_s, describe)
    while True:
        try:
            value = probe()
        except ignoring as error:
            patience.saw(error)
        else:
            if patience.accepts(value):
                return value
        patience.give_up_if_late()
        time.sleep(patience.interval_s)


async def eventually_async(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool] = _truthy,
    *,
    what: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    interval_s: float = DEFAULT_INTERVAL_S,
    describe: Callable[[T], str] = repr,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """:func:`eventually` for a coroutine probe; the pauses do not block the event loop."""
    patience = _Patience(what, until, timeout_s, interval_s, describe)
    while True:
        try:
            value = await probe()
        except ignoring as error:
            patience.saw(error)
        else:
            if patience.accepts(value):
                return value
        patience.give_up_if_late()
        await asyncio.sleep(patience.interval_s)
