"""Webhook sender settings (``FLOWLEDGER_WEBHOOK_*``); the README's settings table lists them."""

from __future__ import annotations

from dataclasses import dataclass

from flowledger.domain.backoff import Backoff
from flowledger.runtime.environment import integer, read_settings, seconds, setting
from flowledger.runtime.settings import Settings


@dataclass(frozen=True)
class WebhookSettings:
    timeout_s: float = setting("FLOWLEDGER_WEBHOOK_TIMEOUT", 10.0, seconds(above_zero=True))
    """Longest wait for a receiver's answer."""
    max_attempts: int = setting("FLOWLEDGER_WEBHOOK_MAX_ATTEMPTS", 10, integer(minimum=1))
    retry_initial_s: float = setting("FLOWLEDGER_WEBHOOK_RETRY_INITIAL", 1.0, seconds())
    retry_max_s: float = setting("FLOWLEDGER_WEBHOOK_RETRY_MAX", 600.0, seconds())
    concurrency: int = setting("FLOWLEDGER_WEBHOOK_CONCURRENCY", 32, integer(minimum=1))
    """Webhooks delivered to at the same time by one sender process."""
    poll_interval_s: float = 0.5
    """The core ``FLOWLEDGER_FOLLOWER_IDLE_WAIT``."""

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookSettings:
        return read_settings(cls, settings.extra, poll_interval_s=settings.follower_idle_wait_s)

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1 for the first), with jitter."""
        return Backoff(self.retry_initial_s, self.retry_max_s, jitter=(0.75, 1.0)).delay(attempt)

    @property
    def lease_s(self) -> float:
        return 2 * self.timeout_s + 30
