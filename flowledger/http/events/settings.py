"""Live event stream settings (``FLOWLEDGER_STREAM_KEEPALIVE``, and two core settings); the
README's settings table lists them. Kept apart from the stream so that reading them (every
command checks them at start) does not import the web framework."""

from __future__ import annotations

from dataclasses import dataclass

from flowledger.runtime.environment import read_settings, seconds, setting
from flowledger.runtime.settings import Settings


@dataclass(frozen=True)
class StreamSettings:
    batch_size: int = 5000
    """The core ``FLOWLEDGER_FOLLOWER_BATCH_SIZE``."""
    poll_interval_s: float = 0.5
    """The core ``FLOWLEDGER_FOLLOWER_IDLE_WAIT``."""
    keepalive_s: float = setting("FLOWLEDGER_STREAM_KEEPALIVE", 15.0, seconds(above_zero=True))
    """A keep-alive comment is sent when nothing was sent for this long."""

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamSettings:
        return read_settings(
            cls,
            settings.extra,
            batch_size=settings.follower_batch_size,
            poll_interval_s=settings.follower_idle_wait_s,
        )
