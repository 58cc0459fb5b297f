"""Capped exponential backoff: how long to wait before trying something again.

Every retry loop in flowledger waits the same way: ``initial`` after the first failure, then
``multiplier`` times longer after each further one, never more than ``maximum``, and, where
many clients may retry at once, scaled by a random factor (jitter) so that they spread out.
The unit is the caller's: seconds for the processes' loops, milliseconds for an agent's retry
policy.

It lives in ``domain/`` because an agent's retry policy is a domain rule, and every layer may
import the domain (the domain imports nothing else of flowledger).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial: float
    """The wait after the first failure."""
    maximum: float
    """No wait is longer than this (before jitter)."""
    multiplier: float = 2.0
    jitter: tuple[float, float] = (1.0, 1.0)
    """Each wait is scaled by a factor drawn uniformly from this range; ``(1, 1)``: none."""

    def __post_init__(self) -> None:
        low, high = self.jitter
        if not 0 <= low <= high:
            raise ValueError(f"jitter must be a range 0 <= low <= high, not {self.jitter}")

    def base(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row (1 for the first), before jitter."""
        exponent = max(failures - 1, 0)
        try:
            grown = self.initial * float(self.multiplier) ** exponent
        except OverflowError:  # only after very many failures, long past any cap
            grown = math.inf if self.initial > 0 else 0.0
        return float(min(grown, self.maximum))

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """The wait after ``failures`` failures in a row (1 for the first), with jitter."""
        low, high = self.jitter
        # uniform() may land a rounding step past ``high``; the range is a promise.
        factor = low if low == high else min((rng or _RANDOM).uniform(low, high), high)
        return self.base(failures) * factor


_RANDOM = random.Random()  # noqa: S311  (jitter, not cryptography)
