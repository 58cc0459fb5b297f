"""Webhook sender settings (``FLOWLEDGER_WEBHOOK_*``); the README's settings table lists them."""

from __future__ import annotations

from dataclasses import dataclass

from flowledger.domain.backoff import Backoff
from flowledger.runtime.settings import Settings, _float, _int


@dataclass(frozen=True)
class WebhookSettings:
    timeout_s: float = 10.0
    """Longest wait for a receiver's answer."""
    max_attempts: int = 10
    retry_initial_s: float = 1.0
    retry_max_s: float = 600.0
    concurrency: int = 32
    """Webhooks delivered to at the same time by one sender process."""
    poll_interval_s: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookSettings:
        env = settings.extra
        return cls(
            timeout_s=_float(env, "FLOWLEDGER_WEBHOOK_TIMEOUT", 10.0) or 10.0,
            max_attempts=_int(env, "FLOWLEDGER_WEBHOOK_MAX_ATTEMPTS", 10, minimum=1),
            retry_initial_s=_float(env, "FLOWLEDGER_WEBHOOK_RETRY_INITIAL", 1.0),
            retry_max_s=_float(env, "FLOWLEDGER_WEBHOOK_RETRY_MAX", 600.0),
            concurrency=_int(env, "FLOWLEDGER_WEBHOOK_CONCURRENCY", 32, minimum=1),
            poll_interval_s=settings.follower_idle_wait_s,
        )

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1 for the first), with jitter."""
        return Backoff(self.retry_initial_s, self.retry_max_s, jitter=(0.75, 1.0)).delay(attempt)

    @property
    def lease_s(self) -> float:
        return 2 * self.timeout_s + 30
